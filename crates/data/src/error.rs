use std::path::{Path, PathBuf};

/// Errors reading or building a dataset. Each names the file and, where there is one, the line or
/// row and the column.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "{}: {}",
        pretrace_core::shown_path(path),
        pretrace_core::one_line(msg)
    )]
    At { path: PathBuf, msg: String },
    #[error("{}", pretrace_core::one_line(.0))]
    Invalid(String),
}

impl DataError {
    pub fn at(path: &Path, msg: impl Into<String>) -> DataError {
        DataError::At {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, DataError>;
