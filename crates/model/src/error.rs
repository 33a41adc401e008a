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
    #[error("{}: {msg}", path.display())]
    Config { path: PathBuf, msg: String },
    /// A weight file could not be read.
    #[error("{}: {msg}", path.display())]
    Weights { path: PathBuf, msg: String },
    /// A tensor the architecture needs is absent.
    #[error("{}: tensor '{name}' is missing (expected shape {expected:?}); the checkpoint is incomplete or not a {arch} checkpoint", path.display())]
    MissingTensor {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        arch: String,
    },
    /// A tensor has the wrong shape for the configuration.
    #[error("{}: tensor '{name}' has shape {found:?}, expected {expected:?} from config.json; the weights do not match the config", path.display())]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// Tensors in the checkpoint that no part of the architecture uses.
    #[error("{}: {count} tensor(s) are not used by the {arch} architecture (first: '{first}'); the checkpoint does not match config.json", path.display())]
    UnusedTensors {
        path: PathBuf,
        arch: String,
        count: usize,
        first: String,
    },
    /// The tokenizer could not be loaded or does not fit the model.
    #[error("{}: {msg}", path.display())]
    Tokenizer { path: PathBuf, msg: String },
    /// A request that cannot be served (bad site name, empty input, out-of-range layer...).
    #[error("{0}")]
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
        E::WithPath { inner, path } => format!("{}: {}", path.display(), one_line(inner)),
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
            msg: one_line_msg(msg.into()),
        }
    }
    pub(crate) fn weights(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        ModelError::Weights {
            path: path.into(),
            msg: one_line_msg(msg.into()),
        }
    }
    pub(crate) fn tokenizer(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        ModelError::Tokenizer {
            path: path.into(),
            msg: one_line_msg(msg.into()),
        }
    }
}

/// A message as it may be printed on one line: control characters (a newline from a file's
/// contents, say) escaped, and at most 1,000 characters kept.
fn one_line_msg(msg: String) -> String {
    if msg.len() <= 1000 && !msg.chars().any(char::is_control) {
        msg
    } else {
        pretrace_core::shown(&msg, 1000)
    }
}
