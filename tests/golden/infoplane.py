"""Writes the information-plane golden cells: raw activations of an input layer X and a layer T,
0/1 labels, and what float64 NumPy computes on them after the paper probe's preprocessing (z-score
with the mean and unbiased std over all rows, constant columns set to 0; first floor(0.8 n) rows):

- nhsic-paper, written as the paper's code (`mi_estimators.py`, `hsic_normalized_cca`) computes it,
  with explicit H and explicit inverses: D = |r - 2 A A^T + r^T|, K = exp(-D / (2 sigma^2 d)),
  Kc = K H, R = Kc inv(Kc + 1e-5 m I), value = sum(R_A * R_B^T); I(T;X) = nHSIC(X, T),
  I(T;Y) = nHSIC(Y, T) with Y the labels as an m x 1 float matrix;
- hsic, (m-1)^-2 tr(K_A H K_B H), and hsic-normalized, HSIC(A,B) / sqrt(HSIC(A,A) HSIC(B,B));
- KSG (scikit-learn's `_compute_mi_cc` generalized to several dimensions: Chebyshev k-NN radius in
  the joint space, neighbours strictly inside it counted with KDTree) and Ross's estimate for a
  discrete label (scikit-learn's `_compute_mi_cd` with a Chebyshev metric), k = 3, on the given
  low-dimensional matrices, without clipping at 0;
- the variance of each principal component of the standardized T (the PCA the KSG path projects on).

    infoplane/cells.safetensors   cell{k}.x F32 [n, dx], cell{k}.t F32 [n, dt], cell{k}.y I64 [n],
                                  cell{k}.nhsic F64 [2] (I(T;X), I(T;Y)), cell{k}.hsic F64 [2],
                                  cell{k}.hsic_normalized F64 [2], cell{k}.sigma F64 [1]
    infoplane/ksg.safetensors     case{k}.a F64 [n, p], case{k}.b F64 [n, q], case{k}.y I64 [n],
                                  case{k}.ksg F64 [1] (I(A;B)), case{k}.ross F64 [1] (I(A;y)),
                                  case{k}.pca_var F64 [r] (variances of A's top principal components)

Run: python3 tests/golden/infoplane.py   (needs numpy, scipy, scikit-learn, safetensors)
"""
import os

import numpy as np
from safetensors.numpy import save_file
from scipy.special import digamma
from sklearn.neighbors import KDTree, NearestNeighbors

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "infoplane")
CELLS = [  # (n, dx, dt, sigma, seed)
    (40, 6, 8, 50.0, 1), (75, 16, 12, 50.0, 2), (120, 24, 32, 50.0, 3), (250, 64, 48, 50.0, 4),
    (90, 10, 10, 1.0, 5), (150, 20, 30, 5.0, 6), (400, 96, 96, 50.0, 7),
]


def zscore_head(a):
    std = a.std(axis=0, ddof=1)
    scale = np.where(std == 0, 0.0, 1.0 / np.where(std == 0, 1.0, std))
    z = (a - a.mean(axis=0)) * scale
    m = int(np.floor(0.8 * a.shape[0]))
    return z[:m]


def kernelmat(a, sigma):
    m, d = a.shape
    h = np.eye(m) - np.ones((m, m)) / m
    r = np.sum(a * a, 1).reshape(-1, 1)
    dist = np.abs(r - 2 * a @ a.T + r.T)
    k = np.exp(-dist / (2.0 * sigma * sigma * d))
    return k, k @ h


def nhsic(a, b, sigma):
    m = a.shape[0]
    _, ka = kernelmat(a, sigma)
    _, kb = kernelmat(b, sigma)
    ra = ka @ np.linalg.inv(ka + 1e-5 * m * np.eye(m))
    rb = kb @ np.linalg.inv(kb + 1e-5 * m * np.eye(m))
    return np.sum(ra * rb.T)


def hsic(a, b, sigma):
    m = a.shape[0]
    h = np.eye(m) - np.ones((m, m)) / m
    ka, _ = kernelmat(a, sigma)
    kb, _ = kernelmat(b, sigma)
    return np.trace(ka @ h @ kb @ h) / (m - 1) ** 2


