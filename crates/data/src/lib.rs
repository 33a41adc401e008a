//! Datasets, the first step of the pipeline: CSV, JSON Lines, Arrow IPC and Parquet files read into
//! one validated in-memory form ([`Dataset`]: row id, text, 0/1 label, extra fields), and builders
//! for the paper's datasets from their public sources.
//!
//! ```no_run
//! use pretrace_data::{Dataset, ReadOptions};
//! let ds = Dataset::read("sst2.csv".as_ref(), &ReadOptions::default())?;
//! assert_eq!(ds.name, "sst2");
//! println!("{} rows, labels {:?}", ds.len(), ds.label_counts());
//! # Ok::<(), pretrace_data::DataError>(())
//! ```
//!
//! The paper's CSVs are kept byte-exact: quoted fields, CRLF line ends, tabs and leading spaces
//! survive as they are stored.

pub mod builders;
mod dataset;
mod error;
pub mod table;

pub use dataset::{sha256_file, sha256_hex, Dataset, LabelColumn, ReadOptions, Row, TEXT_COLUMNS};
pub use error::{DataError, Result};
pub use table::{Format, Loc, Table, Value};
