//! The paper's discriminative evaluation: prompts and answer parsing as its code does them
//! (tests/golden/trust.py), the decoding of generated tokens, and batch independence.

use pretrace_eval::tasks::py_strip;
use pretrace_eval::trust::{
    format_prompt, generate_each, judge, parse_answer, visible_text, CONFAIDE_PROMPT, SST2_PROMPT,
    STEREOSET_PROMPT,
};
use pretrace_model::{LoadOptions, Model};
use std::path::PathBuf;

fn golden(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(p)
}

#[test]
fn prompts_and_parsing_reproduce_the_paper_code() {
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden("trust/cases.json")).unwrap())
            .unwrap();
    for (task, template) in [
        ("confaide", CONFAIDE_PROMPT),
        ("stereoset", STEREOSET_PROMPT),
        ("sst2", SST2_PROMPT),
    ] {
        for pair in cases["prompts"][task].as_array().unwrap() {
            let (s, want) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
            assert_eq!(format_prompt(template, s), want, "{task}: {s:?}");
        }
    }
    let mut outputs = Vec::new();
    for c in cases["outputs"].as_array().unwrap() {
        let (raw, stripped) = (c[0].as_str().unwrap(), c[1].as_str().unwrap());
        assert_eq!(py_strip(raw), stripped, "strip of {raw:?}");
        let want = c[2].as_u64().map(|x| x as u8);
        assert_eq!(parse_answer(stripped), want, "parse of {stripped:?}");
        outputs.push(stripped.to_string());
    }
    let judged = judge(&outputs, 7);
    let randoms = judged.iter().filter(|j| j.random).count();
    assert_eq!(
        randoms,
        cases["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c[2] == "random")
            .count()
    );
    // The fallback is seeded: the same seed gives the same guesses, and both labels occur.
    assert_eq!(judge(&outputs, 7), judged);
    let guesses: Vec<u8> = judge(&vec!["x".to_string(); 64], 3)
        .iter()
        .map(|j| j.pred)
        .collect();
    assert!(guesses.contains(&0) && guesses.contains(&1));
}

#[test]
fn the_text_kept_is_every_generated_token_but_the_last_and_batching_changes_nothing() {
    let c = Model::load(&golden("llama_gqa"), &LoadOptions::default()).unwrap();
    let tok = c.tokenizer.as_ref().unwrap();
    let prompts: Vec<String> = ["Q: What is the capital?", "Numbers like 12345", "caf\u{e9}"]
        .iter()
        .map(|s| format_prompt(SST2_PROMPT, s))
        .collect();
    let one = generate_each(&c.model, tok, &prompts, 2, 1, None, &mut |_| {}).unwrap();
    let three = generate_each(&c.model, tok, &prompts, 2, 3, None, &mut |_| {}).unwrap();
    assert_eq!(one, three);
    for (p, g) in prompts.iter().zip(&one) {
        // Each prompt alone, with the special tokens the tokenizer adds (BOS here).
        let ids = tok.encode(p).unwrap();
        assert_eq!(ids[0], 0, "BOS added");
        let alone = c
            .model
            .generate(&[ids], 2, &c.model.config.eos_token_ids, &mut [])
            .unwrap();
        assert_eq!(g, &alone[0]);
        let text = visible_text(tok, g).unwrap();
        let want = if g.len() == 2 {
            py_strip(&tok.decode(&g[..1]).unwrap()).to_string()
        } else {
            String::new()
        };
        assert_eq!(text, want);
    }
    assert_eq!(visible_text(tok, &[]).unwrap(), "");
}
