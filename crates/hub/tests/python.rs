//! Both ways with Python's `huggingface_hub` (0.36.0, installed from PyPI into `.cache/` on first
//! use; without it the test prints a SKIP line): it reads the cache pretrace wrote, and pretrace
//! reads the cache it wrote, both downloaded from the local stand-in for the hub. The two caches
//! hold the same files, links and refs.

#[path = "../../../tests/support/pypi.rs"]
mod pypi;

use pretrace_hub::fake::{FakeHub, FakeRepo};
use pretrace_hub::{resolve_cached, Cache, ClientOptions, HubClient, HubRef};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const REPO: &str = "tiny/suite";
const FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden")
}

/// Every path below `root` (`.locks` aside) with what it is: a link's target, a file's sha256.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().filter_map(|e| e.ok()) {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            if rel.starts_with(".locks") {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                );
            } else if m.is_dir() {
                out.insert(rel, "dir".into());
                stack.push(p);
            } else {
                out.insert(rel, pretrace_core::sha256_hex(&std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn huggingface_hub_and_pretrace_read_each_others_cache() {
    let site = match pypi::pip_target("huggingface_hub", "0.36.0", "pyhub") {
        Ok(s) => s,
        Err(why) => {
            pypi::skip("huggingface_hub unavailable", &why);
            return;
        }
    };
    let mut repo = FakeRepo::default();
    for step in ["step0", "step1000"] {
        repo.add_folder(step, &golden().join("sweep").join(step))
            .unwrap();
    }
    let hub = FakeHub::start(BTreeMap::from([(REPO.to_string(), repo)])).unwrap();
    let root = std::env::temp_dir().join(format!("pretrace-hub-python-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let ours = root.join("ours");
    let theirs = root.join("theirs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hf_cache.py");
    let python = |args: &[&str]| {
        let out = Command::new("python3")
            .arg(&script)
            .args(args)
            .env("PYTHONPATH", &site)
            .env("HF_ENDPOINT", hub.endpoint())
            .env("HF_HUB_DISABLE_TELEMETRY", "1")
            .env_remove("HF_TOKEN")
            .env("HF_HOME", root.join("hf-home"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    // pretrace downloads; huggingface_hub reads.
    let cache = Cache::new(&ours);
    let client = HubClient::new(ClientOptions {
        endpoint: hub.endpoint(),
        token: None,
        timeout: Duration::from_secs(10),
    });
    for rev in ["step0", "step1000"] {
        for f in FILES {
            client
                .download(&cache, REPO, rev, f, &mut |_, _| {})
                .unwrap()
                .unwrap();
        }
    }
    let v: serde_json::Value = serde_json::from_str(&python(&[
        "read",
        ours.to_str().unwrap(),
        REPO,
        "model.safetensors",
        "step0",
        "step1000",
    ]))
    .unwrap();
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
    let revs = v["repos"][0]["revisions"].as_array().unwrap();
    assert_eq!(v["repos"][0]["repo_id"], REPO);
    assert_eq!(revs.len(), 2);
    let mut refs: Vec<String> = revs
        .iter()
        .flat_map(|r| {
            r["refs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
        })
        .collect();
    refs.sort();
    assert_eq!(refs, ["step0", "step1000"]);
    for r in revs {
        assert_eq!(r["files"], serde_json::json!(FILES), "{r}");
    }
    for rev in ["step0", "step1000"] {
        let want =
            std::fs::read(golden().join("sweep").join(rev).join("model.safetensors")).unwrap();
        let hex: String = want.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            v["loaded"][rev].as_str() == Some(hex.as_str()),
            "{rev} loads through huggingface_hub"
        );
    }

    // huggingface_hub downloads; pretrace reads.
    python(&[
        "write",
        theirs.to_str().unwrap(),
        REPO,
        &FILES.join(","),
        "step0",
        "step1000",
    ]);
    let (suite, _) = resolve_cached(
        &HubRef::parse("hf:tiny/suite").unwrap(),
        Some("step*"),
        &Cache::new(&theirs),
        true,
    )
    .unwrap();
    let names: Vec<&str> = suite.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["step0", "step1000"]);
    for c in &suite {
        for f in FILES {
            assert_eq!(
                std::fs::read(c.path.join(f)).unwrap(),
                std::fs::read(golden().join("sweep").join(&c.name).join(f)).unwrap()
            );
        }
    }

    // The two caches are the same, file for file and link for link.
    assert_eq!(tree(&ours), tree(&theirs));
    let _ = std::fs::remove_dir_all(&root);
}