def cell(n, dx, dt, sigma, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, dx)) * np.exp(rng.normal(0, 1, dx)) + 2.0
    mix = rng.normal(size=(dx, dt)) / np.sqrt(dx)
    t = np.tanh(x @ mix) + 0.3 * rng.normal(size=(n, dt)) + np.outer(y, rng.normal(size=dt))
    t[:, dt // 3] = -1.5  # a constant column
    x, t = x.astype(np.float32), t.astype(np.float32)
    xs, ts = zscore_head(x.astype(np.float64)), zscore_head(t.astype(np.float64))
    ys = y[: xs.shape[0]].astype(np.float64).reshape(-1, 1)
    h = [hsic(ts, xs, sigma), hsic(ts, ys, sigma)]
    hn = [
        h[0] / np.sqrt(hsic(xs, xs, sigma) * hsic(ts, ts, sigma)),
        h[1] / np.sqrt(hsic(ys, ys, sigma) * hsic(ts, ts, sigma)),
    ]
    return {
        "x": x, "t": t, "y": y.astype(np.int64),
        "nhsic": np.array([nhsic(xs, ts, sigma), nhsic(ys, ts, sigma)]),
        "hsic": np.array(h), "hsic_normalized": np.array(hn),
        "sigma": np.array([sigma]),
    }


def ksg(a, b, k=3):
    n = a.shape[0]
    ab = np.hstack((a, b))
    nn = NearestNeighbors(metric="chebyshev", n_neighbors=k).fit(ab)
    radius = np.nextafter(nn.kneighbors()[0][:, -1], 0)
    na = KDTree(a, metric="chebyshev").query_radius(a, radius, count_only=True) - 1.0
    nb = KDTree(b, metric="chebyshev").query_radius(b, radius, count_only=True) - 1.0
    return digamma(n) + digamma(k) - np.mean(digamma(na + 1)) - np.mean(digamma(nb + 1))


def ross(c, d, k=3):
    n = c.shape[0]
    radius = np.empty(n)
    counts = np.empty(n)
    k_all = np.empty(n)
    for label in np.unique(d):
        mask = d == label
        count = mask.sum()
        if count > 1:
            kk = min(k, count - 1)
            nn = NearestNeighbors(metric="chebyshev", n_neighbors=kk).fit(c[mask])
            radius[mask] = np.nextafter(nn.kneighbors()[0][:, -1], 0)
            k_all[mask] = kk
        counts[mask] = count
    keep = counts > 1
    c, radius, counts, k_all = c[keep], radius[keep], counts[keep], k_all[keep]
    m_all = KDTree(c, metric="chebyshev").query_radius(c, radius, count_only=True)
    return digamma(keep.sum()) + np.mean(digamma(k_all)) - np.mean(digamma(counts)) - np.mean(digamma(m_all))


def ksg_case(n, p, q, rho, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, p))
    b = rho * a[:, :q] + np.sqrt(1 - rho * rho) * rng.normal(size=(n, q)) if q <= p else rng.normal(size=(n, q))
    y = (a[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    ac = a - a.mean(0)
    var = np.linalg.svd(ac, compute_uv=False) ** 2 / (n - 1)
    return {
        "a": a, "b": b, "y": y,
        "ksg": np.array([ksg(a, b)]), "ross": np.array([ross(a, y)]),
        "pca_var": var[: min(p, 4)],
    }


def main():
    os.makedirs(HERE, exist_ok=True)
    tensors = {}
    for k, spec in enumerate(CELLS):
        for name, v in cell(*spec).items():
            tensors[f"cell{k}.{name}"] = v
        print(f"cell{k} {spec}: nhsic {tensors[f'cell{k}.nhsic']} hsic {tensors[f'cell{k}.hsic']}")
    save_file(tensors, os.path.join(HERE, "cells.safetensors"))
    tensors = {}
    for k, spec in enumerate([(200, 1, 1, 0.6, 1), (300, 2, 2, 0.8, 2), (500, 3, 2, 0.5, 3),
                              (400, 4, 4, 0.9, 4), (250, 2, 1, 0.0, 5)]):
        for name, v in ksg_case(*spec).items():
            tensors[f"case{k}.{name}"] = v
        print(f"case{k} {spec}: ksg {tensors[f'case{k}.ksg']} ross {tensors[f'case{k}.ross']}")
    save_file(tensors, os.path.join(HERE, "ksg.safetensors"))


if __name__ == "__main__":
    main()
