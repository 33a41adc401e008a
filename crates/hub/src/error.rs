use std::path::{Path, PathBuf};

/// Errors of resolving checkpoints: a folder that is not a checkpoint, a reference that does not
/// parse, a revision or file the cache (or the hub) does not have.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A path that is not what it should be.
    #[error(
        "{}: {}",
        pretrace_core::shown_path(path),
        pretrace_core::one_line(msg)
    )]
    At { path: PathBuf, msg: String },
    /// A reference (`hf:ORG/NAME@REVISION`) that does not parse.
    #[error(
        "'{}': {}; write hf:ORG/NAME or hf:ORG/NAME@REVISION (a branch, a tag or a 40-hex commit)",
        pretrace_core::shown(text, 200),
        pretrace_core::one_line(why)
    )]
    BadReference { text: String, why: String },
    /// Revisions or files that are neither in the cache nor fetchable (offline, or the hub said no).
    #[error("{repo}: not in the Hugging Face cache at {}{}: {}; fetch them with: {}", pretrace_core::shown_path(cache), if *offline { " (offline: HF_HUB_OFFLINE is set)" } else { "" }, missing.iter().map(|m| pretrace_core::one_line(m).into_owned()).collect::<Vec<_>>().join("; "), fetch.join(" && "))]
    NotCached {
        repo: String,
        cache: PathBuf,
        offline: bool,
        /// What is missing: `revision step1000`, `step1000: config.json`.
        missing: Vec<String>,
        /// The commands that fetch what is missing.
        fetch: Vec<String>,
    },
    /// A revision the repository does not have (no branch or tag of that name).
    #[error(
        "{repo}: no revision '{}'; {}",
        pretrace_core::shown(revision, 200),
        pretrace_core::one_line(hint)
    )]
    NoRevision {
        repo: String,
        revision: String,
        hint: String,
    },
    /// A selection of checkpoints that cannot be made.
    #[error("{}", pretrace_core::one_line(.0))]
    Invalid(String),
    /// A downloaded file whose contents do not hash to the ETag the hub gave.
    #[error("{}: the download is corrupt: its hash is {got}, the hub's ETag is {expected}; it was deleted: run again to download it anew", pretrace_core::shown_path(path))]
    Corrupt {
        path: PathBuf,
        expected: String,
        got: String,
    },
    /// The hub refused: 401 (no or bad token), 403 (the token lacks access), a gated repository.
    #[error("{repo}: the hub refused access ({status}{}): {}", if *gated { ", gated repository" } else { "" }, if *has_token { format!("the token in HF_TOKEN (or the saved login) has no access; accept the model's conditions at {page} with that account, or use a token that has access") } else if *gated { format!("it needs a token: accept the conditions at {page}, then set HF_TOKEN (or run `hf auth login`)") } else { "no such repository, or it is private: check the name; for a private one set HF_TOKEN (or run `hf auth login`)".to_string() })]
    Denied {
        repo: String,
        status: u16,
        has_token: bool,
        gated: bool,
        page: String,
    },
    /// 404 for the repository.
    #[error("{repo}: no such repository on {endpoint}; check ORG/NAME (and HF_ENDPOINT)")]
    NoRepo { repo: String, endpoint: String },
    /// Any other HTTP answer that is not what the client expects.
    #[error("{url}: HTTP {status}: {}", pretrace_core::one_line(msg))]
    Http {
        url: String,
        status: u16,
        msg: String,
    },
    /// No answer within the timeout.
    #[error("{url}: the connection stalled (no data for {secs} s); check the network (or raise HF_HUB_DOWNLOAD_TIMEOUT) and run again: the download resumes where it stopped")]
    Stalled { url: String, secs: f64 },
    /// The network failed otherwise.
    #[error("{url}: {}", pretrace_core::one_line(msg))]
    Network { url: String, msg: String },
    /// The disk holding the cache is full.
    #[error("{}: the disk is full; free space there, point HF_HUB_CACHE at a larger disk, or give the sweep a smaller --cache-budget", pretrace_core::shown_path(path))]
    DiskFull { path: PathBuf },
    /// A file could not be written.
    #[error(transparent)]
    Fs(#[from] pretrace_core::FsError),
}

impl HubError {
    pub fn at(path: &Path, msg: impl Into<String>) -> HubError {
        HubError::At {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, HubError>;
