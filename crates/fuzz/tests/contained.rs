//! Inputs the fuzzer found that make third-party readers panic (the Arrow IPC reader, the
//! tokenizers crate, candle's unpickler) come back as one-line errors naming the file.

use pretrace_fuzz::engine::{self, Outcome, Target};
use pretrace_fuzz::targets::{self, Scratch};

fn contained(name: &str, marker: &str) -> usize {
    let scratch = Scratch::new().unwrap();
    let t = targets::build(name, &targets::golden(), &scratch.0).unwrap();
    let mut hits = 0;
    for k in 0..3000 {
        let input = engine::input(&t, 1, k);
        if let Outcome::Refused(msg) = t.run(&input) {
            assert!(
                !msg.contains('\n') && msg.len() < 2000,
                "{name} #{k}: {msg}"
            );
            if msg.contains(marker) {
                hits += 1;
            }
        }
    }
    println!("{name}: {hits} of 3000 inputs made the reader panic, each an error");
    hits
}

#[test]
fn a_panicking_arrow_reader_is_an_error_naming_the_file() {
    assert!(
        contained(
            "arrow",
            "rows.arrow: not a readable Arrow IPC stream or file (the reader failed"
        ) > 0
    );
}

#[test]
fn a_panicking_tokenizer_is_an_error() {
    assert!(contained("tokenizer", "the tokenizer failed") > 0);
}

/// Inputs (target, run seed, input number) on which the fuzzer found a panic, an abort or an
/// allocation past the bound; each must now be refused, within the bound.
const FOUND: &[(&str, u64, u64, &str)] = &[
    (
        "gguf",
        1,
        145,
        "a zero-sized tensor: an unaligned slice in candle (abort)",
    ),
    (
        "gguf",
        1,
        18713,
        "a head count near 2^64: overflow un-permuting q",
    ),
    (
        "gguf",
        1,
        110865,
        "a head count near 2^64: overflow un-permuting q",
    ),
    (
        "bin",
        1,
        99,
        "a tensor larger than its storage: 1.9 GB allocated",
    ),
    (
        "bin",
        1,
        707,
        "a tensor larger than its storage: 4.3 GB allocated",
    ),
    (
        "bin",
        1,
        650,
        "a REDUCE on a short tuple: a panic in the unpickler",
    ),
    (
        "arrow",
        1,
        1795,
        "a buffer past the body: a panic in the Arrow reader",
    ),
    ("tokenizer", 1, 738, "a panic in the tokenizers crate"),
    (
        "activations",
        1,
        18536,
        "data offsets near 2^64: overflow checking the entry's size",
    ),
];

#[global_allocator]
static ALLOC: pretrace_fuzz::alloc::Counting = pretrace_fuzz::alloc::Counting;

#[test]
fn inputs_the_fuzzer_found_stay_refused() {
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    pretrace_core::quiet_contained_panics();
    let scratch = Scratch::new().unwrap();
    for &(name, seed, k, what) in FOUND {
        let t = targets::build(name, &targets::golden(), &scratch.0).unwrap();
        let input = engine::input(&t, seed, k);
        pretrace_fuzz::alloc::start_input(k);
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.run(&input)));
        let peak = pretrace_fuzz::alloc::end_input();
        match out {
            Ok(Outcome::Refused(msg)) => assert!(!msg.contains('\n'), "{name} #{k}: {msg}"),
            Ok(Outcome::Ok) => panic!("{name} #{k} ({what}) loads"),
            Err(_) => panic!("{name} #{k} ({what}) panics"),
        }
        assert!(
            peak <= engine::allocation_bound(input.len()),
            "{name} #{k} ({what}) allocated {peak} bytes"
        );
    }
}
