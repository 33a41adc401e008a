//! Batched forward throughput of pretrace on fixed token ids (the other half of bench/forward.sh).
//!
//! Usage: bench-forward --model PATH --ids IDS.json [--repeats N]
//! IDS.json is `[[id, ...], ...]` (equal-length rows). Prints one JSON line with the median time.

use anyhow::{bail, Context, Result};
use pretrace_model::{Batch, LoadOptions, Logits, Model, Padding};
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let model = get("--model").context("--model PATH is required")?;
    let ids_path = get("--ids").context("--ids IDS.json is required")?;
    let repeats: usize = get("--repeats")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3);
    let rows: Vec<Vec<u32>> = serde_json::from_str(
        &std::fs::read_to_string(&ids_path).with_context(|| format!("{ids_path}: cannot read"))?,
    )?;
    if rows.is_empty() {
        bail!("{ids_path}: no rows");
    }
    let ckpt = Model::load(model.as_ref(), &LoadOptions::default())?;
    let batch = Batch::pad(&rows, Padding::Right, 0)?;
    let tokens: usize = rows.iter().map(|r| r.len()).sum();
    // Warm-up, then timed runs.
    ckpt.model.forward(&batch, &mut [], Logits::All, None)?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t0 = Instant::now();
        let out = ckpt.model.forward(&batch, &mut [], Logits::All, None)?;
        times.push(t0.elapsed().as_secs_f64());
        drop(out);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{}",
        serde_json::json!({"impl": "pretrace", "tokens": tokens, "median_s": median, "tokens_per_s": tokens as f64 / median, "times_s": times})
    );
    Ok(())
}
