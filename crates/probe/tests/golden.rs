//! The paper's probe against scikit-learn's `LogisticRegression()` on the cells
//! tests/golden/probe.py wrote.

use pretrace_probe::{paper_probe, LogRegOptions};
use safetensors::SafeTensors;

fn f64s(st: &SafeTensors, name: &str) -> Vec<f64> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn i64s(st: &SafeTensors, name: &str) -> Vec<i64> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn paper_probe_matches_scikit_learn() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/probe/cells.safetensors");
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut k = 0;
    let mut report = Vec::new();
    while st.tensor(&format!("cell{k}.x")).is_ok() {
        let t = st.tensor(&format!("cell{k}.x")).unwrap();
        let (n, d) = (t.shape()[0], t.shape()[1]);
        let x: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let y = i64s(&st, &format!("cell{k}.y"));
        let r = paper_probe(&x, d, &y, &LogRegOptions::default()).unwrap();
        let m = r.model.as_ref().unwrap();
        let want_coef = f64s(&st, &format!("cell{k}.coef"));
        let want_b = f64s(&st, &format!("cell{k}.intercept"))[0];
        let want_iter = i64s(&st, &format!("cell{k}.n_iter"))[0];
        let want_acc = f64s(&st, &format!("cell{k}.accuracy"))[0];
        let num: f64 = m
            .coef
            .iter()
            .zip(&want_coef)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            + (m.intercept - want_b).powi(2);
        let den: f64 = want_coef.iter().map(|b| b * b).sum::<f64>() + want_b * want_b;
        let rel = (num / den).sqrt();
        let acc = r.accuracy.unwrap();
        let examples = ((acc - want_acc) * r.n_test as f64).abs().round() as usize;
        report.push(format!("cell {k} ({n}×{d}): iterations {} vs {want_iter}, coef rel {rel:.2e}, accuracy {acc:.4} vs {want_acc:.4}", m.n_iter));
        assert!(
            examples <= 1,
            "cell {k}: accuracy {acc} vs scikit-learn {want_acc}"
        );
        assert!(
            rel < 1e-3,
            "cell {k}: coefficients differ by {rel:.2e} relative\n{}",
            report.join("\n")
        );
        assert_eq!(r.constant_features, 1);
        k += 1;
    }
    assert!(k >= 10);
    println!("{}", report.join("\n"));
}

#[test]
fn paper_probe_matches_scikit_learn_on_real_activations() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/probe/real.safetensors");
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let y = i64s(&st, "labels");
    let t = st.tensor("layer15.x").unwrap();
    let d = t.shape()[1];
    let x: Vec<f32> = t
        .data()
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    let r = paper_probe(&x, d, &y, &LogRegOptions::default()).unwrap();
    let m = r.model.unwrap();
    let want_coef = f64s(&st, "layer15.coef");
    let num: f64 = m
        .coef
        .iter()
        .zip(&want_coef)
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    let den: f64 = want_coef.iter().map(|b| b * b).sum();
    let rel = (num / den).sqrt();
    assert_eq!(m.n_iter as i64, i64s(&st, "layer15.n_iter")[0]);
    assert!(rel < 1e-3, "coefficients differ by {rel:.2e} relative");
    assert!((m.intercept - f64s(&st, "layer15.intercept")[0]).abs() < 1e-3);
    assert_eq!(r.accuracy.unwrap(), f64s(&st, "layer15.accuracy")[0]);
}
