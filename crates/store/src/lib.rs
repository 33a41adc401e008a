//! The activation store, the step between running models and everything that studies their
//! activations (probes, information plane, steering). Plain files, readable without pretrace:
//!
//! ```text
//! STORE/store.json                                   format marker {"format": "pretrace-activation-store", "version": 1}
//! STORE/<checkpoint>/<dataset>/activations.safetensors
//!       blocks.{l}.hook_resid_post  F32|F16 [rows, d_model]  (rows in dataset file order)
//!       labels                      I64 [rows]   (-1 where the dataset is unlabeled)
//!       tokens                      I64 [rows]   (tokens each row was run with)
//! STORE/<checkpoint>/<dataset>/manifest.json         what produced it (see [`Manifest`])
//! ```
//!
//! From Python: `safetensors.numpy.load_file("STORE/step1000/sst2/activations.safetensors")`.
//!
//! An entry is written into a temporary directory and renamed into place, so a reader (or a re-run
//! after a crash) sees a whole entry or none. A re-run skips entries whose manifest records the same
//! inputs ([`Manifest::same_inputs`]) and redoes the rest.
//!
//! ```no_run
//! use pretrace_store::Store;
//! let store = Store::open("runs/amber".as_ref())?;
//! for (ckpt, dataset) in store.entries()? {
//!     let e = store.read(&ckpt, &dataset)?;
//!     println!("{ckpt}/{dataset}: {} rows, layers {:?}", e.labels.len(), e.layers.keys());
//! }
//! # Ok::<(), pretrace_store::StoreError>(())
//! ```

mod manifest;
mod store;

pub use manifest::{CheckpointInfo, DatasetInfo, Extraction, FileCheck, FileId, HubInfo, Manifest};
pub use store::{
    write_atomic, Entry, EntryState, Matrix, Result, Store, StoreDType, StoreError, FORMAT_VERSION,
};
