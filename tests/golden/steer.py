"""Writes the steering-vector golden cells: activations, 0/1 labels, and each method's vector as NumPy
computes it in float64 from the float32 activations.

- mean-diff: mean of the label-1 rows minus mean of the label-0 rows over the rows used (the first
  floor(n/2) rows, or all);
- paper: that difference, unit-normalized, times the unbiased std (ddof=1) of every row's projection
  on the unit direction;
- pca: the k-th label-1 row minus the k-th label-0 row (file order, within the rows used, as many
  pairs as the smaller class has), centred; the first right singular vector (np.linalg.svd), signed so
  that the label-1 rows' mean projection exceeds the label-0 rows'.

    steer/cells.safetensors   cell{k}.x F32 [n, d], cell{k}.y I64 [n],
                              cell{k}.{method}.{half|all} F64 [d]

Run: python3 tests/golden/steer.py   (needs numpy, safetensors)
"""
import os

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "steer")
CELLS = [(41, 24, 1), (80, 64, 2), (200, 16, 3), (30, 100, 4)]  # (n, d, seed); d > pairs in the last


def vectors(x, y, end):
    x64 = x.astype(np.float64)
    pos = np.where(y[:end] == 1)[0]
    neg = np.where(y[:end] == 0)[0]
    diff = x64[pos].mean(0) - x64[neg].mean(0)
    u = diff / np.linalg.norm(diff)
    paper = u * np.std(x64 @ u, ddof=1)
    k = min(len(pos), len(neg))
    dm = x64[pos[:k]] - x64[neg[:k]]
    dm = dm - dm.mean(0)
    v = np.linalg.svd(dm, full_matrices=False)[2][0]
    if (x64[pos] @ v).mean() < (x64[neg] @ v).mean():
        v = -v
    return {"mean-diff": diff, "paper": paper, "pca": v}


def main():
    os.makedirs(HERE, exist_ok=True)
    out = {}
    for k, (n, d, seed) in enumerate(CELLS):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, n)
        x = rng.normal(size=(n, d)) * np.exp(rng.normal(0, 0.5, d)) + np.outer(y, rng.normal(size=d)) + 1.5
        x = x.astype(np.float32)
        out[f"cell{k}.x"] = x
        out[f"cell{k}.y"] = y.astype(np.int64)
        for rows, end in (("half", n // 2), ("all", n)):
            for m, v in vectors(x, y, end).items():
                out[f"cell{k}.{m}.{rows}"] = v
        print(f"cell{k}: n={n} d={d}, |paper.half| = {np.linalg.norm(out[f'cell{k}.paper.half']):.4f}")
    save_file(out, os.path.join(HERE, "cells.safetensors"))


if __name__ == "__main__":
    main()
