//! Steering against transformers with a forward hook doing the same addition
//! (tests/golden/steering.py): full logits with `all` and `last`, a left-padded batch, and greedy
//! generation with and without the KV cache. Plus the no-op cases, bit for bit.

mod common;

use candle_core::{IndexOp, Tensor};
use common::*;
use pretrace_model::{AddVector, Batch, Hook, Logits, Padding, Positions, Site};
use std::collections::HashMap;

fn steer_ref(name: &str) -> (HashMap<String, Tensor>, usize, f64) {
    let path = golden(name).join("steer.safetensors");
    let bytes = std::fs::read(&path).expect("steer.safetensors");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    (
        tensors,
        meta["layer"].parse().unwrap(),
        meta["alpha"].parse().unwrap(),
    )
}

fn hook(v: &Tensor, layer: usize, alpha: f64, positions: Positions) -> AddVector {
    AddVector {
        site: Site::ResidPost(layer),
        vector: v.clone(),
        alpha,
        positions,
    }
}

fn positions(name: &str) -> Positions {
    match name {
        "all" => Positions::All,
        _ => Positions::Last,
    }
}

#[test]
fn steered_logits_and_generation_equal_transformers_with_a_forward_hook() {
    for name in TINY {
        let c = load(name);
        let m = &c.model;
        let tok = c.tokenizer.as_ref().unwrap();
        let (r, layer, alpha) = steer_ref(name);
        let v = &r["vector"];
        let rows: Vec<Vec<u32>> = texts().iter().map(|t| tok.encode(t).unwrap()).collect();
        let plain = m
            .forward(
                &Batch::single(&rows[0]).unwrap(),
                &mut [],
                Logits::All,
                None,
            )
            .unwrap()
            .unwrap()
            .i(0)
            .unwrap();
        for pos in ["all", "last"] {
            let mut h = hook(v, layer, alpha, positions(pos));
            let got = m
                .forward(
                    &Batch::single(&rows[0]).unwrap(),
                    &mut [&mut h as &mut dyn Hook],
                    Logits::All,
                    None,
                )
                .unwrap()
                .unwrap()
                .i(0)
                .unwrap();
            let want = &r[&format!("{pos}.logits")];
            let e = max_abs(&log_softmax(&got), &log_softmax(want));
            assert!(e < 1e-4, "{name} {pos}: log-softmax max abs error {e:.3e}");
            // The steering must be visible, or the comparison above proves nothing.
            let moved = max_abs(&log_softmax(&plain), &log_softmax(want));
            assert!(
                moved > 1e-2,
                "{name} {pos}: steering moved the logits only {moved:.3e}"
            );
        }
        // A left-padded batch, steered at each row's last token.
        let batch = Batch::pad(&rows, Padding::Left, 1).unwrap();
        let mut h = hook(v, layer, alpha, Positions::Last);
        let got = m
            .forward(&batch, &mut [&mut h as &mut dyn Hook], Logits::Last, None)
            .unwrap()
            .unwrap();
        let e = max_abs(&log_softmax(&got), &log_softmax(&r["batch.last.logits"]));
        assert!(e < 1e-4, "{name} padded batch: max abs error {e:.3e}");
        // The same batch right-padded gives the same rows (padding is never steered).
        let right = Batch::pad(&rows, Padding::Right, 1).unwrap();
        let mut h = hook(v, layer, alpha, Positions::Last);
        let got_r = m
            .forward(&right, &mut [&mut h as &mut dyn Hook], Logits::Last, None)
            .unwrap()
            .unwrap();
        let e = max_abs(&got_r, &got);
        assert!(e < 1e-4, "{name}: right vs left padding differ by {e:.3e}");
        for pos in ["all", "last"] {
            for (cache, key) in [(true, "cache"), (false, "nocache")] {
                let mut h = hook(v, layer, alpha, positions(pos));
                let gen = m
                    .generate_with(&rows, 8, &[], cache, &mut [&mut h as &mut dyn Hook])
                    .unwrap();
                let want = &r[&format!("{pos}.{key}.greedy")];
                for (row, g) in gen.iter().enumerate() {
                    assert_eq!(
                        g,
                        &ids(&want.i(row).unwrap()),
                        "{name}: greedy row {row}, positions {pos}, {key}"
                    );
                }
            }
        }
    }
}

#[test]
fn alpha_zero_and_zero_vector_change_nothing_bit_for_bit() {
    for name in TINY {
        let c = load(name);
        let m = &c.model;
        let tok = c.tokenizer.as_ref().unwrap();
        let rows: Vec<Vec<u32>> = texts().iter().map(|t| tok.encode(t).unwrap()).collect();
        let batch = Batch::pad(&rows, Padding::Left, 1).unwrap();
        let plain = bits(
            &m.forward(&batch, &mut [], Logits::All, None)
                .unwrap()
                .unwrap(),
        );
        let plain_gen = m.generate(&rows, 6, &[], &mut []).unwrap();
        let (r, layer, _) = steer_ref(name);
        let zero = r["vector"].zeros_like().unwrap();
        for (v, alpha) in [(&r["vector"], 0.0), (&zero, 4.0)] {
            for pos in ["all", "last"] {
                let mut h = hook(v, layer, alpha, positions(pos));
                let got = m
                    .forward(&batch, &mut [&mut h as &mut dyn Hook], Logits::All, None)
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    bits(&got),
                    plain,
                    "{name}: alpha {alpha}, {pos} changed the logits"
                );
                let mut h = hook(v, layer, alpha, positions(pos));
                let gen = m
                    .generate(&rows, 6, &[], &mut [&mut h as &mut dyn Hook])
                    .unwrap();
                assert_eq!(
                    gen, plain_gen,
                    "{name}: alpha {alpha}, {pos} changed generation"
                );
            }
        }
    }
}

#[test]
fn generation_without_cache_equals_cached_when_unsteered() {
    let c = load("llama_gqa");
    let tok = c.tokenizer.as_ref().unwrap();
    let rows: Vec<Vec<u32>> = texts().iter().map(|t| tok.encode(t).unwrap()).collect();
    let a = c.model.generate_with(&rows, 8, &[], true, &mut []).unwrap();
    let b = c
        .model
        .generate_with(&rows, 8, &[], false, &mut [])
        .unwrap();
    assert_eq!(a, b);
}
