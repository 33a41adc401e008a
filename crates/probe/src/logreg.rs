//! L2-regularized logistic regression fitted as scikit-learn's `LogisticRegression()` fits it: the
//! objective `mean log-loss + ‖w‖² / (2·C·n)` (intercept unpenalized), minimized from zero by
//! L-BFGS-B as SciPy runs it for an unbounded problem (10 correction pairs, the Moré–Thuente line
//! search with ftol 1e-3, gtol 0.9, xtol 0.1, first step 1/‖g‖), stopping when the largest gradient
//! component is at most `tol`, when the relative decrease of the objective falls below 64·ε, or after
//! `max_iter` iterations.

use crate::linesearch::{Search, Task};

/// Settings; the defaults are scikit-learn's.
#[derive(Debug, Clone, Copy)]
pub struct LogRegOptions {
    /// Inverse regularization strength.
    pub c: f64,
    pub max_iter: usize,
    /// Largest gradient component at which the fit counts as converged.
    pub tol: f64,
}

impl Default for LogRegOptions {
    fn default() -> Self {
        LogRegOptions {
            c: 1.0,
            max_iter: 100,
            tol: 1e-4,
        }
    }
}

/// A fitted probe.
#[derive(Debug, Clone)]
pub struct LogReg {
    pub coef: Vec<f64>,
    pub intercept: f64,
    /// Iterations run (scikit-learn's `n_iter_`).
    pub n_iter: usize,
    /// Whether a convergence test stopped the fit before `max_iter`.
    pub converged: bool,
}

impl LogReg {
    /// `x·w + b` for one row.
    pub fn decision(&self, row: &[f64]) -> f64 {
        dot(row, &self.coef) + self.intercept
    }
    /// Predicted class (1 when the decision value is positive, as scikit-learn predicts).
    pub fn predict(&self, row: &[f64]) -> i64 {
        (self.decision(row) > 0.0) as i64
    }
}

/// Lanes of the dot product: four AVX-512 registers' worth of independent running sums, so that
/// the additions do not wait on each other.
const LANES: usize = 32;

/// Combines the 32 running sums in a fixed order (lane `k` of four eight-lane vectors first).
#[inline(always)]
fn combine(acc: &[f64; LANES]) -> f64 {
    let t: [f64; 8] = std::array::from_fn(|k| (acc[k] + acc[8 + k]) + (acc[16 + k] + acc[24 + k]));
    ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]))
}

#[inline(always)]
fn dot<T: Copy + Into<f64>>(a: &[T], b: &[f64]) -> f64 {
    // Running sums each over every 32nd element, combined in a fixed order: the same rounding on
    // every CPU, whichever version of the loop runs.
    let mut acc = [0f64; LANES];
    let chunks = a.len() / LANES;
    for (ca, cb) in a[..LANES * chunks]
        .chunks_exact(LANES)
        .zip(b[..LANES * chunks].chunks_exact(LANES))
    {
        for k in 0..LANES {
            acc[k] += ca[k].into() * cb[k];
        }
    }
    let mut s = combine(&acc);
    for i in LANES * chunks..a.len() {
        s += a[i].into() * b[i];
    }
    s
}

/// One row's half binomial loss and its gradient with respect to the raw prediction, computed as
/// scikit-learn computes them (`closs_grad_half_binomial` in `sklearn/_loss/_loss.pyx.tp`): one
/// `exp` and at most one `log1p`, with the same branches and the same expressions.
#[inline(always)]
fn loss_grad_sample(y: f64, raw: f64) -> (f64, f64) {
    if raw <= -37.0 {
        let e = raw.exp();
        (e - y * raw, e - y)
    } else if raw <= -2.0 {
        let e = raw.exp();
        (e.ln_1p() - y * raw, ((1.0 - y) * e - y) / (1.0 + e))
    } else if raw <= 18.0 {
        let e = (-raw).exp();
        (e.ln_1p() + (1.0 - y) * raw, ((1.0 - y) - y * e) / (1.0 + e))
    } else {
        let e = (-raw).exp();
        (e + (1.0 - y) * raw, ((1.0 - y) - y * e) / (1.0 + e))
    }
}

