//! Token ids against transformers 4.x's AutoTokenizer on the same files (tests/golden/tokenizer_ids.py):
//! SentencePiece `tokenizer.model` converted as LlamaTokenizerFast converts it (BPE and Unigram,
//! legacy and not, with and without the prefix space), `tokenizer_config.json`'s `add_bos_token` /
//! `add_eos_token` overriding `tokenizer.json`'s post-processor, GPT-NeoX with BOS, and Mistral-7B's
//! real tokenizer.model; on the project's edge-case texts and the first rows of the paper's CSVs.

#[path = "../../../tests/support/pypi.rs"]
mod pypi;

use pretrace_model::Tokenizer;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/tokenizers")
}

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/tracingllm")
}

fn ids_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(golden().join("ids.json")).unwrap()).unwrap()
}

fn texts() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(golden().join("texts.json")).unwrap()).unwrap()
}

fn want(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

/// Compares one case's ids on `texts` (both with and without special tokens).
fn compare(tok: &Tokenizer, case: &str, texts: &[String], expect: &Value) -> usize {
    let mut n = 0;
    for (key, special) in [("with", true), ("without", false)] {
        let exp = want(&expect[key]);
        assert_eq!(
            exp.len(),
            texts.len(),
            "{case}: golden has another row count"
        );
        for (t, e) in texts.iter().zip(&exp) {
            let got = tok.encode_with(t, special).unwrap();
            assert_eq!(&got, e, "{case} ({key} special tokens): {t:?}");
            n += 1;
        }
    }
    n
}

fn check_case(dir: &Path, case: &str, model_type: &str) {
    let all = ids_json();
    let c = &all["cases"][case];
    assert!(c.is_object(), "no golden for {case}");
    let tok = Tokenizer::from_dir(dir, Some(model_type))
        .unwrap()
        .expect("a tokenizer");
    let mut n = compare(&tok, case, &texts(), &c["texts"]);
    let paper = shared();
    if paper.is_dir() {
        let rows = all["rows_per_csv"].as_u64().unwrap() as usize;
        for (name, exp) in c["paper"].as_object().unwrap() {
            let ds = pretrace_data::Dataset::read(&paper.join(name), &Default::default()).unwrap();
            let texts: Vec<String> = ds.rows.iter().take(rows).map(|r| r.text.clone()).collect();
            n += compare(&tok, &format!("{case} {name}"), &texts, exp);
        }
    } else {
        pypi::skip(
            &format!("tokenizer ids of {case} on the paper's CSV rows"),
            "../shared/datasets/tracingllm is absent",
        );
    }
    assert!(n > 0);
}

#[test]
fn sentencepiece_bpe_converts_as_llama_tokenizer_fast() {
    check_case(&golden().join("spm_bpe"), "spm_bpe", "llama");
}

#[test]
fn sentencepiece_non_legacy_uses_metaspace_first() {
    check_case(
        &golden().join("spm_bpe_nonlegacy"),
        "spm_bpe_nonlegacy",
        "llama",
    );
}

#[test]
fn sentencepiece_without_prefix_space() {
    check_case(
        &golden().join("spm_bpe_no_prefix"),
        "spm_bpe_no_prefix",
        "llama",
    );
}

#[test]
fn sentencepiece_unigram_converts_too() {
    check_case(&golden().join("spm_unigram"), "spm_unigram", "llama");
}

#[test]
fn add_bos_token_false_overrides_the_post_processor() {
    check_case(&golden().join("json_no_bos"), "json_no_bos", "llama");
}

#[test]
fn add_eos_token_true_appends_eos() {
    check_case(&golden().join("json_eos"), "json_eos", "llama");
}

#[test]
fn gpt_neox_add_bos_token_prepends_bos() {
    check_case(&golden().join("neox_bos"), "neox_bos", "gpt_neox");
}

#[test]
fn mistral_7b_real_tokenizer_model() {
    let model = match pypi::wheel_member(
        "mistral-common",
        "1.5.0",
        "mistral-common",
        "mistral_common/data/tokenizer.model.v1",
    ) {
        Ok(p) => p,
        Err(e) => {
            pypi::skip("Mistral-7B tokenizer.model ids", &e);
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("pretrace-mistral-tok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        golden().join("mistral_v1/tokenizer_config.json"),
        dir.join("tokenizer_config.json"),
    )
    .unwrap();
    std::fs::copy(&model, dir.join("tokenizer.model")).unwrap();
    check_case(&dir, "mistral_v1", "mistral");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_broken_tokenizer_model_is_an_error_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("pretrace-bad-spm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read(golden().join("spm_bpe/tokenizer.model")).unwrap();
    std::fs::write(dir.join("tokenizer.model"), &good[..good.len() / 3]).unwrap();
    let e = Tokenizer::from_dir(&dir, Some("llama"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tokenizer.model") && e.contains("SentencePiece"),
        "{e}"
    );
    // Not a LLaMA-style model and no config: refused, not guessed.
    std::fs::write(dir.join("tokenizer.model"), &good).unwrap();
    let e = Tokenizer::from_dir(&dir, Some("gpt2"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("LLaMA-style"), "{e}");
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"add_bos_token": "yes"}"#,
    )
    .unwrap();
    let e = Tokenizer::from_dir(&dir, Some("llama"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("add_bos_token") && e.contains("tokenizer_config.json"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
