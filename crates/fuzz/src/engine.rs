//! The in-process fuzz loop: inputs from byte mutations of seed files and from structured
//! generators, each handed to a real loader; panics are caught and counted, every input's time and
//! peak allocation are measured, and a watchdog ends the run when one input hangs.

use crate::alloc;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The project's deterministic generator: inputs are reproducible from a seed and an index.
pub use pretrace_data::builders::SplitMix64 as Rng;

/// True with probability `p`.
pub fn chance(rng: &mut Rng, p: f64) -> bool {
    rng.next_f64() < p
}

/// `n` random bytes.
pub fn bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

/// Numbers that break parsers: zero, one, sign and width boundaries, powers of two near 2⁶⁰.
pub const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    7,
    8,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 40,
    1 << 60,
    (1 << 60) + 1,
    i64::MAX as u64,
    u64::MAX,
];

/// Text that breaks number and string fields: huge, negative, fractional, non-finite, empty.
pub const INTERESTING_TEXT: &[&str] = &[
    "0",
    "-1",
    "1e39",
    "-1e4",
    "1e308",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "\"oops\"",
    "null",
    "[]",
    "{}",
    "18446744073709551615",
    "1152921504606846976",
    "4294967296",
    "0.5",
    "true",
    "\"\"",
    "\"../../../../etc/passwd\"",
];

/// One byte-level mutation of `data`, chosen by `rng`; `other` is another seed to splice from.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], text: bool) {
    let len = data.len();
    match rng.below(if text { 12 } else { 10 }) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = [0u8, 0xff, 0x7f, 0x80, b'"', b'{', b'[', b',', b'\n'][rng.below(9)];
        }
        2 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below(16.min(len - i));
            data.drain(i..i + n);
        }
        3 => {
            let i = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let ins = bytes(rng, n);
            data.splice(i..i, ins);
        }
        4 if len > 0 => {
            // Truncate: the most common damage to a file on disk.
            data.truncate(rng.below(len));
        }
        5 if len >= 8 => {
            // An interesting little-endian integer over 4 or 8 bytes (lengths, counts, offsets).
            let v = INTERESTING[rng.below(INTERESTING.len())];
            let w = if chance(rng, 0.5) { 4 } else { 8 };
            let i = rng.below(len - w + 1);
            data[i..i + w].copy_from_slice(&v.to_le_bytes()[..w]);
        }
        6 if len > 0 => {
            // Duplicate a chunk.
            let i = rng.below(len);
            let n = 1 + rng.below(64.min(len - i));
            let chunk = data[i..i + n].to_vec();
            let at = rng.below(data.len() + 1);
            data.splice(at..at, chunk);
        }
        7 if !other.is_empty() => {
            // Splice a piece of another seed.
            let i = rng.below(other.len());
            let n = 1 + rng.below(256.min(other.len() - i));
            let at = rng.below(len + 1);
            let end = (at + n).min(len);
            data.splice(at..end, other[i..i + n].iter().copied());
        }
        8 if len >= 8 => {
            // The safetensors / GGUF length prefix: the first 8 bytes.
            let v = INTERESTING[rng.below(INTERESTING.len())];
            let w = if chance(rng, 0.5) { 4 } else { 8 };
            data[..w].copy_from_slice(&v.to_le_bytes()[..w]);
        }
        9 if len > 0 => {
            let i = rng.below(len);
            data[i] = rng.next_u64() as u8;
        }
        10 | 11 => {
            // Text formats: replace a number (or a quoted word) with an interesting token.
            let spans = token_spans(data);
            if let Some(&(a, b)) = spans.get(rng.below(spans.len().max(1))) {
                let t = INTERESTING_TEXT[rng.below(INTERESTING_TEXT.len())];
                data.splice(a..b, t.bytes());
            } else if len > 0 {
                data.truncate(rng.below(len));
            }
        }
        _ => {
            if len > 0 {
                let i = rng.below(len);
                data[i] = data[i].wrapping_add(1);
            }
        }
    }
}

