//! The information-plane estimators against float64 NumPy on the cells tests/golden/infoplane.py
//! wrote.

use faer::Mat;
use pretrace_info::ksg::{ksg, ksg_discrete, pca};
use pretrace_info::{cell_estimates, Estimator, Settings};
use safetensors::SafeTensors;

fn golden(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/infoplane")
        .join(name);
    std::fs::read(path).unwrap()
}

fn f64s(st: &SafeTensors, name: &str) -> Vec<f64> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn f32s(st: &SafeTensors, name: &str) -> (Vec<f32>, usize) {
    let t = st.tensor(name).unwrap();
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (v, t.shape()[1])
}

fn i64s(st: &SafeTensors, name: &str) -> Vec<i64> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn mat(st: &SafeTensors, name: &str) -> Mat<f64> {
    let p = st.tensor(name).unwrap().shape()[1];
    let v = f64s(st, name);
    Mat::from_fn(v.len() / p, p, |i, j| v[i * p + j])
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn kernel_estimators_match_numpy() {
    let bytes = golden("cells.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut k = 0;
    let (mut worst_n, mut worst_h) = (0f64, 0f64);
    while st.tensor(&format!("cell{k}.x")).is_ok() {
        let (x, dx) = f32s(&st, &format!("cell{k}.x"));
        let (t, dt) = f32s(&st, &format!("cell{k}.t"));
        let y = i64s(&st, &format!("cell{k}.y"));
        let settings = Settings {
            estimators: vec![
                Estimator::NhsicPaper,
                Estimator::Hsic,
                Estimator::HsicNormalized,
            ],
            sigma: f64s(&st, &format!("cell{k}.sigma"))[0],
            ..Settings::default()
        };
        let got = cell_estimates(&x, dx, &t, dt, &y, &settings);
        assert_eq!(got.len(), 3);
        for (e, i_tx, i_ty) in got {
            let (want, tol) = match e {
                Estimator::NhsicPaper => (f64s(&st, &format!("cell{k}.nhsic")), 1e-6),
                Estimator::Hsic => (f64s(&st, &format!("cell{k}.hsic")), 1e-8),
                Estimator::HsicNormalized => (f64s(&st, &format!("cell{k}.hsic_normalized")), 1e-8),
                Estimator::Ksg => unreachable!(),
            };
            for (g, w) in [(i_tx, want[0]), (i_ty, want[1])] {
                let r = rel(g, w);
                assert!(
                    r <= tol,
                    "cell{k} {}: {g} vs NumPy {w} (rel {r:e})",
                    e.name()
                );
                if e == Estimator::NhsicPaper {
                    worst_n = worst_n.max(r);
                } else {
                    worst_h = worst_h.max(r);
                }
            }
        }
        k += 1;
    }
    assert_eq!(k, 7);
    eprintln!("nhsic-paper worst rel {worst_n:e}; hsic forms worst rel {worst_h:e}");
}

#[test]
fn nearest_neighbour_estimators_match_the_reference() {
    let bytes = golden("ksg.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut k = 0;
    while st.tensor(&format!("case{k}.a")).is_ok() {
        let a = mat(&st, &format!("case{k}.a"));
        let b = mat(&st, &format!("case{k}.b"));
        let y = i64s(&st, &format!("case{k}.y"));
        let want = f64s(&st, &format!("case{k}.ksg"))[0];
        let got = ksg(a.as_ref(), b.as_ref(), 3);
        assert!((got - want).abs() < 1e-10, "case{k} ksg {got} vs {want}");
        let want = f64s(&st, &format!("case{k}.ross"))[0];
        let got = ksg_discrete(a.as_ref(), &y, 3);
        assert!((got - want).abs() < 1e-10, "case{k} ross {got} vs {want}");
        // The PCA scores' raw variances are the top singular values² / (n−1).
        let want = f64s(&st, &format!("case{k}.pca_var"));
        let scores = pca_raw_variances(&a, want.len());
        for (g, w) in scores.iter().zip(&want) {
            assert!(rel(*g, *w) < 1e-9, "case{k} pca {g} vs {w}");
        }
        k += 1;
    }
    assert_eq!(k, 5);
}

/// Variances of the unit-variance PCA scores' directions, recovered by regressing the scores on the
/// centred data: for component j, var_j = ‖C v_j‖²/(n−1) where v_j = Cᵀ s_j / ‖Cᵀ s_j‖.
fn pca_raw_variances(a: &Mat<f64>, take: usize) -> Vec<f64> {
    let (n, p) = (a.nrows(), a.ncols());
    let s = pca(a.as_ref(), take);
    let mean: Vec<f64> = (0..p)
        .map(|j| (0..n).map(|i| a[(i, j)]).sum::<f64>() / n as f64)
        .collect();
    (0..s.ncols())
        .map(|c| {
            let v: Vec<f64> = (0..p)
                .map(|j| (0..n).map(|i| (a[(i, j)] - mean[j]) * s[(i, c)]).sum())
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            (0..n)
                .map(|i| {
                    let proj: f64 = (0..p).map(|j| (a[(i, j)] - mean[j]) * v[j] / norm).sum();
                    proj * proj
                })
                .sum::<f64>()
                / (n as f64 - 1.0)
        })
        .collect()
}
