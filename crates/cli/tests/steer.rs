//! `pretrace steer build`: the vector file, its provenance, and bad input.

use pretrace_steer::{build, Method, Rows};
use safetensors::SafeTensors;
use std::collections::BTreeMap;
use std::path::PathBuf;

mod run;
use run::{fails, ok, s, toy_entry};

fn scratch(name: &str) -> PathBuf {
    run::scratch("steer", name)
}

#[test]
fn writes_one_vector_per_layer_with_its_provenance() {
    let dir = scratch("build");
    let store = dir.join("store");
    let (n, d) = (40, 6);
    let labels: Vec<i64> = (0..n as i64).map(|i| (i * 7 % 3 == 0) as i64).collect();
    let layer = |seed: f32| -> Vec<f32> {
        (0..n * d)
            .map(|i| (i as f32 * seed).sin() + labels[i / d] as f32 * (i % d) as f32 * 0.1)
            .collect()
    };
    let layers = BTreeMap::from([(2usize, layer(0.37)), (5, layer(0.91))]);
    toy_entry(&store, "step500", Some(500), "truth", &layers, d, &labels);
    for (method, m) in [
        ("paper", Method::Paper),
        ("mean-diff", Method::MeanDiff),
        ("pca", Method::Pca),
    ] {
        let out = dir.join(format!("{method}.safetensors"));
        ok(&[
            "steer",
            "build",
            "--store",
            s(&store),
            "--checkpoint",
            "step500",
            "--dataset",
            "truth",
            "--layers",
            "2,5",
            "--method",
            method,
            "--out",
            s(&out),
        ]);
        let bytes = std::fs::read(&out).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        for (k, v) in [
            ("format", "pretrace-steering-vector"),
            ("checkpoint", "step500"),
            ("step", "500"),
            ("dataset", "truth"),
            ("layers", "2,5"),
            ("site", "hook_resid_post"),
            ("method", method),
            ("rows", "first-half"),
        ] {
            assert_eq!(meta.get(k).map(String::as_str), Some(v), "metadata {k}");
        }
        assert!(meta.contains_key("dataset_sha256") && meta.contains_key("norms"));
        for (l, x) in &layers {
            let t = st.tensor(&format!("blocks.{l}.hook_resid_post")).unwrap();
            assert_eq!(t.shape(), &[d]);
            let got: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let want = build(x, d, &labels, m, Rows::FirstHalf).unwrap();
            let want: Vec<f32> = want.vector.iter().map(|&v| v as f32).collect();
            assert_eq!(got, want, "{method} layer {l}");
        }
        assert_eq!(st.names().len(), 2);
    }
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = scratch("bad");
    let store = dir.join("store");
    let labels = vec![1, 1, 1, 0, 0, 0];
    toy_entry(
        &store,
        "step1",
        Some(1),
        "d",
        &BTreeMap::from([(0usize, vec![0.5f32; 12])]),
        2,
        &labels,
    );
    let out = dir.join("v.safetensors");
    let base = ["steer", "build", "--store", s(&store), "--out", s(&out)];
    let e = fails(
        &[
            &base[..],
            &["--checkpoint", "step9", "--dataset", "d", "--layers", "0"],
        ]
        .concat(),
    );
    assert!(
        e.contains("no entry step9/d; the store holds step1/d"),
        "{e}"
    );
    let e = fails(
        &[
            &base[..],
            &["--checkpoint", "step1", "--dataset", "d", "--layers", "3"],
        ]
        .concat(),
    );
    assert!(e.contains("layer 3 is not in the store"), "{e}");
    // The first half holds label 1 only.
    let e = fails(
        &[
            &base[..],
            &["--checkpoint", "step1", "--dataset", "d", "--layers", "0"],
        ]
        .concat(),
    );
    assert!(
        e.contains("3 rows of label 1 and 0 of label 0") && e.contains("--rows all"),
        "{e}"
    );
    assert!(!out.exists(), "nothing written on error");
}
