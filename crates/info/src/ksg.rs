//! Mutual information in nats from k-nearest-neighbour statistics, on a PCA projection of the
//! representations: Kraskov–Stögbauer–Grassberger (2004, algorithm 1) between two continuous
//! variables, and Ross (2014) between a continuous variable and a discrete label. Both count
//! neighbours strictly inside the k-th neighbour's max-norm distance, as scikit-learn's
//! `mutual_info_regression`/`mutual_info_classif` do; neither clips negative estimates to 0.
//!
//! Bias, measured on Gaussian pairs of known MI (`tests/ksg.rs`, mean of four samples of 2,000, k = 3,
//! correlations 0 to 0.9 per coordinate pair): within 0.02 nats + 3% of the closed form with 1 or 2
//! dimensions per side; with 4 per side it underestimates, by 15% at ρ = 0.6 (0.76 vs 0.89 nats)
//! and 20% at ρ = 0.9 (2.64 vs 3.32). The gap grows with dimension and with the MI itself, so on
//! wide PCA projections KSG reads as a lower bound and is comparable across steps, not absolute.

use faer::{Mat, MatRef, Side};
use rayon::prelude::*;

/// `ψ(n)` for `n ≥ 1`: `−γ + Σ_{j<n} 1/j`.
fn digamma_int(n: usize) -> f64 {
    const EULER: f64 = 0.577_215_664_901_532_9;
    if n < 64 {
        return -EULER + (1..n).map(|j| 1.0 / j as f64).sum::<f64>();
    }
    // Asymptotic series, exact to double precision for n ≥ 64.
    let x = n as f64;
    let x2 = 1.0 / (x * x);
    x.ln() - 0.5 / x - x2 * (1.0 / 12.0 - x2 * (1.0 / 120.0 - x2 * (1.0 / 252.0)))
}

/// Max-norm distance between rows `i` and `j` of a row-major `[n, p]` matrix.
#[inline]
fn cheb(x: &[f64], p: usize, i: usize, j: usize) -> f64 {
    let (a, b) = (&x[i * p..(i + 1) * p], &x[j * p..(j + 1) * p]);
    a.iter().zip(b).fold(0f64, |m, (u, v)| m.max((u - v).abs()))
}

/// Row-major copy of a faer matrix.
fn rows(a: MatRef<'_, f64>) -> (Vec<f64>, usize) {
    let (n, p) = (a.nrows(), a.ncols());
    let mut v = Vec::with_capacity(n * p);
    for i in 0..n {
        for j in 0..p {
            v.push(a[(i, j)]);
        }
    }
    (v, p)
}

/// The k-th smallest value of `d` (1-based k).
fn kth(d: &mut [f64], k: usize) -> f64 {
    let (_, v, _) = d.select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
    *v
}

/// KSG estimate of I(X; Y) in nats (rows are samples), with `k` neighbours.
pub fn ksg(x: MatRef<'_, f64>, y: MatRef<'_, f64>, k: usize) -> f64 {
    let n = x.nrows();
    assert_eq!(n, y.nrows());
    if n <= k {
        return 0.0;
    }
    let (xs, px) = rows(x);
    let (ys, py) = rows(y);
    let sum: f64 = (0..n)
        .into_par_iter()
        .map_init(
            || vec![0f64; n - 1],
            |d, i| {
                for (t, j) in (0..n).filter(|&j| j != i).enumerate() {
                    d[t] = cheb(&xs, px, i, j).max(cheb(&ys, py, i, j));
                }
                let eps = kth(d, k);
                let nx = (0..n)
                    .filter(|&j| j != i && cheb(&xs, px, i, j) < eps)
                    .count();
                let ny = (0..n)
                    .filter(|&j| j != i && cheb(&ys, py, i, j) < eps)
                    .count();
                digamma_int(nx + 1) + digamma_int(ny + 1)
            },
        )
        .sum();
    digamma_int(k) + digamma_int(n) - sum / n as f64
}

