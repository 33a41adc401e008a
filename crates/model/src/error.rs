//! Errors of the model runtime. Every message names the object, what was expected, what was found
//! and, where there is one, the fix.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A path given by the user does not exist.
    #[error("{}: no such file or directory; give a checkpoint directory (config.json + weights) or a .gguf file", .0.display())]
    NotFound(PathBuf),
    /// config.json (or GGUF metadata) is missing, malformed or describes something unsupported.
    #[error(
        "{}: {}",
        pretrace_core::shown_path(path),
        pretrace_core::one_line(msg)
    )]
    Config { path: PathBuf, msg: String },
    /// A weight file could not be read.
    #[error(
        "{}: {}",
        pretrace_core::shown_path(path),
        pretrace_core::one_line(msg)
    )]
    Weights { path: PathBuf, msg: String },
    /// A tensor the architecture needs is absent.
    #[error("{}: tensor '{name}' is missing (expected shape {expected:?}); the checkpoint is incomplete or not a {arch} checkpoint", pretrace_core::shown_path(path))]
    MissingTensor {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        arch: String,
    },
    /// A tensor has the wrong shape for the configuration.
    #[error("{}: tensor '{}' has shape {found:?}, expected {expected:?} from config.json; the weights do not match the config", pretrace_core::shown_path(path), pretrace_core::shown(name, 80))]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// Tensors in the checkpoint that no part of the architecture uses.
    #[error("{}: {count} tensor(s) are not used by the {arch} architecture (first: '{}'); the checkpoint does not match config.json", pretrace_core::shown_path(path), pretrace_core::shown(first, 80))]
    UnusedTensors {
        path: PathBuf,
        arch: String,
        count: usize,
        first: String,
    },
    /// The tokenizer could not be loaded or does not fit the model.
    #[error(
        "{}: {}",
        pretrace_core::shown_path(path),
        pretrace_core::one_line(msg)
    )]
    Tokenizer { path: PathBuf, msg: String },
    /// A request that cannot be served (bad site name, empty input, out-of-range layer...).
    #[error("{}", pretrace_core::one_line(.0))]
    Invalid(String),
    /// A value in the residual stream or the logits is NaN or infinite.
    #[error("{site} is {value} at batch row {row}, position {position}: the weights, config or an intervention (steering α) produce values that overflow")]
    NonFinite {
        /// The hook site (or `logits`) where it first appeared.
        site: String,
        row: usize,
        position: usize,
        value: f32,
    },
    /// The device asked for cannot be used.
    #[error("{device}: {}", pretrace_core::one_line(why))]
    Device { device: String, why: String },
    /// A sequence is longer than the model's positions.
    #[error("a sequence of {tokens} tokens is longer than the model's {limit} positions (max_position_embeddings); shorten it")]
    TooLong { tokens: usize, limit: usize },
    /// A tensor operation failed.
    #[error("tensor operation failed: {}", one_line(.0))]
    Candle(#[from] candle_core::Error),
}

/// A candle error as one line: without the backtrace candle attaches under `RUST_BACKTRACE`, and
/// with its context layers joined.
pub fn one_line(e: &candle_core::Error) -> String {
    use candle_core::Error as E;
    let s = match e {
        E::WithBacktrace { inner, .. } => return one_line(inner),
        E::Context { inner, context } => format!("{context}: {}", one_line(inner)),
        E::WithPath { inner, path } => {
            format!("{}: {}", pretrace_core::shown_path(path), one_line(inner))
        }
        other => other.to_string(),
    };
    pretrace_core::shown(&s.replace('\n', "; "), 300)
}

/// Result alias of the model crate.
pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    pub(crate) fn config(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        ModelError::Config {
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub(crate) fn weights(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        ModelError::Weights {
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub(crate) fn tokenizer(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        ModelError::Tokenizer {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