/// Byte ranges of numbers and of double-quoted strings in text.
fn token_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() && out.len() < 4096 {
        let c = data[i];
        if c.is_ascii_digit() || (c == b'-' && data.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let a = i;
            i += 1;
            while i < data.len() && (data[i].is_ascii_digit() || b".eE+-".contains(&data[i])) {
                i += 1;
            }
            out.push((a, i));
        } else if c == b'"' {
            let a = i;
            i += 1;
            while i < data.len() && data[i] != b'"' {
                i += 1;
            }
            i += 1;
            out.push((a, i.min(data.len())));
        } else {
            i += 1;
        }
    }
    out
}

/// What a loader made of an input.
pub enum Outcome {
    /// Loaded without complaint.
    Ok,
    /// Refused with this one-line message.
    Refused(String),
}

/// A fuzz target: seed files to mutate, a structured generator, and the call into the real loader.
pub trait Target {
    fn name(&self) -> &'static str;
    /// Whole files this target mutates.
    fn seeds(&self) -> &[Vec<u8>];
    /// Whether the format is text (then number and string tokens are mutated too).
    fn text(&self) -> bool;
    /// A structurally valid-looking input with arbitrary values.
    fn generate(&self, rng: &mut Rng) -> Vec<u8>;
    /// Hands `input` to the real loader.
    fn run(&self, input: &[u8]) -> Outcome;
}

/// What a run found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub target: String,
    pub inputs: u64,
    pub ok: u64,
    pub refused: u64,
    pub panics: u64,
    /// Refusals whose message is more than one line or longer than 2,000 characters.
    pub bad_messages: u64,
    /// Inputs that allocated more than the bound (16 × input size + 256 MiB).
    pub over_allocations: u64,
    pub largest_peak_bytes: u64,
    /// The input that allocated the most.
    pub largest_peak_input: u64,
    pub slowest_ms: f64,
    pub seconds: f64,
    /// Files of the inputs that failed, kept for reproduction.
    pub kept: Vec<String>,
}

/// Allocation each input may make beyond what it holds before the call: a small multiple of its
/// size plus a fixed allowance for the loaders' own tables.
pub fn allocation_bound(input_len: usize) -> u64 {
    16 * input_len as u64 + (256 << 20)
}

/// Input `k` of a run with `seed`: a structured input (30%) or 1–4 mutations of a seed file.
pub fn input(target: &dyn Target, seed: u64, k: u64) -> Vec<u8> {
    let seeds = target.seeds();
    let mut rng = Rng::new(seed ^ k.wrapping_mul(0xA24B_AED4_963E_E407));
    if seeds.is_empty() || chance(&mut rng, 0.3) {
        target.generate(&mut rng)
    } else {
        let mut d = seeds[rng.below(seeds.len())].clone();
        let other = &seeds[rng.below(seeds.len())];
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut d, other, target.text());
        }
        d
    }
}

static CURRENT: AtomicU64 = AtomicU64::new(u64::MAX);
static STARTED_MS: AtomicU64 = AtomicU64::new(0);

