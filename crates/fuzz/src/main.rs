//! `pretrace-fuzz`: runs the fuzz targets in process and prints, per target, how many inputs loaded,
//! were refused, panicked, gave a bad message or allocated past the bound.

use anyhow::{bail, Context, Result};
use clap::Parser;
use pretrace_fuzz::alloc::Counting;
use pretrace_fuzz::engine::{self, Report};
use pretrace_fuzz::targets::{self, Scratch, NAMES};
use std::path::PathBuf;
use std::time::Duration;

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Parser)]
#[command(
    name = "pretrace-fuzz",
    about = "Fuzz pretrace's loaders in process: byte mutations of the golden fixtures and structured inputs"
)]
struct Args {
    /// Targets to run (default: all of them).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(NAMES))]
    targets: Vec<String>,
    /// Inputs per target.
    #[arg(long, default_value_t = 10_000)]
    inputs: u64,
    /// Seed of the run; input k of a target is derived from it and k alone.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of the first input (to replay input k alone: --first k --inputs 1).
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Folder to keep failing inputs in, with a note of what went wrong.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// An input running longer than this many seconds is a hang: the run stops there.
    #[arg(long, default_value_t = 60)]
    hang_secs: u64,
    /// Write the reports as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Abort at any single allocation larger than this many bytes, naming the input (to find
    /// what asks for it under a debugger).
    #[arg(long)]
    abort_above: Option<usize>,
    /// The golden fixtures (default: the repository's tests/golden).
    #[arg(long)]
    golden: Option<PathBuf>,
}

fn line(r: &Report) -> String {
    format!(
        "{:<18} {:>9} {:>9} {:>9} {:>6} {:>8} {:>8} {:>10.1} {:>9.1} {:>8.0} {:>9.0}",
        r.target,
        r.inputs,
        r.ok,
        r.refused,
        r.panics,
        r.bad_messages,
        r.over_allocations,
        r.largest_peak_bytes as f64 / (1 << 20) as f64,
        r.slowest_ms,
        r.seconds,
        r.inputs as f64 / r.seconds.max(1e-9),
    )
}

fn main() -> Result<()> {
    // Errors that capture a backtrace (candle's do under RUST_BACKTRACE) would symbolize it for
    // every refused input: hundreds of MiB and a second each, measuring the debugger, not the loader.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    // One thread per run: the inputs are tiny, and waking a pool per kernel costs more than the
    // work (two runs side by side then use two cores).
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let a = Args::parse();
    let golden = a.golden.clone().unwrap_or_else(targets::golden);
    if !golden.join("llama_gqa/config.json").is_file() {
        bail!(
            "{}: not the golden fixtures (llama_gqa/config.json is missing); give --golden tests/golden",
            golden.display()
        );
    }
    let names: Vec<String> = if a.targets.is_empty() {
        NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        a.targets.clone()
    };
    if let Some(n) = a.abort_above {
        pretrace_fuzz::alloc::set_cap(n);
    }
    let scratch = Scratch::new().map_err(anyhow::Error::msg)?;
    println!(
        "{:<18} {:>9} {:>9} {:>9} {:>6} {:>8} {:>8} {:>10} {:>9} {:>8} {:>9}",
        "target",
        "inputs",
        "loaded",
        "refused",
        "panics",
        "bad_msg",
        "over_mem",
        "peak_MiB",
        "slow_ms",
        "secs",
        "inputs/s"
    );
    let mut reports = Vec::new();
    for n in &names {
        let t = targets::build(n, &golden, &scratch.0).map_err(anyhow::Error::msg)?;
        let rep = engine::run(
            &t,
            a.inputs,
            a.first,
            a.seed,
            a.keep.as_deref(),
            Duration::from_secs(a.hang_secs),
            &mut |r| {
                eprintln!(
                    "  {}: {} inputs, {} panics, {:.0} s",
                    r.target, r.inputs, r.panics, r.seconds
                )
            },
        );
        println!("{}", line(&rep));
        if rep.largest_peak_bytes > 64 << 20 {
            eprintln!(
                "  {}: the largest allocation, {:.1} MiB, was input #{}",
                rep.target,
                rep.largest_peak_bytes as f64 / (1 << 20) as f64,
                rep.largest_peak_input
            );
        }
        reports.push(rep);
    }
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&reports)?;
        pretrace_core::write_atomic(p, text.as_bytes())
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    let bad: u64 = reports
        .iter()
        .map(|r| r.panics + r.bad_messages + r.over_allocations)
        .sum();
    if bad > 0 {
        bail!(
            "{bad} inputs failed (panics, bad messages or allocations past the bound); see above"
        );
    }
    Ok(())
}
