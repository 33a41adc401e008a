//! Golden tests: tiny random checkpoints of every architecture and option, against the outputs
//! transformers produced (tests/golden/generate.py).

mod common;

use candle_core::IndexOp;
use common::*;
use pretrace_model::{Batch, Capture, Hook, Logits, Site};

fn check_fixture(name: &str) {
    let ckpt = load(name);
    let m = &ckpt.model;
    let tok = ckpt.tokenizer.as_ref().expect("fixture has a tokenizer");
    let r = reference(name);
    for (k, text) in texts().iter().enumerate() {
        let want = ids(&r[&format!("{k}.input_ids")]);
        assert_eq!(
            tok.encode(text).unwrap(),
            want,
            "{name}: token ids of text {k}"
        );
        let n = m.config.n_layers;
        let mut cap = Capture::new((0..n).map(Site::ResidPost));
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
        for l in 0..n {
            let ours = cap.get(Site::ResidPost(l)).unwrap().i(0).unwrap();
            let e = rel_err(&ours, &r[&format!("{k}.blocks.{l}.hook_resid_post")]);
            assert!(
                e < 1e-4,
                "{name}: text {k} layer {l} relative error {e:.3e}"
            );
        }
        let e = max_abs(
            &log_softmax(&logits),
            &log_softmax(&r[&format!("{k}.logits")]),
        );
        assert!(
            e < 1e-4,
            "{name}: text {k} log-softmax max abs error {e:.3e}"
        );
        let greedy = m
            .generate(std::slice::from_ref(&want), 8, &[], &mut [])
            .unwrap();
        assert_eq!(
            greedy[0],
            ids(&r[&format!("{k}.greedy")]),
            "{name}: greedy continuation of text {k}"
        );
    }
}

macro_rules! golden_tests {
    ($($name:ident),*) => { $( #[test] fn $name() { check_fixture(stringify!($name)); } )* };
}
golden_tests!(
    llama_gqa,
    llama_tied_bias,
    llama_bf16,
    qwen2,
    mistral_window,
    neox_parallel,
    neox_sequential,
    olmo_clip,
    olmo2,
    gpt2
);

#[test]
fn weight_formats_give_identical_results() {
    let base = load("llama_gqa");
    let ids = base
        .tokenizer
        .as_ref()
        .unwrap()
        .encode(&texts()[0])
        .unwrap();
    let run = |c: &pretrace_model::Checkpoint| {
        c.model
            .forward(&Batch::single(&ids).unwrap(), &mut [], Logits::All, None)
            .unwrap()
            .unwrap()
    };
    let want = bits(&run(&base));
    for sub in ["sharded_safetensors", "bin", "sharded_bin"] {
        let c = load(&format!("llama_gqa/{sub}"));
        assert_eq!(
            bits(&run(&c)),
            want,
            "llama_gqa/{sub} differs from model.safetensors"
        );
    }
}