fn now_ms(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

/// Runs `inputs` inputs of `target` (numbered from `first`, each derived from `seed` and its
/// number, so any one can be regenerated alone), keeping failing inputs under `keep`.
pub fn run(
    target: &dyn Target,
    inputs: u64,
    first: u64,
    seed: u64,
    keep: Option<&Path>,
    hang: Duration,
    progress: &mut dyn FnMut(&Report),
) -> Report {
    let mut rep = Report {
        target: target.name().to_string(),
        ..Report::default()
    };
    let t0 = Instant::now();
    // The watchdog: an input running longer than `hang` ends the process with a message naming it.
    let name = target.name();
    let hang_ms = hang.as_millis() as u64;
    let watchdog = std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(200));
        let cur = CURRENT.load(Ordering::Relaxed);
        if cur == u64::MAX - 1 {
            return;
        }
        if cur != u64::MAX
            && now_ms(t0).saturating_sub(STARTED_MS.load(Ordering::Relaxed)) > hang_ms
        {
            eprintln!(
                "HANG: target {name}, input #{cur} (seed {seed}) ran longer than {} s",
                hang.as_secs()
            );
            std::process::exit(3);
        }
    });
    // With PRETRACE_FUZZ_TRACE set, each input is named and saved before it runs and panics print,
    // for finding an input that ends the process (an abort).
    let trace = std::env::var_os("PRETRACE_FUZZ_TRACE").is_some();
    let prev_hook = std::panic::take_hook();
    if !trace {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let mut last_report = Instant::now();
    for k in first..first + inputs {
        let input = input(target, seed, k);
        if trace {
            eprintln!("{}: input #{k}", target.name());
            let f =
                std::env::temp_dir().join(format!("pretrace-fuzz-{}-current.bin", target.name()));
            let _ = std::fs::write(f, &input);
        }
        STARTED_MS.store(now_ms(t0), Ordering::Relaxed);
        CURRENT.store(k, Ordering::Relaxed);
        alloc::start_input(k);
        let ti = Instant::now();
        let res = std::panic::catch_unwind(AssertUnwindSafe(|| target.run(&input)));
        let ms = ti.elapsed().as_secs_f64() * 1e3;
        let peak = alloc::end_input();
        CURRENT.store(u64::MAX, Ordering::Relaxed);
        rep.inputs += 1;
        rep.slowest_ms = rep.slowest_ms.max(ms);
        if peak > rep.largest_peak_bytes {
            rep.largest_peak_bytes = peak;
            rep.largest_peak_input = k;
        }
        let mut failed = None;
        match res {
            Ok(Outcome::Ok) => rep.ok += 1,
            Ok(Outcome::Refused(msg)) => {
                rep.refused += 1;
                if msg.contains('\n') || msg.chars().count() > 2000 {
                    rep.bad_messages += 1;
                    failed = Some(format!(
                        "message: {}",
                        &msg.chars().take(300).collect::<String>()
                    ));
                }
            }
            Err(p) => {
                rep.panics += 1;
                let what = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failed = Some(format!("panic: {what}"));
            }
        }
        if peak > allocation_bound(input.len()) {
            rep.over_allocations += 1;
            failed.get_or_insert(format!(
                "allocated {} bytes for an input of {}",
                peak,
                input.len()
            ));
        }
        if let Some(why) = failed {
            if let Some(dir) = keep {
                let _ = std::fs::create_dir_all(dir);
                let f: PathBuf = dir.join(format!("{}-{k}.bin", target.name()));
                let _ = std::fs::write(&f, &input);
                let _ = std::fs::write(f.with_extension("txt"), &why);
                if rep.kept.len() < 50 {
                    rep.kept.push(f.display().to_string());
                }
            }
            eprintln!("{}: input #{k}: {why}", target.name());
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            rep.seconds = t0.elapsed().as_secs_f64();
            progress(&rep);
            last_report = Instant::now();
        }
    }
    std::panic::set_hook(prev_hook);
    CURRENT.store(u64::MAX - 1, Ordering::Relaxed);
    let _ = watchdog.join();
    rep.seconds = t0.elapsed().as_secs_f64();
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Toy(Vec<Vec<u8>>);
    impl Target for Toy {
        fn name(&self) -> &'static str {
            "toy"
        }
        fn seeds(&self) -> &[Vec<u8>] {
            &self.0
        }
        fn text(&self) -> bool {
            false
        }
        fn generate(&self, rng: &mut Rng) -> Vec<u8> {
            let n = rng.below(8);
            bytes(rng, n)
        }
        fn run(&self, input: &[u8]) -> Outcome {
            if input.len() > 40 {
                panic!("long input");
            }
            Outcome::Refused(format!("{} bytes", input.len()))
        }
    }

    #[test]
    fn panics_are_caught_counted_and_inputs_are_reproducible() {
        let t = Toy(vec![vec![7u8; 38]]);
        let r = run(&t, 2000, 0, 1, None, Duration::from_secs(30), &mut |_| {});
        assert_eq!(r.inputs, 2000);
        assert_eq!(r.ok + r.refused + r.panics, 2000);
        assert!(r.panics > 0, "{r:?}");
        assert!(r.refused > 0, "{r:?}");
        let again = run(&t, 2000, 0, 1, None, Duration::from_secs(30), &mut |_| {});
        assert_eq!((r.panics, r.refused), (again.panics, again.refused));
    }

    #[test]
    fn mutations_change_inputs() {
        let mut rng = Rng::new(3);
        let seed = b"{\"hidden_size\": 32, \"rope_theta\": 10000.0}".to_vec();
        let changed = (0..200)
            .filter(|_| {
                let mut d = seed.clone();
                mutate(&mut rng, &mut d, &seed, true);
                d != seed
            })
            .count();
        assert!(changed > 150, "{changed}");
    }
}
