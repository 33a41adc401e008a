//! Steering vectors against float64 NumPy on the cells tests/golden/steer.py wrote.

use pretrace_steer::{build, Method, Rows};
use safetensors::SafeTensors;

fn f64s(st: &SafeTensors, name: &str) -> Vec<f64> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn every_method_matches_numpy() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/steer/cells.safetensors");
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut k = 0;
    let mut worst = 0f64;
    while let Ok(t) = st.tensor(&format!("cell{k}.x")) {
        let d = t.shape()[1];
        let x: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let y: Vec<i64> = st
            .tensor(&format!("cell{k}.y"))
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        for (method, mname) in [
            (Method::Paper, "paper"),
            (Method::MeanDiff, "mean-diff"),
            (Method::Pca, "pca"),
        ] {
            for (rows, rname) in [(Rows::FirstHalf, "half"), (Rows::All, "all")] {
                let want = f64s(&st, &format!("cell{k}.{mname}.{rname}"));
                let got = build(&x, d, &y, method, rows).unwrap();
                let scale = want.iter().map(|a| a * a).sum::<f64>().sqrt();
                let diff = got
                    .vector
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt();
                let rel = diff / scale;
                assert!(
                    rel < 1e-9,
                    "cell{k} {mname} {rname}: relative difference {rel:e}"
                );
                assert!((got.norm - scale).abs() <= 1e-9 * scale);
                worst = worst.max(rel);
            }
        }
        k += 1;
    }
    assert_eq!(k, 4);
    eprintln!("worst relative difference from NumPy: {worst:e}");
}

#[test]
fn one_class_rows_and_bad_labels_are_refused() {
    let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let e = build(&x, 2, &[1, 1, 0, 0], Method::Paper, Rows::FirstHalf).unwrap_err();
    assert!(
        e.to_string().contains("2 rows of label 1 and 0 of label 0"),
        "{e}"
    );
    assert!(e.to_string().contains("--rows all"), "{e}");
    assert!(build(&x, 2, &[1, 1, 0, 0], Method::Paper, Rows::All).is_ok());
    let e = build(&x, 2, &[1, -1, 0, 0], Method::Paper, Rows::All).unwrap_err();
    assert!(e.to_string().contains("label -1"), "{e}");
    let mut bad = x;
    bad[5] = f32::NAN;
    let e = build(&bad, 2, &[1, 0, 1, 0], Method::MeanDiff, Rows::All).unwrap_err();
    assert!(e.to_string().contains("row 2 holds a non-finite"), "{e}");
}
