//! `pretrace infoplane`: estimates over a store, equal to the library's on the same rows, and bad
//! input.

use pretrace_info::{cell_estimates, Estimator, Settings};
use pretrace_store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod run;
use run::{fails, golden, ok, s, toy_entry};

fn scratch(name: &str) -> PathBuf {
    run::scratch("infoplane", name)
}

/// (checkpoint, dataset, layer, estimator) → (i_tx, i_ty, m).
type Table = BTreeMap<(String, String, usize, String), (f64, f64, usize)>;

/// `infoplane.csv` as a [`Table`].
fn read(dir: &Path) -> Table {
    let text = std::fs::read_to_string(dir.join("infoplane.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "checkpoint,step,dataset,layer,estimator,i_tx,i_ty,m"
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                (
                    f[0].to_string(),
                    f[2].to_string(),
                    f[3].parse().unwrap(),
                    f[4].to_string(),
                ),
                (
                    f[5].parse().unwrap(),
                    f[6].parse().unwrap(),
                    f[7].parse().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn estimates_every_cell_as_the_library_does() {
    let dir = scratch("cells");
    let store = dir.join("store");
    ok(&[
        "extract",
        "--checkpoints",
        s(&golden("sweep")),
        "--data",
        s(&golden("sweep/texts.csv")),
        "--out",
        s(&store),
    ]);
    let out = dir.join("ip");
    ok(&[
        "infoplane",
        "--store",
        s(&store),
        "--out",
        s(&out),
        "--estimator",
        "nhsic-paper,hsic,hsic-normalized,ksg",
        "--pca-dims",
        "2",
    ]);
    let rows = read(&out);
    assert_eq!(
        rows.len(),
        3 * 3 * 4,
        "3 checkpoints × 3 layers × 4 estimators"
    );
    // Each value equals the library's estimate on the stored rows (X = the lowest layer, 0).
    let st = Store::open(&store).unwrap();
    let e = st.read("step1000", "texts").unwrap();
    let x = &e.layers[&0];
    let settings = Settings {
        estimators: vec![
            Estimator::NhsicPaper,
            Estimator::Hsic,
            Estimator::HsicNormalized,
            Estimator::Ksg,
        ],
        pca_dims: 2,
        ..Settings::default()
    };
    for l in [0usize, 1, 2] {
        let t = &e.layers[&l];
        for (est, i_tx, i_ty) in
            cell_estimates(&x.data, x.cols, &t.data, t.cols, &e.labels, &settings)
        {
            let key = (
                "step1000".to_string(),
                "texts".to_string(),
                l,
                est.name().to_string(),
            );
            let got = rows[&key];
            assert_eq!((got.0, got.1), (i_tx, i_ty), "{key:?}");
            assert_eq!(got.2, 15, "floor(0.8 · 19) training rows");
        }
    }
    // I(X;X) under the normalized HSIC is 1; the paper's nHSIC of a layer with itself is tr(R²) > 0.
    let k = |l: usize, e: &str| rows[&("step0".to_string(), "texts".to_string(), l, e.to_string())];
    assert!((k(0, "hsic-normalized").0 - 1.0).abs() < 1e-12);
    assert!(rows.values().all(|v| v.0.is_finite() && v.1.is_finite()));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("infoplane.json")).unwrap())
            .unwrap();
    assert_eq!(json["settings"]["sigma"], 50.0);
    assert_eq!(json["settings"]["ksg"]["pca_dims"], 2);
    assert_eq!(json["rows"].as_array().unwrap().len(), 36);
    // Layer selection and another input layer.
    let out2 = dir.join("ip2");
    ok(&[
        "infoplane",
        "--store",
        s(&store),
        "--out",
        s(&out2),
        "--layers",
        "2",
        "--input-layer",
        "1",
        "--checkpoints",
        "step0",
    ]);
    let rows2 = read(&out2);
    assert_eq!(rows2.len(), 1);
    let x1 = &e.layers[&1];
    let e0 = st.read("step0", "texts").unwrap();
    let want = cell_estimates(
        &e0.layers[&1].data,
        x1.cols,
        &e0.layers[&2].data,
        x1.cols,
        &e0.labels,
        &Settings::default(),
    );
    let got = rows2.values().next().unwrap();
    assert_eq!((got.0, got.1), (want[0].1, want[0].2));
}

#[test]
fn single_class_sets_give_zero_label_information() {
    let dir = scratch("oneclass");
    let store = dir.join("store");
    let n = 30;
    let act: Vec<f32> = (0..n * 3).map(|i| (i as f32 * 0.61).sin()).collect();
    let act2: Vec<f32> = act.iter().map(|v| v * v).collect();
    toy_entry(
        &store,
        "step1",
        Some(1),
        "ones",
        &BTreeMap::from([(0, act), (1, act2)]),
        3,
        &vec![1; n],
    );
    let out = dir.join("ip");
    ok(&[
        "infoplane",
        "--store",
        s(&store),
        "--out",
        s(&out),
        "--estimator",
        "nhsic-paper,hsic-normalized",
    ]);
    let rows = read(&out);
    assert_eq!(rows.len(), 4);
    for (k, v) in &rows {
        assert_eq!(v.1, 0.0, "{k:?}: I(T;Y) of a constant label");
        assert!(v.0.is_finite() && v.0 > 0.0, "{k:?}");
    }
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = scratch("bad");
    let out = dir.join("ip");
    let empty = dir.join("empty");
    Store::create(&empty, "pretrace test").unwrap();
    let e = fails(&["infoplane", "--store", s(&empty), "--out", s(&out)]);
    assert!(e.contains("no entries"), "{e}");
    // NaN activations name the cell.
    let nan = dir.join("nan");
    let mut act: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin()).collect();
    act[21] = f32::NAN;
    let labels: Vec<i64> = (0..10).map(|i| i % 2).collect();
    let clean: Vec<f32> = (0..40).map(|i| (i as f32 * 0.11).cos()).collect();
    toy_entry(
        &nan,
        "step7",
        Some(7),
        "toy",
        &BTreeMap::from([(0, clean.clone()), (3, act)]),
        4,
        &labels,
    );
    let e = fails(&["infoplane", "--store", s(&nan), "--out", s(&out)]);
    assert!(
        e.contains("checkpoint 'step7', dataset 'toy', layer 3") && e.contains("non-finite"),
        "{e}"
    );
    // A dataset missing from a checkpoint; layers that differ.
    let grid = dir.join("grid");
    toy_entry(
        &grid,
        "step1",
        Some(1),
        "a",
        &BTreeMap::from([(0, clean.clone())]),
        4,
        &labels,
    );
    toy_entry(
        &grid,
        "step2",
        Some(2),
        "a",
        &BTreeMap::from([(0, clean.clone()), (1, clean.clone())]),
        4,
        &labels,
    );
    let e = fails(&["infoplane", "--store", s(&grid), "--out", s(&out)]);
    assert!(
        e.contains("holds layers [0] in checkpoint 'step1' but [0, 1] in 'step2'"),
        "{e}"
    );
    toy_entry(
        &grid,
        "step2",
        Some(2),
        "b",
        &BTreeMap::from([(0, clean.clone())]),
        4,
        &labels,
    );
    let e = fails(&[
        "infoplane",
        "--store",
        s(&grid),
        "--out",
        s(&out),
        "--datasets",
        "b",
    ]);
    assert!(
        e.contains("dataset 'b' is missing from checkpoint 'step1'"),
        "{e}"
    );
    // Settings.
    let e = fails(&[
        "infoplane",
        "--store",
        s(&grid),
        "--out",
        s(&out),
        "--estimator",
        "mine",
    ]);
    assert!(e.contains("--estimator mine: unknown"), "{e}");
    let e = fails(&[
        "infoplane",
        "--store",
        s(&grid),
        "--out",
        s(&out),
        "--checkpoints",
        "step1",
        "--input-layer",
        "5",
    ]);
    assert!(e.contains("input layer 5 is not in the store"), "{e}");
    assert!(
        !out.join("infoplane.csv").exists(),
        "nothing written on error"
    );
}
