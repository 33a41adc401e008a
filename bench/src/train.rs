//! `bench-train`: the lab's training step, timed, beside what `bench/train_ref.py` runs in PyTorch.
//!
//! `bench-train --out DIR --steps N [--seed S]` writes `DIR/step0` (the initial lab checkpoint),
//! `DIR/batches.json` (every step's input and target rows, and learning rate) and, after training N
//! AdamW steps from step0 on those batches, `DIR/pretrace.json` (loss, gradient norm and seconds per
//! step). The model and batch are the lab's defaults: 4 layers of width 96, 16 × 64 tokens.

use anyhow::{bail, Context, Result};
use candle_core::DType;
use pretrace_data::builders::SplitMix64;
use pretrace_lab::pretrain::Plan;
use pretrace_lab::train::{window_starts, Params, TrainBatch, Trainer};
use std::path::PathBuf;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let out = PathBuf::from(get("--out").context("--out DIR is required")?);
    let steps: usize = get("--steps").unwrap_or("20".into()).parse()?;
    let seed: u64 = get("--seed").unwrap_or("0".into()).parse()?;
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let plan = Plan::default();
    let arch = plan.arch(2048);
    let params = Params::init(&arch, seed, DType::F32)?;
    // A minimal tokenizer.json: the reference reads only the weights and config.
    let tok = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,"model":{"type":"WordLevel","vocab":{"<unk>":0},"unk_token":"<unk>"}}"#;
    params.save(&out.join("step0"), tok, 0, 0, &[])?;
    let mut rng = SplitMix64::new(seed ^ 1);
    // Token statistics with structure to learn: a Zipf-like draw with repeats.
    let stream: Vec<u32> = (0..200_000)
        .map(|i| {
            let r = rng.next_u64();
            if r.is_multiple_of(4) {
                ((i * 7) % 2048) as u32
            } else {
                ((r >> 8) % 2048).min((r >> 20) % 2048) as u32
            }
        })
        .collect();
    let mut settings = plan.settings.clone();
    settings.steps = steps;
    settings.warmup = settings.warmup.min(steps);
    let batches: Vec<TrainBatch> = (0..steps)
        .map(|_| {
            TrainBatch::windows(
                &stream,
                &window_starts(&mut rng, stream.len(), plan.seq, plan.batch),
                plan.seq,
            )
        })
        .collect();
    let lrs: Vec<f64> = (0..steps).map(|s| settings.lr_at(s)).collect();
    let spec = serde_json::json!({
        "inputs": batches.iter().map(|b| &b.inputs).collect::<Vec<_>>(),
        "targets": batches.iter().map(|b| &b.targets).collect::<Vec<_>>(),
        "lr": lrs,
        "settings": settings,
    });
    std::fs::write(out.join("batches.json"), serde_json::to_string(&spec)?)?;
    let mut trainer = Trainer::new(&params, &settings)?;
    let mut rows = Vec::new();
    for b in &batches {
        let t = std::time::Instant::now();
        let l = trainer.step(&params, b)?;
        rows.push(serde_json::json!({
            "loss": l.loss, "grad_norm": l.grad_norm, "lr": l.lr,
            "seconds": t.elapsed().as_secs_f64(),
        }));
    }
    std::fs::write(
        out.join("pretrace.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "parameters": params.count(),
            "tokens_per_step": plan.batch * plan.seq,
            "steps": rows,
        }))?,
    )?;
    Ok(())
}
