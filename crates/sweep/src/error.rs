use std::path::{Path, PathBuf};

/// Errors of a sweep: the model's, the data's and the store's, and the sweep's own.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Model(#[from] pretrace_model::ModelError),
    #[error(transparent)]
    Data(#[from] pretrace_data::DataError),
    #[error(transparent)]
    Store(#[from] pretrace_store::StoreError),
    #[error("{}: {msg}", path.display())]
    At { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
}

impl SweepError {
    pub fn at(path: &Path, msg: impl Into<String>) -> SweepError {
        SweepError::At {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}

impl From<candle_core::Error> for SweepError {
    fn from(e: candle_core::Error) -> Self {
        SweepError::Model(e.into())
    }
}

pub type Result<T> = std::result::Result<T, SweepError>;
