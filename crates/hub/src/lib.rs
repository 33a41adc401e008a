//! Checkpoint references, the first step of the pipeline: local folders and `.gguf` files,
//! folders of checkpoints ordered by training step, and repositories on the Hugging Face hub
//! (`hf:ORG/NAME@REVISION`) through the local cache, laid out exactly as `huggingface_hub` does.
//!
//! ```no_run
//! use pretrace_hub::{discover, resolve_cached, Cache, HubRef, Selection};
//! // A folder of checkpoints, ordered by the step in each name.
//! let suite = Selection { every: Some(10), ..Default::default() }.apply(discover("pythia-160m".as_ref())?)?;
//! // The same suite from the cache, by revision.
//! let hub = HubRef::parse("hf:EleutherAI/pythia-160m")?;
//! let (suite, notes) = resolve_cached(&hub, Some("step*"), &Cache::from_env(), true)?;
//! # Ok::<(), pretrace_hub::HubError>(())
//! ```

mod budget;
mod cache;
mod client;
mod error;
#[cfg(feature = "fake-hub")]
pub mod fake;
pub mod files;
mod reference;
mod remote;
mod resolve;
mod suite;

pub use budget::{Prefetch, PrefetchEvent};
pub use cache::{
    cache_root_from, etag_of_file, hf_home_from, offline_from, repo_folder_name, truthy,
    verify_etag, Cache, ContentHash, Presence, RepoCache, CACHEDIR_TAG,
};
pub use client::{
    normalize_etag, quote, ClientOptions, Fetched, FileMeta, Head, HubClient, Refs, RevisionInfo,
};
pub use error::{HubError, Result};
pub use reference::{
    check_repo_id, check_repo_path, check_revision, is_commit, HubRef, Reference, HUB_PREFIX,
};
pub use remote::{FetchEvent, FetchSummary, Hub, Plan, PlannedFile};
pub use resolve::{
    fetch_command, glob_match, is_glob, missing_files, order, parse_revisions, resolve_cached,
    resolve_model_cached, select, snapshot_has_tokenizer, Branch, ResolvedModel,
};
pub use suite::{
    check_uniform, discover, in_hf_cache, parse_name, shape_of, sort_by_step, CheckpointRef,
    HubSource, Selection, TokenizerSource,
};
