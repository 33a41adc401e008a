//! What every step of the pipeline shares and no step owns: writing files so that a reader never
//! sees a partial one and a write never lands anywhere but where it was asked to
//! ([`write_atomic`], [`OutDir`]), and names made safe for one-line messages ([`shown`]).
//!
//! ```no_run
//! use pretrace_core::{write_atomic, OutDir};
//! let out = OutDir::prepare("runs/probes".as_ref())?; // created, checked writable, before any work
//! write_atomic(&out.path().join("probes.csv"), b"checkpoint,layer,accuracy\n")?;
//! # Ok::<(), pretrace_core::FsError>(())
//! ```

mod contain;
mod fsio;
mod text;

pub use contain::{contain, quiet_contained_panics};
pub use fsio::{
    check_target, create_subdir, sha256_file, sha256_hex, write_atomic, write_atomic_with, FsError,
    OutDir, TMP_PREFIX,
};
pub use text::{one_line, shown, shown_path};

/// How many worker threads a request may ask for: a generous multiple of the cores, beyond which
/// threads only contend.
pub fn max_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) * 8
}