/// Rows given raw, with the column standardization `z = (x − mean)·scale` applied on the fly: the
/// features stay in their stored precision (f32 activations are read at half the memory traffic)
/// while every product and sum is f64.
struct Design<'a, T> {
    x: &'a [T],
    d: usize,
    mean: &'a [f64],
    scale: &'a [f64],
}

impl<T: Feature> Design<'_, T> {
    /// The objective and its gradient at `w` (`d` weights then the intercept).
    fn loss_grad(&self, y: &[f64], w: &[f64], l2: f64, g: &mut [f64], u: &mut [f64]) -> f64 {
        let (n, d) = (y.len(), self.d);
        // z·w = x·u − mean·u with u = scale ∘ w.
        let mut shift = 0.0;
        for j in 0..d {
            u[j] = self.scale[j] * w[j];
            shift += self.mean[j] * u[j];
        }
        g.iter_mut().for_each(|v| *v = 0.0);
        let (loss, gb) = T::rows(self.x, y, &u[..d], w[d] - shift, &mut g[..d]);
        // Σᵢ rᵢ zᵢⱼ = scaleⱼ · (Σᵢ rᵢ xᵢⱼ − meanⱼ Σᵢ rᵢ).
        let inv = 1.0 / n as f64;
        let mut penalty = 0.0;
        for j in 0..d {
            let gj = self.scale[j] * (g[j] - self.mean[j] * gb);
            g[j] = gj * inv + l2 * w[j];
            penalty += w[j] * w[j];
        }
        g[d] = gb * inv;
        loss * inv + 0.5 * l2 * penalty
    }
}

/// Σ log-loss and Σ residual over the rows, accumulating `Xᵀ·residual` into `g`.
#[inline(always)]
fn rows_kernel<T: Copy + Into<f64>>(
    x: &[T],
    y: &[f64],
    w: &[f64],
    b: f64,
    g: &mut [f64],
) -> (f64, f64) {
    let d = w.len();
    let (mut loss, mut gb) = (0.0, 0.0);
    for (row, &yi) in x.chunks_exact(d).zip(y) {
        let raw = dot(row, w) + b;
        let (l, r) = loss_grad_sample(yi, raw);
        loss += l;
        gb += r;
        for (gj, &xj) in g.iter_mut().zip(row) {
            *gj += r * xj.into();
        }
    }
    (loss, gb)
}

/// Feature types the fit reads rows of: f32 activations (with a hand-vectorized AVX-512 pass) and
/// f64.
pub trait Feature: Copy + Into<f64> {
    /// [`rows_pass`] for this type.
    fn rows(x: &[Self], y: &[f64], w: &[f64], b: f64, g: &mut [f64]) -> (f64, f64);
}

impl Feature for f64 {
    fn rows(x: &[f64], y: &[f64], w: &[f64], b: f64, g: &mut [f64]) -> (f64, f64) {
        rows_pass(x, y, w, b, g)
    }
}

impl Feature for f32 {
    fn rows(x: &[f32], y: &[f64], w: &[f64], b: f64, g: &mut [f64]) -> (f64, f64) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { rows_f32_avx512(x, y, w, b, g) };
        }
        rows_pass(x, y, w, b, g)
    }
}

