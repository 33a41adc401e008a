use std::path::{Path, PathBuf};

/// Errors reading or building a dataset. Each names the file and, where there is one, the line or
/// row and the column.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {msg}", path.display())]
    At { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub fn at(path: &Path, msg: impl Into<String>) -> DataError {
        DataError::At {
            path: path.to_path_buf(),
            msg: one_line(msg.into()),
        }
    }
}

/// A message as it may be printed on one line: control characters (a newline in a cell, say)
/// escaped, and at most 1,000 characters kept.
fn one_line(msg: String) -> String {
    if msg.len() <= 1000 && !msg.chars().any(char::is_control) {
        msg
    } else {
        pretrace_core::shown(&msg, 1000)
    }
}

pub type Result<T> = std::result::Result<T, DataError>;
