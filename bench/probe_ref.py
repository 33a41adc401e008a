#!/usr/bin/env python3
"""The paper's probes, pretrace vs scikit-learn, on every cell of the same activation store, same
machine, same run (driven by bench/probe.sh).

scikit-learn side: the paper's code (z-score with the mean and unbiased std over all rows, first 80%
of rows train, `LogisticRegression()`, test accuracy) looping over the cells; only the fits and
scoring are timed, not reading the store. pretrace side: `pretrace probe` as a whole command
(reading the store included). Repeats ROUNDS times alternating, prints medians, the ratio, and how
many cells' accuracies agree."""

import argparse
import csv
import os
import statistics
import subprocess
import tempfile
import time
import warnings

import numpy as np
from safetensors.numpy import load_file
from sklearn.linear_model import LogisticRegression

ap = argparse.ArgumentParser()
ap.add_argument("--store", required=True)
ap.add_argument("--pretrace", required=True)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--threads", type=int, default=os.cpu_count())
a = ap.parse_args()

cells = []
for ck in sorted(os.listdir(a.store)):
    p = os.path.join(a.store, ck)
    if not os.path.isdir(p) or ck.startswith("."):
        continue
    for ds in sorted(os.listdir(p)):
        f = os.path.join(p, ds, "activations.safetensors")
        if not os.path.isfile(f):
            continue
        t = load_file(f)
        y = t["labels"]
        for name, x in t.items():
            if name.startswith("blocks."):
                cells.append(((ck, ds, int(name.split(".")[1])), x, y))


def sklearn_all():
    acc = {}
    t0 = time.perf_counter()
    for key, x, y in cells:
        x = x.astype(np.float64)
        std = x.std(0, ddof=1)
        z = (x - x.mean(0)) / np.where(std == 0, 1.0, std)
        ntr = int(np.floor(0.8 * len(y)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = LogisticRegression().fit(z[:ntr], y[:ntr])
        acc[key] = (m.score(z[ntr:], y[ntr:]), len(y) - ntr)
    return time.perf_counter() - t0, acc


def pretrace_all(k):
    out = tempfile.mkdtemp(prefix="pretrace-probe-bench-")
    t0 = time.perf_counter()
    subprocess.run([a.pretrace, "--threads", str(a.threads), "probe", "--store", a.store, "--out", out], check=True, capture_output=True)
    secs = time.perf_counter() - t0
    acc = {}
    with open(os.path.join(out, "probes.csv")) as f:
        for r in csv.DictReader(f):
            acc[(r["checkpoint"], r["dataset"], int(r["layer"]))] = float(r["accuracy"])
    return secs, acc


res = []
for k in range(a.rounds):
    time.sleep(1)
    ps, pacc = pretrace_all(k)
    time.sleep(1)
    ss, sacc = sklearn_all()
    res.append((ps, ss))
    print(f"round {k + 1}: pretrace {ps:.2f}s, scikit-learn {ss:.2f}s, ratio {ss / ps:.2f}x", flush=True)

same = sum(1 for key in sacc if abs(pacc[key] - sacc[key][0]) < 1e-12)
worst = max(round(abs(pacc[key] - sacc[key][0]) * sacc[key][1]) for key in sacc)
ps = statistics.median(r[0] for r in res)
ss = statistics.median(r[1] for r in res)
ratio = statistics.median(r[1] / r[0] for r in res)
print(f"\n{len(cells)} cells ({len({c[0][0] for c in cells})} checkpoint(s) x {len({c[0][1] for c in cells})} dataset(s) x layers), "
      f"{a.threads} threads, {a.rounds} rounds (medians): pretrace {ps:.2f}s, scikit-learn {ss:.2f}s -> pretrace {ratio:.2f}x faster")
print(f"accuracies: {same} of {len(sacc)} cells identical; largest difference {worst} test example(s)")