/// Ross's estimate of I(X; L) in nats for continuous X and discrete labels L, with `k` neighbours
/// (fewer in a class with at most k rows; rows whose class has one row are left out).
pub fn ksg_discrete(x: MatRef<'_, f64>, labels: &[i64], k: usize) -> f64 {
    let n = x.nrows();
    assert_eq!(n, labels.len());
    let (xs, p) = rows(x);
    let mut count = std::collections::BTreeMap::<i64, usize>::new();
    for &l in labels {
        *count.entry(l).or_default() += 1;
    }
    let keep: Vec<usize> = (0..n).filter(|&i| count[&labels[i]] > 1).collect();
    if keep.is_empty() {
        return 0.0;
    }
    let terms: Vec<(f64, f64, f64)> = keep
        .par_iter()
        .map(|&i| {
            let c = count[&labels[i]];
            let kk = k.min(c - 1);
            let mut d: Vec<f64> = keep
                .iter()
                .filter(|&&j| j != i && labels[j] == labels[i])
                .map(|&j| cheb(&xs, p, i, j))
                .collect();
            let r = kth(&mut d, kk);
            // Points strictly within r, the point itself included.
            let m = keep.iter().filter(|&&j| cheb(&xs, p, i, j) < r).count();
            (digamma_int(kk), digamma_int(c), digamma_int(m))
        })
        .collect();
    let nk = keep.len() as f64;
    let mean = |f: fn(&(f64, f64, f64)) -> f64| terms.iter().map(f).sum::<f64>() / nk;
    digamma_int(keep.len()) + mean(|t| t.0) - mean(|t| t.1) - mean(|t| t.2)
}

/// The unit directions of the `take` largest principal axes of the rows of `c` (`m × d`, already
/// centred), as the columns of a `d × take'` matrix in increasing order of variance; directions of
/// zero variance are left out. From the eigendecomposition of the smaller of CᵀC (d×d) and CCᵀ (m×m);
/// signs follow the eigensolver.
pub fn principal_directions(c: MatRef<'_, f64>, take: usize) -> Mat<f64> {
    let (m, d) = (c.nrows(), c.ncols());
    let par = faer::get_global_parallelism();
    let gram = |a: MatRef<'_, f64>| {
        let mut g = Mat::<f64>::zeros(a.ncols(), a.ncols());
        faer::linalg::matmul::matmul(g.as_mut(), faer::Accum::Replace, a.transpose(), a, 1.0, par);
        g.self_adjoint_eigen(Side::Lower)
            .expect("eigendecomposition of a symmetric matrix")
    };
    let mut dirs: Vec<Vec<f64>> = Vec::new();
    if d <= m {
        let evd = gram(c);
        for j in d - take.min(d)..d {
            dirs.push((0..d).map(|i| evd.U()[(i, j)]).collect());
        }
    } else {
        // Right singular vectors from the left ones: v = Cᵀu / ‖Cᵀu‖.
        let evd = gram(c.transpose());
        for j in m - take.min(m)..m {
            let v: Vec<f64> = (0..d)
                .map(|i| (0..m).map(|k| c[(k, i)] * evd.U()[(k, j)]).sum())
                .collect();
            let len = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            dirs.push(v.iter().map(|a| a / len).collect());
        }
    }
    dirs.retain(|v| v.iter().all(|a| a.is_finite()));
    Mat::from_fn(d, dirs.len(), |i, j| dirs[j][i])
}

/// The first `p` principal components of the rows of `a` (centred on their mean), each scaled to
/// unit variance: an `m × p'` matrix with `p' = min(p, rank)`. Signs follow the eigensolver.
pub fn pca(a: MatRef<'_, f64>, p: usize) -> Mat<f64> {
    let (m, d) = (a.nrows(), a.ncols());
    let mut c = a.to_owned();
    for j in 0..d {
        let mu = (0..m).map(|i| c[(i, j)]).sum::<f64>() / m as f64;
        for i in 0..m {
            c[(i, j)] -= mu;
        }
    }
    let v = principal_directions(c.as_ref(), p);
    let mut scores = Mat::<f64>::zeros(m, v.ncols());
    faer::linalg::matmul::matmul(
        scores.as_mut(),
        faer::Accum::Replace,
        c.as_ref(),
        v.as_ref(),
        1.0,
        faer::get_global_parallelism(),
    );
    // Largest component first; unit variance; components with no variance are dropped.
    let take = scores.ncols();
    let mut cols: Vec<Vec<f64>> = Vec::new();
    for j in (0..take).rev() {
        let col: Vec<f64> = (0..m).map(|i| scores[(i, j)]).collect();
        let var = col.iter().map(|v| v * v).sum::<f64>() / (m as f64 - 1.0).max(1.0);
        if var > 1e-12 {
            let s = var.sqrt();
            cols.push(col.iter().map(|v| v / s).collect());
        }
    }
    Mat::from_fn(m, cols.len(), |i, j| cols[j][i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digamma_matches_known_values() {
        assert!((digamma_int(1) + 0.577_215_664_901_532_9).abs() < 1e-15);
        assert!((digamma_int(2) - 0.422_784_335_098_467_1).abs() < 1e-15);
        // ψ(100) and ψ(10000) from the series and from the harmonic sum agree.
        for n in [64usize, 100, 10_000] {
            let h = -0.577_215_664_901_532_9 + (1..n).map(|j| 1.0 / j as f64).sum::<f64>();
            assert!((digamma_int(n) - h).abs() < 1e-12, "{n}");
        }
    }
}