/// [`rows_kernel`] for f32 rows in AVX-512 (the compiler vectorizes the mixed-width reduction only
/// two lanes wide), two rows at a time: their dot products share the loads of `w`, and one pass adds
/// both rows' terms to `g`. Each dot product keeps four registers of running sums combined in
/// [`dot`]'s order, and `g` receives row i's product before row i+1's, each as a product then a sum,
/// so the arithmetic is the portable version's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rows_f32_avx512(x: &[f32], y: &[f64], w: &[f64], b: f64, g: &mut [f64]) -> (f64, f64) {
    use std::arch::x86_64::*;
    let d = w.len();
    let n32 = d / LANES * LANES;
    let n8 = d / 8 * 8;
    let (mut loss, mut gb) = (0.0, 0.0);
    // The row's dot product with w, in [`dot`]'s order.
    let dot1 = |row: &[f32]| -> f64 {
        let mut acc = [_mm512_setzero_pd(); 4];
        let mut i = 0;
        while i < n32 {
            for (m, a) in acc.iter_mut().enumerate() {
                // SAFETY: i + 8m + 8 <= n32 <= d = row.len() = w.len().
                unsafe {
                    let xa = _mm512_cvtps_pd(_mm256_loadu_ps(row.as_ptr().add(i + 8 * m)));
                    let wb = _mm512_loadu_pd(w.as_ptr().add(i + 8 * m));
                    *a = _mm512_add_pd(*a, _mm512_mul_pd(xa, wb));
                }
            }
            i += LANES;
        }
        finish(&acc, row, w, n32)
    };
    #[inline(always)]
    fn finish(acc: &[__m512d; 4], row: &[f32], w: &[f64], n32: usize) -> f64 {
        let mut l = [0f64; LANES];
        for (m, a) in acc.iter().enumerate() {
            // SAFETY: l holds 32 f64; each store writes eight of them.
            unsafe { _mm512_storeu_pd(l.as_mut_ptr().add(8 * m), *a) };
        }
        let mut s = combine(&l);
        for j in n32..w.len() {
            s += row[j] as f64 * w[j];
        }
        s
    }
    let mut term = |raw: f64, yi: f64| -> f64 {
        let (l, r) = loss_grad_sample(yi, raw);
        loss += l;
        gb += r;
        r
    };
    let mut pairs = x.chunks_exact(2 * d);
    let mut k = 0;
    for two in pairs.by_ref() {
        let (r0, r1) = two.split_at(d);
        let (mut a0, mut a1) = ([_mm512_setzero_pd(); 4], [_mm512_setzero_pd(); 4]);
        let mut i = 0;
        while i < n32 {
            for m in 0..4 {
                // SAFETY: i + 8m + 8 <= n32 <= d = r0.len() = r1.len() = w.len().
                unsafe {
                    let wb = _mm512_loadu_pd(w.as_ptr().add(i + 8 * m));
                    let x0 = _mm512_cvtps_pd(_mm256_loadu_ps(r0.as_ptr().add(i + 8 * m)));
                    let x1 = _mm512_cvtps_pd(_mm256_loadu_ps(r1.as_ptr().add(i + 8 * m)));
                    a0[m] = _mm512_add_pd(a0[m], _mm512_mul_pd(x0, wb));
                    a1[m] = _mm512_add_pd(a1[m], _mm512_mul_pd(x1, wb));
                }
            }
            i += LANES;
        }
        let q0 = term(finish(&a0, r0, w, n32) + b, y[k]);
        let q1 = term(finish(&a1, r1, w, n32) + b, y[k + 1]);
        k += 2;
        let (v0, v1) = (_mm512_set1_pd(q0), _mm512_set1_pd(q1));
        let mut j = 0;
        while j < n8 {
            // SAFETY: j + 8 <= n8 <= d = r0.len() = r1.len() = g.len().
            unsafe {
                let x0 = _mm512_cvtps_pd(_mm256_loadu_ps(r0.as_ptr().add(j)));
                let x1 = _mm512_cvtps_pd(_mm256_loadu_ps(r1.as_ptr().add(j)));
                let gp = g.as_mut_ptr().add(j);
                let s0 = _mm512_add_pd(_mm512_loadu_pd(gp), _mm512_mul_pd(v0, x0));
                _mm512_storeu_pd(gp, _mm512_add_pd(s0, _mm512_mul_pd(v1, x1)));
            }
            j += 8;
        }
        for j in n8..d {
            g[j] += q0 * r0[j] as f64;
            g[j] += q1 * r1[j] as f64;
        }
    }
    let rest = pairs.remainder();
    if !rest.is_empty() {
        let q = term(dot1(rest) + b, y[k]);
        let v = _mm512_set1_pd(q);
        let mut j = 0;
        while j < n8 {
            // SAFETY: j + 8 <= n8 <= d = rest.len() = g.len().
            unsafe {
                let xa = _mm512_cvtps_pd(_mm256_loadu_ps(rest.as_ptr().add(j)));
                let gp = g.as_mut_ptr().add(j);
                _mm512_storeu_pd(gp, _mm512_add_pd(_mm512_loadu_pd(gp), _mm512_mul_pd(v, xa)));
            }
            j += 8;
        }
        for j in n8..d {
            g[j] += q * rest[j] as f64;
        }
    }
    (loss, gb)
}

