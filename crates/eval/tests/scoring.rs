//! Scoring with shared contexts equals scoring each request whole; batch sizes 1 and N agree;
//! steering while scoring steers the context's last token and every continuation token.

use candle_core::{IndexOp, Tensor};
use pretrace_eval::score::{encode_pair, score_groups, score_plain, Request};
use pretrace_model::{
    AddVector, Batch, Checkpoint, Hook, LoadOptions, Logits, Model, Positions, Site,
};
use pretrace_steer::Steer;
use std::path::PathBuf;

fn load(name: &str) -> Checkpoint {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name);
    Model::load(&p, &LoadOptions::default()).unwrap()
}

const CONTEXTS: &[&str] = &[
    "Question: What is the capital of France?\nAnswer:",
    "The quick brown fox jumps over the lazy ",
    "Q: caf\u{e9} na\u{ef}ve?\tA:",
];
const CHOICES: &[&str] = &["Paris", "dog", "the capital of France is Paris", "12345"];

fn groups(c: &Checkpoint) -> Vec<Vec<Request>> {
    let tok = c.tokenizer.as_ref().unwrap();
    CONTEXTS
        .iter()
        .map(|ctx| {
            CHOICES
                .iter()
                .map(|ch| encode_pair(tok, ctx, &format!(" {ch}"), 0).unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn shared_context_scoring_equals_whole_requests_and_batches_agree() {
    for name in ["llama_gqa", "neox_parallel", "gpt2", "olmo2"] {
        let c = load(name);
        let g = groups(&c);
        // The trailing space of the second context moved into its continuations.
        assert!(c
            .tokenizer
            .as_ref()
            .unwrap()
            .decode(&g[1][0].continuation)
            .unwrap()
            .starts_with("  "));
        let one = score_groups(&c.model, &g, 1, None, None, &mut |_| {}).unwrap();
        let all = score_groups(&c.model, &g, 3, None, None, &mut |_| {}).unwrap();
        for (i, group) in g.iter().enumerate() {
            for (j, req) in group.iter().enumerate() {
                let plain = score_plain(&c.model, req).unwrap();
                let (a, b) = (one[i][j], all[i][j]);
                assert!(
                    (a.loglikelihood - plain.loglikelihood).abs() < 1e-4,
                    "{name} {i}/{j}: shared {} vs whole {}",
                    a.loglikelihood,
                    plain.loglikelihood
                );
                assert_eq!(a.greedy, plain.greedy, "{name} {i}/{j}");
                assert_eq!(a, b, "{name} {i}/{j}: batch 1 vs batch 3");
            }
        }
    }
}

#[test]
fn steered_scoring_steers_the_last_context_token_and_every_continuation_token() {
    let c = load("llama_gqa");
    let g = groups(&c);
    let d = c.model.config.d_model;
    let v: Vec<f32> = (0..d).map(|i| ((i as f32) * 0.7).sin()).collect();
    let mut steer = Steer::new(1, &v, 2.0, Positions::Last).unwrap();
    let got = score_groups(&c.model, &g, 2, None, Some(&mut steer), &mut |_| {}).unwrap();
    assert_eq!(
        steer.positions(),
        Positions::Last,
        "positions restored after scoring"
    );
    let unsteered = score_groups(&c.model, &g, 2, None, None, &mut |_| {}).unwrap();
    let mut moved = 0f64;
    for (i, group) in g.iter().enumerate() {
        for (j, req) in group.iter().enumerate() {
            let mut input = req.context.clone();
            input.extend_from_slice(&req.continuation[..req.continuation.len() - 1]);
            let n = req.context.len();
            let mut add = AddVector {
                site: Site::ResidPost(1),
                vector: Tensor::new(v.as_slice(), &candle_core::Device::Cpu).unwrap(),
                alpha: 2.0,
                positions: Positions::Absolute((n - 1..input.len()).collect()),
            };
            let logits = c
                .model
                .forward(
                    &Batch::single(&input).unwrap(),
                    &mut [&mut add as &mut dyn Hook],
                    Logits::All,
                    None,
                )
                .unwrap()
                .unwrap()
                .i(0)
                .unwrap();
            let lp = candle_nn::ops::log_softmax(&logits, 1).unwrap();
            let mut ll = 0f64;
            for (k, &t) in req.continuation.iter().enumerate() {
                ll += lp
                    .i((n - 1 + k, t as usize))
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap() as f64;
            }
            assert!(
                (got[i][j].loglikelihood - ll).abs() < 1e-4,
                "{i}/{j}: {} vs {ll}",
                got[i][j].loglikelihood
            );
            moved = moved.max((got[i][j].loglikelihood - unsteered[i][j].loglikelihood).abs());
        }
    }
    assert!(moved > 1e-2, "steering changed no score ({moved})");
}
