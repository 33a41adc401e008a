//! The facade over pretrace's pipeline: what the command-line program, and any other caller, uses
//! to read an experiment file ([`experiment::ExperimentFile`]) and check every setting in it before
//! anything runs.
//!
//! ```
//! let text = "[models]\nsuite = \"amber/\"\n\ndatasets = [\"sst2.csv\"]\n";
//! let f = pretrace::experiment::ExperimentFile::parse(text, "exp.toml");
//! assert!(f.is_err()); // `datasets` belongs before the [models] table
//! ```

pub mod experiment;
