//! Checkpoint sweeps, the pipeline's most expensive step: every statement of every dataset through
//! every checkpoint of a suite, the last token's residual stream after every layer kept in the
//! activation store.
//!
//! ```no_run
//! use pretrace_data::{Dataset, ReadOptions};
//! use pretrace_store::Store;
//! use pretrace_sweep::{discover, extract, ExtractOptions, Quiet, Selection};
//! let suite = Selection { every: Some(10), ..Default::default() }.apply(discover("pythia-160m".as_ref())?)?;
//! let data = vec![Dataset::read("sst2.csv".as_ref(), &ReadOptions::default())?];
//! let store = Store::create("runs/pythia".as_ref(), "pretrace")?;
//! extract(&suite, &data, &store, &ExtractOptions::default(), &mut Quiet)?;
//! # Ok::<(), pretrace_sweep::SweepError>(())
//! ```
//!
//! Checkpoint-major: each checkpoint is loaded once and every dataset runs through it. Rows run in
//! length-sorted padded batches and the forward pass stops after the last requested layer. A
//! checkpoint larger than the memory budget runs block by block.

mod error;
mod extract;

pub use error::{Result, SweepError};
pub use extract::{
    checkpoint_files, extract, extract_from, parse_size, peak_rss_bytes, plan_batches,
    total_memory_bytes, ExtractOptions, FromHub, LayerSpec, OnDisk, Progress, Quiet, Source,
    Summary,
};
pub use pretrace_hub::{
    check_uniform, discover, parse_name, shape_of, CheckpointRef, HubError, HubSource, Selection,
};
