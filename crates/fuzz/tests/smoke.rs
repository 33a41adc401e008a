//! The CI smoke run: 10⁴ inputs of every fuzz target (`PRETRACE_FUZZ_INPUTS` changes the count)
//! against the real loaders, under the counting allocator. No input may panic, give a message of
//! more than one line or allocate past the bound, and every target must both load some inputs and
//! refuse others (a target that only ever refuses never reaches past the first check).

use pretrace_fuzz::alloc::{self, Counting};
use pretrace_fuzz::engine;
use pretrace_fuzz::targets::{self, Scratch, NAMES};
use std::time::Duration;

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn every_target_survives_ten_thousand_inputs() {
    let inputs: u64 = std::env::var("PRETRACE_FUZZ_INPUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    // As the binary does: backtraces captured by refused inputs' errors are not the loaders' memory.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    // One thread per run: the inputs are tiny, and waking a pool per kernel costs more than the
    // work (two runs side by side then use two cores).
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let scratch = Scratch::new().unwrap();
    let golden = targets::golden();
    let keep = std::env::temp_dir().join("pretrace-fuzz-smoke-failures");
    let mut failed = Vec::new();
    for name in NAMES {
        let t = targets::build(name, &golden, &scratch.0).unwrap();
        let r = engine::run(
            &t,
            inputs,
            0,
            0x5EED,
            Some(&keep),
            Duration::from_secs(120),
            &mut |_| {},
        );
        println!(
            "{name}: {} inputs, {} loaded, {} refused, {} panics, {} bad messages, {} over the bound, peak {:.1} MiB, slowest {:.1} ms, {:.1} s",
            r.inputs,
            r.ok,
            r.refused,
            r.panics,
            r.bad_messages,
            r.over_allocations,
            r.largest_peak_bytes as f64 / (1 << 20) as f64,
            r.slowest_ms,
            r.seconds
        );
        assert_eq!(r.inputs, inputs);
        assert!(
            r.largest_peak_bytes > 0,
            "{name}: the counting allocator saw nothing"
        );
        if r.panics + r.bad_messages + r.over_allocations > 0 {
            failed.push(format!("{name}: {:?}", r.kept));
        }
        assert!(
            r.ok > 0,
            "{name}: no input loaded: the target never gets past the first check"
        );
        assert!(
            r.refused > 0,
            "{name}: no input was refused: the mutations do not reach the loader"
        );
    }
    assert!(alloc::installed());
    assert!(failed.is_empty(), "failing inputs kept: {failed:?}");
}
