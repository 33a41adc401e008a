"""Writes the probe golden cells: features, labels, and what scikit-learn's `LogisticRegression()`
(the paper's probe: defaults, C=1, lbfgs, max_iter=100, tol=1e-4) fits on them after the paper's
preprocessing (z-score with the mean and unbiased std over all rows; first floor(0.8 n) rows train).

Synthetic cells (all converge, in 14 to 48 iterations): two classes shifted along one direction,
low-rank correlated features with anisotropic scales, 10% label noise in most, and a constant feature.

    probe/cells.safetensors   cell{k}.x F32 [n, d] (raw; widened to f64 before use), cell{k}.y I64 [n],
                              cell{k}.coef F64 [d], cell{k}.intercept F64 [1],
                              cell{k}.n_iter I64 [1], cell{k}.accuracy F64 [1]

With `--smollm2 GGUF`, also a real cell: SmolLM2-135M-Instruct's last-token residual stream (block 15,
transformers, f32, stored as f16) for 250 word prefixes of the clauses of bench/text.txt (label 0),
each also with about 5% of its letters' case flipped (label 1), the paper's robustness task. With 576
features and 400 training rows the problem is nearly separable and L-BFGS runs 98 iterations, as on
the paper's data, where it usually stops at 100.

    probe/real.safetensors    layer{l}.x F16 [n, 576], labels I64 [n], and per layer the fit as above

Run: python3 tests/golden/probe.py [--smollm2 .cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]
     (needs numpy, scikit-learn, safetensors; with --smollm2 also torch, transformers, gguf)
"""
import os
import sys
import warnings

import numpy as np
from safetensors.numpy import save_file
from sklearn.linear_model import LogisticRegression

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe")
CELLS = [  # (n, d, rank of the shared structure, separation, seed)
    (120, 8, 8, 2.0, 1), (200, 16, 16, 1.0, 2), (300, 32, 4, 3.0, 3), (400, 64, 6, 2.0, 4),
    (250, 96, 5, 4.0, 5), (300, 128, 8, 3.0, 6), (400, 48, 3, 1.5, 7), (200, 160, 10, 6.0, 8),
    (500, 64, 4, 0.5, 9), (300, 100, 12, 2.0, 10),
    # Nearly separable in many dimensions: the weak penalty lets the weights grow and L-BFGS runs
    # out of iterations, as on real activations.
    (200, 160, 40, 1.0, 11), (300, 256, 64, 0.5, 12), (240, 300, 100, 0.3, 13),
]


def cell(n, d, rank, sep, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    # Features share a low-rank structure plus a little noise, as residual streams do: strongly
    # correlated columns make the problem ill-conditioned, so L-BFGS often stops at 100 iterations.
    latent = rng.normal(size=(n, rank))
    mix = rng.normal(size=(rank, d))
    scales = np.exp(rng.normal(0, 1, d))
    x = (latent @ mix + 0.05 * rng.normal(size=(n, d))) * scales + 3.0
    direction = rng.normal(size=d)
    direction *= scales.mean() / np.linalg.norm(direction)
    x += np.outer(y - 0.5, direction) * sep
    flip = rng.random(n) < (0.1 if seed <= 10 else 0.0)  # label noise keeps most from separating
    y = np.where(flip, 1 - y, y)
    x[:, d // 2] = 7.25  # a constant feature
    return x.astype(np.float32), y


def fit(x, y):
    std = x.std(0, ddof=1)
    z = (x - x.mean(0)) / np.where(std == 0, 1.0, std)
    z[:, std == 0] = 0.0
    ntr = int(np.floor(0.8 * len(y)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LogisticRegression().fit(z[:ntr], y[:ntr])
    return m, m.score(z[ntr:], y[ntr:])


def real(gguf):
    import re

    import torch
    import transformers as T

    text = open(os.path.join(HERE, "..", "..", "..", "bench", "text.txt"), encoding="utf-8").read()
    clauses = [c.strip() for c in re.split(r"[,.;:!?\u2014]", text) if len(c.split()) >= 2]
    # Word prefixes of the clauses (the first 250), each as it is (label 0) and with about 5% of its
    # letters' case flipped (label 1), interleaved: the paper's robustness task on this text.
    prefixes = [" ".join(c.split()[:k]) for c in clauses for k in range(2, len(c.split()) + 1)][:250]
    rng = np.random.default_rng(0)
    clauses, y = [], []
    for p in prefixes:
        flipped = "".join(ch.swapcase() if ch.isalpha() and rng.random() < 0.05 else ch for ch in p)
        if flipped == p:
            i = next(i for i, ch in enumerate(p) if ch.isalpha())
            flipped = p[:i] + p[i].swapcase() + p[i + 1:]
        clauses += [p, flipped]
        y += [0, 1]
    folder, name = os.path.split(os.path.abspath(gguf))
    tok = T.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = T.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    layers = [15]
    feats = {l: [] for l in layers}
    for c in clauses:
        captured = {}
        hooks = [model.model.layers[l].register_forward_hook(lambda _m, _i, o, l=l: captured.__setitem__(l, (o[0] if isinstance(o, tuple) else o)[0, -1]))
                 for l in layers]
        with torch.no_grad():
            model(torch.tensor([tok(c)["input_ids"]]))
        for h in hooks:
            h.remove()
        for l in layers:
            feats[l].append(captured[l].numpy())
    y = np.array(y, dtype=np.int64)
    out = {"labels": y}
    for l in layers:
        x16 = np.stack(feats[l]).astype(np.float16)
        m, acc = fit(x16.astype(np.float64), y)
        out[f"layer{l}.x"] = x16
        out[f"layer{l}.coef"] = m.coef_[0].astype(np.float64)
        out[f"layer{l}.intercept"] = m.intercept_.astype(np.float64)
        out[f"layer{l}.n_iter"] = np.array([m.n_iter_[0]], dtype=np.int64)
        out[f"layer{l}.accuracy"] = np.array([acc], dtype=np.float64)
        print("real layer", l, len(y), "rows", "iterations", m.n_iter_[0], "accuracy", round(acc, 4))
    save_file(out, os.path.join(HERE, "real.safetensors"))


def main():
    os.makedirs(HERE, exist_ok=True)
    if len(sys.argv) == 3 and sys.argv[1] == "--smollm2":
        real(sys.argv[2])
    out = {}
    for k, (n, d, rank, sep, seed) in enumerate(CELLS):
        x32, y = cell(n, d, rank, sep, seed)
        x = x32.astype(np.float64)
        std = x.std(0, ddof=1)
        z = (x - x.mean(0)) / np.where(std == 0, 1.0, std)
        z[:, std == 0] = 0.0
        ntr = int(np.floor(0.8 * n))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = LogisticRegression().fit(z[:ntr], y[:ntr])
        out[f"cell{k}.x"] = x32
        out[f"cell{k}.y"] = y.astype(np.int64)
        out[f"cell{k}.coef"] = m.coef_[0].astype(np.float64)
        out[f"cell{k}.intercept"] = m.intercept_.astype(np.float64)
        out[f"cell{k}.n_iter"] = np.array([m.n_iter_[0]], dtype=np.int64)
        out[f"cell{k}.accuracy"] = np.array([m.score(z[ntr:], y[ntr:])], dtype=np.float64)
        print(k, n, d, "iterations", m.n_iter_[0], "accuracy", round(m.score(z[ntr:], y[ntr:]), 4))
    save_file(out, os.path.join(HERE, "cells.safetensors"))


if __name__ == "__main__":
    main()