/// [`rows_kernel`] compiled for the widest vector unit the CPU has, chosen at run time; the
/// arithmetic is the same in every version.
fn rows_pass<T: Copy + Into<f64>>(
    x: &[T],
    y: &[f64],
    w: &[f64],
    b: f64,
    g: &mut [f64],
) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn v4<T: Copy + Into<f64>>(
            x: &[T],
            y: &[f64],
            w: &[f64],
            b: f64,
            g: &mut [f64],
        ) -> (f64, f64) {
            rows_kernel(x, y, w, b, g)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn v3<T: Copy + Into<f64>>(
            x: &[T],
            y: &[f64],
            w: &[f64],
            b: f64,
            g: &mut [f64],
        ) -> (f64, f64) {
            rows_kernel(x, y, w, b, g)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { v4(x, y, w, b, g) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { v3(x, y, w, b, g) };
        }
    }
    rows_kernel(x, y, w, b, g)
}

const M: usize = 10;
const MAXLS: usize = 50;
const BIG: f64 = 1e10;

/// Fits on `x` (`[n, d]`, row-major, f64) and 0/1 labels `y`.
pub fn fit(x: &[f64], y: &[f64], d: usize, opts: &LogRegOptions) -> LogReg {
    let (mean, scale) = (vec![0.0; d], vec![1.0; d]);
    fit_design(
        &Design {
            x,
            d,
            mean: &mean,
            scale: &scale,
        },
        y,
        opts,
    )
}

/// Fits on the standardized features `(x − mean) · scale` (per column) without materializing them;
/// `x` is `[n, d]` row-major in its stored precision.
pub fn fit_standardized<T: Feature>(
    x: &[T],
    d: usize,
    mean: &[f64],
    scale: &[f64],
    y: &[f64],
    opts: &LogRegOptions,
) -> LogReg {
    fit_design(&Design { x, d, mean, scale }, y, opts)
}

