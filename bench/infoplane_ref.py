#!/usr/bin/env python3
"""The paper's nHSIC information plane, pretrace vs float64 NumPy, on every cell of the same activation
store, same machine, same run (driven by bench/infoplane.sh).

Per (checkpoint, dataset): X = layer 0, Y = labels, T = each layer; rows are the paper probe's
training rows (first floor(0.8 n)), z-scored with the mean and unbiased std of all rows. Two NumPy
float64 implementations of the same formula, each timed without reading the store:

- paper: as the paper's code calls it, hsic_normalized_cca(X, T) and hsic_normalized_cca(Y, T) per
  layer, each building both kernels and inverting both regularized matrices (np.linalg.inv);
- cached: R_X and R_Y once per (checkpoint, dataset), R_T = solve(K_T H + eps m I, K_T H) per layer
  (the same algorithm as pretrace).

pretrace side: `pretrace infoplane` as a whole command (reading the store included). Repeats ROUNDS
times alternating; prints medians, the ratios, and the largest relative difference of the values."""

import argparse
import csv
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
from safetensors.numpy import load_file

ap = argparse.ArgumentParser()
ap.add_argument("--store", required=True)
ap.add_argument("--pretrace", required=True)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--sigma", type=float, default=50.0)
ap.add_argument("--skip-paper", action="store_true", help="leave out the paper-style NumPy side (slow at large m)")
a = ap.parse_args()


def zscore_head(x):
    x = x.astype(np.float64)
    std = x.std(0, ddof=1)
    z = (x - x.mean(0)) * np.where(std == 0, 0.0, 1.0 / np.where(std == 0, 1.0, std))
    return z[: int(np.floor(0.8 * len(x)))]


entries = []
for ck in sorted(os.listdir(a.store)):
    p = os.path.join(a.store, ck)
    if not os.path.isdir(p) or ck.startswith("."):
        continue
    for ds in sorted(os.listdir(p)):
        f = os.path.join(p, ds, "activations.safetensors")
        if not os.path.isfile(f):
            continue
        t = load_file(f)
        layers = {int(k.split(".")[1]): zscore_head(v) for k, v in t.items() if k.startswith("blocks.")}
        m = len(layers[0])
        y = t["labels"][:m].astype(np.float64).reshape(-1, 1)
        entries.append(((ck, ds), layers, y))


def kernel_centered(a_, sigma):
    m, d = a_.shape
    r = np.sum(a_ * a_, 1).reshape(-1, 1)
    k = np.exp(-np.abs(r - 2 * a_ @ a_.T + r.T) / (2.0 * sigma * sigma * d))
    return k - k.mean(1, keepdims=True)  # K H


def hsic_normalized_cca(x, y, sigma):
    # The paper's function, float64: explicit H, explicit inverses.
    m = x.shape[0]
    h = np.eye(m) - np.ones((m, m)) / m

    def kmat(v):
        r = np.sum(v * v, 1).reshape(-1, 1)
        k = np.exp(-np.abs(r - 2 * v @ v.T + r.T) / (2.0 * sigma * sigma * v.shape[1]))
        return k @ h

    kx, ky = kmat(x), kmat(y)
    rx = kx @ np.linalg.inv(kx + 1e-5 * m * np.eye(m))
    ry = ky @ np.linalg.inv(ky + 1e-5 * m * np.eye(m))
    return np.sum(rx * ry.T)


def numpy_paper():
    out = {}
    t0 = time.perf_counter()
    for (ck, ds), layers, y in entries:
        for l, t in layers.items():
            out[(ck, ds, l)] = (hsic_normalized_cca(layers[0], t, a.sigma), hsic_normalized_cca(y, t, a.sigma))
    return time.perf_counter() - t0, out


def numpy_cached():
    out = {}
    t0 = time.perf_counter()
    for (ck, ds), layers, y in entries:
        m = len(y)
        eye = 1e-5 * m * np.eye(m)

        def proj(v):
            kc = kernel_centered(v, a.sigma)
            return np.linalg.solve(kc + eye, kc)

        rx, ry = proj(layers[0]), proj(y)
        for l, t in layers.items():
            rt = proj(t)
            out[(ck, ds, l)] = (np.sum(rx * rt.T), np.sum(ry * rt.T))
    return time.perf_counter() - t0, out


def pretrace_all():
    out_dir = tempfile.mkdtemp(prefix="pretrace-infoplane-bench-")
    t0 = time.perf_counter()
    subprocess.run([a.pretrace, "--threads", str(a.threads), "infoplane", "--store", a.store, "--out", out_dir],
                   check=True, capture_output=True)
    secs = time.perf_counter() - t0
    out = {}
    with open(os.path.join(out_dir, "infoplane.csv")) as f:
        for r in csv.DictReader(f):
            out[(r["checkpoint"], r["dataset"], int(r["layer"]))] = (float(r["i_tx"]), float(r["i_ty"]))
    return secs, out


res = []
for k in range(a.rounds):
    time.sleep(1)
    ps, pv = pretrace_all()
    time.sleep(1)
    cs, cv = numpy_cached()
    if a.skip_paper:
        ns, nv = float("nan"), cv
    else:
        time.sleep(1)
        ns, nv = numpy_paper()
    res.append((ps, cs, ns))
    print(f"round {k + 1}: pretrace {ps:.2f}s, NumPy cached {cs:.2f}s ({cs / ps:.2f}x), "
          f"NumPy paper-style {ns:.2f}s ({ns / ps:.2f}x)", flush=True)

worst = max(abs(pv[key][i] - nv[key][i]) / abs(nv[key][i]) for key in nv for i in (0, 1))
worst_c = max(abs(cv[key][i] - nv[key][i]) / abs(nv[key][i]) for key in nv for i in (0, 1))
med = [statistics.median(r[i] for r in res) for i in range(3)]
rc = statistics.median(r[1] / r[0] for r in res)
rn = statistics.median(r[2] / r[0] for r in res)
print(f"\n{len(nv)} cells ({len(entries)} checkpoint x dataset entries, m = {len(entries[0][2])} rows), "
      f"{a.threads} threads, {a.rounds} rounds (medians): pretrace {med[0]:.2f}s, NumPy cached {med[1]:.2f}s "
      f"-> {rc:.2f}x, NumPy paper-style {med[2]:.2f}s -> {rn:.2f}x")
ref = "NumPy cached" if a.skip_paper else "NumPy paper-style"
print(f"values: largest relative difference from {ref} {worst:.2e} (NumPy cached vs paper-style {worst_c:.2e})")
