//! pretrace's half of bench/forward.sh: batched forward throughput on fixed token ids.
//!
//! Usage: bench-forward --model PATH --ids IDS.json [--repeats N] [--serve]
//! IDS.json is `[[id, ...], ...]` (equal-length rows). Without `--serve` it prints one JSON line with
//! the median of N timed runs after a warm-up. With `--serve` it loads once, runs a warm-up, prints
//! `ready`, then times one forward per line read on standard input and prints its seconds, so the
//! reference script can alternate the two implementations run by run.

use anyhow::{bail, Context, Result};
use pretrace_model::{Batch, LoadOptions, Logits, Model, Padding};
use std::io::{BufRead, Write};
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
    let time_one = || -> Result<f64> {
        let t0 = Instant::now();
        let out = ckpt.model.forward(&batch, &mut [], Logits::All, None)?;
        let s = t0.elapsed().as_secs_f64();
        drop(out);
        Ok(s)
    };
    time_one()?;
    if args.iter().any(|a| a == "--serve") {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "ready")?;
        stdout.flush()?;
        for line in std::io::stdin().lock().lines() {
            if line?.trim() != "run" {
                break;
            }
            writeln!(stdout, "{}", time_one()?)?;
            stdout.flush()?;
        }
        return Ok(());
    }
    let mut times = (0..repeats)
        .map(|_| time_one())
        .collect::<Result<Vec<f64>>>()?;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{}",
        serde_json::json!({"impl": "pretrace", "tokens": tokens, "median_s": median, "tokens_per_s": tokens as f64 / median, "times_s": times})
    );
    Ok(())
}
