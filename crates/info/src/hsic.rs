//! Kernel dependence measures on Gaussian kernels, as the paper's code (`mi_estimators.py`) builds
//! them: for an `m × d` matrix A, `D[i,j] = |‖a_i‖² − 2 a_i·a_j + ‖a_j‖²|`,
//! `K = exp(−D / (2 σ² d))`, `H = I − 11ᵀ/m`, and the centred kernel `K̃ = K H` (right-multiplied
//! only).

use faer::linalg::solvers::SolveCore;
use faer::{Mat, MatRef};

/// The paper's kernel regularizer: `R = K̃ (K̃ + EPSILON · m · I)⁻¹`.
pub const EPSILON: f64 = 1e-5;

/// `K̃ = K H` for the rows of `a` (`m × d`): `K̃[i,j] = K[i,j] − mean_k K[i,k]`.
pub fn centered_kernel(a: MatRef<'_, f64>, sigma: f64) -> Mat<f64> {
    use faer::linalg::matmul::triangular::{matmul, BlockStructure};
    let (m, d) = (a.nrows(), a.ncols());
    // The Gram matrix's lower half (K is symmetric), then K there, then mirrored.
    let mut g = Mat::<f64>::zeros(m, m);
    matmul(
        g.as_mut(),
        BlockStructure::TriangularLower,
        faer::Accum::Replace,
        a,
        BlockStructure::Rectangular,
        a.transpose(),
        BlockStructure::Rectangular,
        1.0,
        faer::get_global_parallelism(),
    );
    let norms: Vec<f64> = (0..m).map(|i| g[(i, i)]).collect();
    let variance = 2.0 * sigma * sigma * d as f64;
    for j in 0..m {
        let col = g.col_mut(j).try_as_col_major_mut().unwrap().as_slice_mut();
        for (i, v) in col.iter_mut().enumerate().skip(j) {
            let dist = (norms[i] - 2.0 * *v + norms[j]).abs();
            *v = (-dist / variance).exp();
        }
    }
    const TILE: usize = 64;
    for j0 in (0..m).step_by(TILE) {
        for i0 in (j0..m).step_by(TILE) {
            for j in j0..(j0 + TILE).min(m) {
                for i in i0.max(j + 1)..(i0 + TILE).min(m) {
                    g[(j, i)] = g[(i, j)];
                }
            }
        }
    }
    // Right-multiplying by H subtracts each row's mean (K is symmetric: row i's mean is column i's).
    let row_mean: Vec<f64> = (0..m)
        .map(|j| {
            g.col(j)
                .try_as_col_major()
                .unwrap()
                .as_slice()
                .iter()
                .sum::<f64>()
                / m as f64
        })
        .collect();
    for j in 0..m {
        let col = g.col_mut(j).try_as_col_major_mut().unwrap().as_slice_mut();
        for (v, mu) in col.iter_mut().zip(&row_mean) {
            *v -= mu;
        }
    }
    g
}

/// `R = K̃ (K̃ + ε m I)⁻¹`, computed as the solve `(K̃ + ε m I) R = K̃` (the two factors commute: both
/// are polynomials in K̃), in place of `kc`.
pub fn regularized_projection(mut kc: Mat<f64>) -> Mat<f64> {
    let m = kc.nrows();
    let mut a = kc.clone();
    for i in 0..m {
        a[(i, i)] += EPSILON * m as f64;
    }
    let lu = a.partial_piv_lu();
    drop(a);
    lu.solve_in_place_with_conj(faer::Conj::No, kc.as_mut());
    kc
}

/// `tr(A B) = Σ_ij A[i,j] B[j,i]`, in tiles so that both matrices are read in cache-sized blocks.
pub fn trace_product(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> f64 {
    const TILE: usize = 64;
    let m = a.nrows();
    let mut total = 0.0;
    for j0 in (0..m).step_by(TILE) {
        let j1 = (j0 + TILE).min(m);
        for i0 in (0..m).step_by(TILE) {
            let i1 = (i0 + TILE).min(m);
            let mut s = 0.0;
            for j in j0..j1 {
                for i in i0..i1 {
                    s += a[(i, j)] * b[(j, i)];
                }
            }
            total += s;
        }
    }
    total
}

/// `Σ_ij A[i,j] B[i,j]` (= tr(A Bᵀ)).
pub fn frobenius_product(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> f64 {
    let mut total = 0.0;
    for j in 0..a.ncols() {
        let (ca, cb) = (
            a.col(j).try_as_col_major().unwrap().as_slice(),
            b.col(j).try_as_col_major().unwrap().as_slice(),
        );
        total += ca.iter().zip(cb).map(|(x, y)| x * y).sum::<f64>();
    }
    total
}

/// The paper's normalized HSIC (`hsic_normalized_cca`): `tr(R_A R_B)`.
pub fn nhsic_paper(a: MatRef<'_, f64>, b: MatRef<'_, f64>, sigma: f64) -> f64 {
    let ra = regularized_projection(centered_kernel(a, sigma));
    let rb = regularized_projection(centered_kernel(b, sigma));
    trace_product(ra.as_ref(), rb.as_ref())
}

/// The biased HSIC from centred kernels: `tr(K_A H K_B H) / (m − 1)² = tr(K̃_A K̃_B) / (m − 1)²`.
pub fn hsic_from_centered(ka: MatRef<'_, f64>, kb: MatRef<'_, f64>) -> f64 {
    let m = ka.nrows() as f64;
    trace_product(ka, kb) / ((m - 1.0) * (m - 1.0))
}

/// The biased HSIC of the paper's text, `(m−1)⁻² tr(K_A H K_B H)`.
pub fn hsic(a: MatRef<'_, f64>, b: MatRef<'_, f64>, sigma: f64) -> f64 {
    hsic_from_centered(
        centered_kernel(a, sigma).as_ref(),
        centered_kernel(b, sigma).as_ref(),
    )
}

/// `HSIC(A,B) / √(HSIC(A,A) · HSIC(B,B))`.
pub fn hsic_normalized(a: MatRef<'_, f64>, b: MatRef<'_, f64>, sigma: f64) -> f64 {
    let ka = centered_kernel(a, sigma);
    let kb = centered_kernel(b, sigma);
    normalize(
        hsic_from_centered(ka.as_ref(), kb.as_ref()),
        hsic_from_centered(ka.as_ref(), ka.as_ref()),
        hsic_from_centered(kb.as_ref(), kb.as_ref()),
    )
}

/// `hab / √(haa · hbb)`, 0 when either self-dependence is 0 (a constant input).
pub fn normalize(hab: f64, haa: f64, hbb: f64) -> f64 {
    let den = (haa * hbb).sqrt();
    if den > 0.0 {
        hab / den
    } else {
        0.0
    }
}
