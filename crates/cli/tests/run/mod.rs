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