fn fit_design<T: Feature>(design: &Design<T>, y: &[f64], opts: &LogRegOptions) -> LogReg {
    let d = design.d;
    let mut u = vec![0f64; d];
    let n = y.len();
    let p = d + 1;
    let l2 = 1.0 / (opts.c * n as f64);
    let eps = f64::EPSILON;
    let factr_tol = 64.0 * eps;
    let mut xk = vec![0f64; p];
    let mut g = vec![0f64; p];
    let mut f = design.loss_grad(y, &xk, l2, &mut g, &mut u);
    let inf_norm = |v: &[f64]| v.iter().fold(0f64, |m, a| m.max(a.abs()));
    let mut s_list: Vec<Vec<f64>> = Vec::new();
    let mut y_list: Vec<Vec<f64>> = Vec::new();
    let mut rho: Vec<f64> = Vec::new();
    let mut theta = 1.0;
    let mut iter = 0usize;
    let finish = |xk: Vec<f64>, iter: usize, converged: bool| LogReg {
        intercept: xk[d],
        coef: xk[..d].to_vec(),
        n_iter: iter,
        converged,
    };
    if inf_norm(&g) <= opts.tol {
        return finish(xk, 0, true);
    }
    let mut dir = vec![0f64; p];
    let mut gnew = vec![0f64; p];
    let mut xnew = vec![0f64; p];
    loop {
        // Direction: −H·g, H the L-BFGS inverse Hessian with H₀ = I/θ (the unconstrained step of
        // L-BFGS-B's compact form).
        let k = s_list.len();
        let mut q = g.clone();
        let mut alpha = vec![0f64; k];
        for i in (0..k).rev() {
            alpha[i] = rho[i] * dot(&s_list[i], &q);
            for (qj, yj) in q.iter_mut().zip(&y_list[i]) {
                *qj -= alpha[i] * yj;
            }
        }
        for qj in q.iter_mut() {
            *qj /= theta;
        }
        for i in 0..k {
            let beta = rho[i] * dot(&y_list[i], &q);
            for (qj, sj) in q.iter_mut().zip(&s_list[i]) {
                *qj += sj * (alpha[i] - beta);
            }
        }
        for (dj, qj) in dir.iter_mut().zip(&q) {
            *dj = -qj;
        }
        let gd0 = dot(&g, &dir);
        let f0 = f;
        // The line search from xk along dir: the accepted step and the directional derivative there,
        // or None when dir is not a descent direction or the search fails.
        let accepted: Option<(f64, f64)> = 'search: {
            if gd0 >= 0.0 {
                break 'search None;
            }
            let dnorm = dot(&dir, &dir).sqrt();
            let stp0 = if iter == 0 {
                (1.0 / dnorm).min(BIG)
            } else {
                1.0
            };
            let (mut search, mut stp) = Search::start(f, gd0, stp0, 1e-3, 0.9, 0.1, 0.0, BIG);
            for evals in 1.. {
                for ((xn, &x0), &dj) in xnew.iter_mut().zip(&xk).zip(&dir) {
                    *xn = if stp == 1.0 { x0 + dj } else { stp * dj + x0 };
                }
                let fnew = design.loss_grad(y, &xnew, l2, &mut gnew, &mut u);
                let gd = dot(&gnew, &dir);
                let (task, next) = search.step(fnew, gd, stp);
                if task != Task::Fg {
                    f = fnew;
                    break 'search Some((stp, gd));
                }
                if evals >= MAXLS {
                    break;
                }
                stp = next;
            }
            None
        };
        let Some((stp, gd)) = accepted else {
            // L-BFGS-B's restart: forget the pairs and start again from the gradient; with no
            // pairs to forget, stop.
            if k == 0 {
                return finish(xk, iter, false);
            }
            s_list.clear();
            y_list.clear();
            rho.clear();
            theta = 1.0;
            continue;
        };
        // A new iterate.
        let s: Vec<f64> = dir.iter().map(|dj| stp * dj).collect();
        let yv: Vec<f64> = gnew.iter().zip(&g).map(|(a, b)| a - b).collect();
        std::mem::swap(&mut xk, &mut xnew);
        std::mem::swap(&mut g, &mut gnew);
        iter += 1;
        if iter >= opts.max_iter {
            let converged = inf_norm(&g) <= opts.tol;
            return finish(xk, iter, converged);
        }
        if inf_norm(&g) <= opts.tol {
            return finish(xk, iter, true);
        }
        let ddum = f0.abs().max(f.abs()).max(1.0);
        if f0 - f <= factr_tol * ddum {
            return finish(xk, iter, true);
        }
        let rr = dot(&yv, &yv);
        let (dr, ddum) = if stp == 1.0 {
            (gd - gd0, -gd0)
        } else {
            ((gd - gd0) * stp, -gd0 * stp)
        };
        if dr <= eps * ddum {
            continue; // skip the update: curvature too small
        }
        if s_list.len() == M {
            s_list.remove(0);
            y_list.remove(0);
            rho.remove(0);
        }
        s_list.push(s);
        y_list.push(yv);
        rho.push(1.0 / dr);
        theta = rr / dr;
    }
}

#[cfg(test)]
mod tests {
    use super::{rows_kernel, Feature};

    #[test]
    fn every_version_of_the_pass_rounds_alike() {
        // d = 77 covers the 32-lane body and the tail.
        let (n, d) = (9, 77);
        let x: Vec<f32> = (0..n * d)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let y: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
        let w: Vec<f64> = (0..d)
            .map(|j| ((j * 13 % 29) as f64 - 14.0) * 0.07)
            .collect();
        let (mut g1, mut g2) = (vec![0.0; d], vec![0.0; d]);
        let a = <f32 as Feature>::rows(&x, &y, &w, 0.3, &mut g1);
        let b = rows_kernel(&x, &y, &w, 0.3, &mut g2);
        assert_eq!(a, b);
        assert_eq!(g1, g2);
    }
}
