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
    #[error(transparent)]
    Hub(#[from] pretrace_hub::HubError),
    #[error(
        "{}: {}",
        pretrace_core::shown_path(path),
        pretrace_core::one_line(msg)
    )]
    At { path: PathBuf, msg: String },
    #[error("{}", pretrace_core::one_line(.0))]
    Invalid(String),
    /// A row encodes to more tokens than the model has positions.
    #[error("{}: row {row} is {tokens} tokens, longer than the model's {limit} positions; shorten the row, or truncate rows to the context (extract --truncate)", file.display())]
    RowTooLong {
        file: PathBuf,
        row: usize,
        tokens: usize,
        limit: usize,
    },
    /// An activation is NaN or infinite: the weights or the config hold values that overflow.
    #[error("checkpoint '{checkpoint}', dataset '{dataset}', row {row}: the activation after block {layer} is {value} (the first block where it appears); the checkpoint's weights or config produce values that overflow")]
    NonFinite {
        checkpoint: String,
        dataset: String,
        row: usize,
        layer: usize,
        value: f32,
    },
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
