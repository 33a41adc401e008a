//! `pretrace steer sweep`: every (source, layer, alpha, task) cell, the baseline, Figures 4 and 5, the
//! Pearson r, resuming, and bad input. Sources are the three Pythia-style checkpoints of
//! tests/golden/sweep; the target is the last of them.

use std::path::{Path, PathBuf};

mod run;
use run::{fails, golden, ok, s};

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn sweep_args<'a>(
    store: &'a Path,
    data: &'a Path,
    ppl: &'a Path,
    out: &'a Path,
    target: &'a Path,
) -> Vec<&'a str> {
    vec![
        "steer",
        "sweep",
        "--store",
        s(store),
        "--dataset",
        "texts",
        "--layers",
        "1",
        "--alphas",
        "-4,4",
        "--model",
        s(target),
        "--task",
        "sst2",
        "--data",
        s(data),
        "--ppl-data",
        s(ppl),
        "--out",
        s(out),
    ]
}

#[test]
fn sweeps_sources_layers_and_alphas_into_a_table_and_figures() {
    let dir = run::scratch("steer-sweep", "run");
    let store = dir.join("store");
    let data = golden("sweep/texts.csv");
    ok(&[
        "extract",
        "--checkpoints",
        s(&golden("sweep")),
        "--data",
        s(&data),
        "--out",
        s(&store),
    ]);
    let ppl = dir.join("ppl.txt");
    std::fs::write(
        &ppl,
        "The quick brown fox jumps over the lazy dog\nPlease answer the question now\n",
    )
    .unwrap();
    let out = dir.join("out");
    let target: PathBuf = golden("sweep/step143000");
    let err = ok(&sweep_args(&store, &data, &ppl, &out, &target));
    assert!(err.contains("Pearson r"), "{err}");
    let j = json(&out.join("sweep.json"));
    let cells = j["cells"].as_array().unwrap();
    // Baseline (sst2, lambada) + 3 sources × 1 layer × 2 alphas × 2 tasks.
    assert_eq!(cells.len(), 2 + 3 * 2 * 2, "{cells:?}");
    for c in cells.iter().filter(|c| c["source"] != "none") {
        assert!(c["probe_accuracy"].as_f64().is_some());
        assert!(c["vector_norm"].as_f64().unwrap() > 0.0);
    }
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + cells.len());
    assert!(csv.starts_with("source,step,layer,alpha,task,metric,value,probe_accuracy,vector_norm"));
    // The baseline equals a plain `pretrace eval`.
    let plain = dir.join("plain");
    ok(&[
        "eval",
        "--model",
        s(&target),
        "--task",
        "sst2",
        "--data",
        s(&data),
        "--out",
        s(&plain),
    ]);
    let base = cells
        .iter()
        .find(|c| c["source"] == "none" && c["task"] == "sst2")
        .unwrap();
    assert_eq!(
        base["value"],
        json(&plain.join("results.json"))["metrics"]["acc"]
    );
    // Figure 4 (sst2 with perplexity beside it) and Figure 5 for the layer.
    for f in ["steer_alpha_sst2", "steer_gain_sst2_L1"] {
        for ext in ["png", "svg"] {
            assert!(
                out.join("figures").join(format!("{f}.{ext}")).is_file(),
                "{f}.{ext}"
            );
        }
    }
    let layer = &j["summary"]["sst2"]["layers"]["1"];
    assert_eq!(layer["points"].as_array().unwrap().len(), 3);
    assert!(layer["pearson_r"].is_null() || layer["pearson_r"].as_f64().unwrap().abs() <= 1.0);
    // A rerun measures nothing again.
    let again = ok(&sweep_args(&store, &data, &ppl, &out, &target));
    assert!(again.contains("resuming: 14 cells"), "{again}");
    assert!(!again.contains("[3/14]"), "{again}");

    // Bad input.
    let bad = |dataset: &str, layer: &str| {
        fails(&[
            "steer",
            "sweep",
            "--store",
            s(&store),
            "--dataset",
            dataset,
            "--layers",
            layer,
            "--alphas",
            "1",
            "--model",
            s(&target),
            "--task",
            "sst2",
            "--data",
            s(&data),
            "--out",
            s(&dir.join("bad")),
        ])
    };
    let e = bad("nope", "1");
    assert!(e.contains("no checkpoint holds dataset 'nope'"), "{e}");
    let e = bad("texts", "9");
    assert!(e.contains("layer 9"), "{e}");
}
