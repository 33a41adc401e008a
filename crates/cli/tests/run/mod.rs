//! Running the `pretrace` binary from the extract and probe tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pretrace")
}

/// Runs `pretrace ARGS`: whether it succeeded, and its stderr.
pub fn pretrace(args: &[&str]) -> (bool, String) {
    let out = Command::new(bin())
        .args(args)
        .output()
        .expect("run pretrace");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command expected to succeed; returns its stderr.
pub fn ok(args: &[&str]) -> String {
    let (success, err) = pretrace(args);
    assert!(success, "pretrace {args:?} failed: {err}");
    err
}

/// Runs a command expected to fail without a panic; returns its one `error:` line.
pub fn fails(args: &[&str]) -> String {
    let (success, err) = pretrace(args);
    assert!(!success, "expected failure for {args:?}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let err = err.trim_end();
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with("error: "), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
    last.to_string()
}

/// A fresh scratch directory for one test.
pub fn scratch(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pretrace-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes one entry with the given activations (`[rows, d]` per layer) and labels into the store
/// at `dir` (created if needed), as `pretrace extract` would.
pub fn toy_entry(
    dir: &Path,
    checkpoint: &str,
    step: Option<u64>,
    dataset: &str,
    layers: &std::collections::BTreeMap<usize, Vec<f32>>,
    d: usize,
    labels: &[i64],
) {
    use pretrace_store::{CheckpointInfo, DatasetInfo, Extraction, Manifest, Store, StoreDType};
    let st = if dir.join("store.json").is_file() {
        Store::open(dir).unwrap()
    } else {
        Store::create(dir, "pretrace test").unwrap()
    };
    let rows = labels.len();
    let manifest = Manifest {
        store_format: pretrace_store::FORMAT_VERSION,
        tool: "pretrace test".into(),
        checkpoint: CheckpointInfo {
            name: checkpoint.into(),
            path: String::new(),
            step,
            tokens: None,
            config: serde_json::json!({}),
            weights: vec![],
            hub: None,
        },
        dataset: DatasetInfo {
            name: dataset.into(),
            path: String::new(),
            sha256: String::new(),
            rows,
            text_column: "statement".into(),
            label_column: Some("label".into()),
        },
        extraction: Extraction {
            site: "hook_resid_post".into(),
            layers: layers.keys().copied().collect(),
            token: "last".into(),
            template: None,
            special_tokens: true,
            compute_dtype: "f32".into(),
            store_dtype: "f32".into(),
            device: "cpu".into(),
        },
        tensors: std::collections::BTreeMap::new(),
        total_tokens: 0,
        files: Default::default(),
    };
    st.write(
        &manifest,
        layers,
        d,
        labels,
        &vec![1; rows],
        StoreDType::F32,
    )
    .unwrap();
}
