//! `bench-matmul`: the f32 matrix-multiply rate candle reaches on this machine, the ceiling the
//! extraction benchmark compares its arithmetic rate with. Prints one JSON line.
//!
//! Usage: bench-matmul [--m 1024] [--k 4096] [--n 4096] [--repeats 7]

use anyhow::Result;
use candle_core::{Device, Tensor};
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (m, k, n, reps) = (
        get("--m", 1024),
        get("--k", 4096),
        get("--n", 4096),
        get("--repeats", 7),
    );
    let dev = Device::Cpu;
    let a = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
    let b = Tensor::randn(0f32, 1.0, (k, n), &dev)?;
    let _ = a.matmul(&b)?; // warm-up
    let mut rates = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        let c = a.matmul(&b)?;
        let secs = t.elapsed().as_secs_f64();
        drop(c);
        rates.push(2.0 * (m * k * n) as f64 / secs / 1e9);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{{\"m\": {m}, \"k\": {k}, \"n\": {n}, \"median_gflops\": {:.1}, \"best_gflops\": {:.1}}}",
        rates[rates.len() / 2],
        rates[rates.len() - 1]
    );
    Ok(())
}
