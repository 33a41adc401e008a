//! A counting global allocator: the bytes live now, and the peak since an input started. A binary
//! or test that fuzzes installs it with `#[global_allocator] static A: Counting = Counting;`.
//!
//! A single request larger than [`HARD_CAP`] is never passed to the system: it is reported on
//! stderr with the input that made it, without allocating, and the process ends (such a request
//! can only come from a number read from a file, unchecked).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest single allocation a loader may request on the fuzzers' small inputs.
pub const HARD_CAP: usize = 4 << 30;

static CAP: AtomicU64 = AtomicU64::new(HARD_CAP as u64);
static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);
static BASE: AtomicU64 = AtomicU64::new(0);
static INPUT: AtomicU64 = AtomicU64::new(u64::MAX);
/// Whether a binary installed [`Counting`] (otherwise peaks read as 0).
static ACTIVE: AtomicU64 = AtomicU64::new(0);

pub struct Counting;

fn add(n: usize) {
    let live = LIVE.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

/// Lowers (or restores) the largest single allocation let through, to find the input and the call
/// behind a large one (run under a debugger: the process aborts at the request).
pub fn set_cap(bytes: usize) {
    CAP.store(bytes.min(HARD_CAP) as u64, Ordering::Relaxed);
}

fn over_cap(size: usize) -> bool {
    size as u64 > CAP.load(Ordering::Relaxed)
}

fn oversize(size: usize) -> ! {
    // No allocation here: format into a stack buffer.
    let mut buf = [0u8; 160];
    let mut w = &mut buf[..];
    let _ = writeln!(
        w,
        "OVERSIZE: input #{} asked for one allocation of {size} bytes",
        INPUT.load(Ordering::Relaxed)
    );
    let used = 160 - w.len();
    let _ = std::io::stderr().write_all(&buf[..used]);
    std::process::abort();
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if over_cap(layout.size()) {
            oversize(layout.size());
        }
        ACTIVE.store(1, Ordering::Relaxed);
        let p = System.alloc(layout);
        if !p.is_null() {
            add(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if over_cap(layout.size()) {
            oversize(layout.size());
        }
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            add(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if over_cap(new_size) {
            oversize(new_size);
        }
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
            add(new_size);
        }
        p
    }
}

/// Marks the start of input `k`: the peak restarts from what is live now.
pub fn start_input(k: u64) {
    INPUT.store(k, Ordering::Relaxed);
    let live = LIVE.load(Ordering::Relaxed);
    BASE.store(live, Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
}

/// Bytes allocated at the peak of the input beyond what was live at its start.
pub fn end_input() -> u64 {
    PEAK.load(Ordering::Relaxed)
        .saturating_sub(BASE.load(Ordering::Relaxed))
}

/// Whether the counting allocator is installed in this process.
pub fn installed() -> bool {
    ACTIVE.load(Ordering::Relaxed) == 1
}
