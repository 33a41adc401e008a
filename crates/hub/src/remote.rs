//! The hub and its cache together: what is cached resolves with no network at all; the rest is
//! listed and downloaded (unless `HF_HUB_OFFLINE` is set, when it is an error that lists what is
//! missing and the commands that fetch it).

use crate::cache::{offline_from, Cache, Presence};
use crate::client::{ClientOptions, FileMeta, Head, HubClient};
use crate::error::{HubError, Result};
use crate::files::{pick_weights, shards_in_index, CONFIG, TOKENIZER_FILES};
use crate::reference::{is_commit, HubRef, Reference};
use crate::resolve::{
    missing_files, order, patterns_for, resolve_cached, select, snapshot_has_tokenizer, Branch,
    ResolvedModel,
};
use crate::suite::{CheckpointRef, HubSource, TokenizerSource};
use std::path::PathBuf;

/// One file a checkpoint needs, as the hub describes it.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub path: String,
    pub meta: FileMeta,
    /// Its blob is in the cache already.
    pub cached: bool,
}

/// What a checkpoint needs from the hub.
#[derive(Debug, Clone)]
pub struct Plan {
    pub files: Vec<PlannedFile>,
    /// Tokenizer files the revision does not have.
    pub absent: Vec<String>,
}

impl Plan {
    /// Bytes still to download.
    pub fn to_download(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| !f.cached)
            .map(|f| f.meta.size)
            .sum()
    }
}

/// A progress event of a download.
#[derive(Debug, Clone)]
pub enum FetchEvent<'a> {
    /// `file` of checkpoint `name`: `done` of `total` bytes.
    Bytes {
        name: &'a str,
        file: &'a str,
        done: u64,
        total: u64,
    },
}

/// What one checkpoint's download did.
#[derive(Debug, Clone, Default)]
pub struct FetchSummary {
    pub downloaded: u64,
    /// Blobs this download created (the ones a disk budget may evict later).
    pub new_blobs: Vec<(PathBuf, u64)>,
    /// Every file: its snapshot link `snapshots/COMMIT/PATH`, the blob it links to, and the
    /// blob's size.
    pub files: Vec<(PathBuf, PathBuf, u64)>,
}

/// The cache, and the hub behind it unless offline.
pub struct Hub {
    pub cache: Cache,
    pub offline: bool,
    client: Option<HubClient>,
}

impl Hub {
    /// The cache and hub the environment names (`HF_HUB_CACHE` …, `HF_HUB_OFFLINE`,
    /// `HF_ENDPOINT`, `HF_TOKEN`).
    pub fn from_env() -> Hub {
        let var = |k: &str| std::env::var(k).ok();
        let offline = offline_from(var);
        Hub::new(Cache::from_env(), offline, ClientOptions::from_env())
    }

    pub fn new(cache: Cache, offline: bool, opts: ClientOptions) -> Hub {
        Hub {
            cache,
            offline,
            client: (!offline).then(|| HubClient::new(opts)),
        }
    }

    pub fn client(&self) -> Option<&HubClient> {
        self.client.as_ref()
    }

    /// The suite `revisions` names, in training order (see [`resolve_cached`]). Revisions in the
    /// cache with every file a checkpoint needs take no network; globs and `all` list the
    /// repository's branches; other revisions are looked up on the hub. Paths are the snapshot
    /// folders, whose files [`Hub::fetch`] brings when they are missing.
    pub fn resolve_suite(
        &self,
        hub: &HubRef,
        revisions: Option<&str>,
    ) -> Result<(Vec<CheckpointRef>, Vec<String>)> {
        let Some(client) = &self.client else {
            return resolve_cached(hub, revisions, &self.cache, true);
        };
        let repo = self.cache.repo(&hub.repo);
        let patterns = patterns_for(hub, revisions)?;
        let any_glob = patterns.iter().any(|p| crate::resolve::is_glob(p));
        let branches: Vec<Branch> = if any_glob {
            client.refs(&hub.repo)?.branches
        } else {
            repo.refs()?
                .into_iter()
                .map(|(name, commit)| Branch { name, commit })
                .collect()
        };
        let wanted = select(&hub.repo, &patterns, &branches)?;
        let mut resolved = Vec::new();
        for rev in &wanted {
            let cached = repo
                .commit_of(rev)?
                .filter(|c| missing_files(&repo, c).is_ok_and(|m| m.is_empty()));
            let commit = match cached {
                Some(c) => c,
                None => match branches.iter().find(|b| b.name == *rev) {
                    Some(b) if any_glob => b.commit.clone(),
                    _ if is_commit(rev) => rev.clone(),
                    _ => client.revision(&hub.repo, rev)?.commit,
                },
            };
            resolved.push((rev.clone(), commit));
        }
        let (mut suite, notes) = order(&hub.repo, &resolved, &branches);
        for c in &mut suite {
            if let Some(h) = &c.hub {
                c.path = repo.snapshot_dir(&h.commit);
            }
        }
        Ok((suite, notes))
    }

    /// A model named by a path or `hf:ORG/NAME[@REVISION]`; a hub model that is not cached is
    /// downloaded first.
    pub fn resolve_model(
        &self,
        r: &Reference,
        progress: &mut dyn FnMut(FetchEvent),
    ) -> Result<ResolvedModel> {
        match r {
            Reference::Path(_) => {
                crate::resolve::resolve_model_cached(r, &self.cache, self.offline)
            }
            Reference::Hub(h) => {
                let (suite, _) = self.resolve_suite(h, None)?;
                let c = suite
                    .into_iter()
                    .next()
                    .ok_or_else(|| HubError::Invalid(format!("{h}: resolved to no checkpoint")))?;
                if !self.is_complete(&c)? {
                    let plan = self.plan(&c)?;
                    self.fetch(&c, &plan, progress)?;
                }
                Ok(ResolvedModel {
                    path: c.path,
                    hub: c.hub,
                    tokenizer: None,
                })
            }
        }
    }

    /// Whether a hub checkpoint's snapshot already has every file it needs.
    pub fn is_complete(&self, ck: &CheckpointRef) -> Result<bool> {
        let Some(h) = &ck.hub else { return Ok(true) };
        Ok(missing_files(&self.cache.repo(&h.repo), &h.commit)?.is_empty())
    }

    fn source<'a>(&self, ck: &'a CheckpointRef) -> Result<(&HubClient, &'a HubSource)> {
        let h = ck.hub.as_ref().ok_or_else(|| {
            HubError::Invalid(format!("{}: not a checkpoint from the hub", ck.name))
        })?;
        let Some(client) = &self.client else {
            let m = missing_files(&self.cache.repo(&h.repo), &h.commit)?;
            return Err(HubError::NotCached {
                repo: h.repo.clone(),
                cache: self.cache.root().to_path_buf(),
                offline: true,
                missing: vec![format!("{}: {}", h.revision, m.join(", "))],
                fetch: vec![crate::resolve::fetch_command(&h.repo, &h.revision)],
            });
        };
        Ok((client, h))
    }

    /// The files checkpoint `ck` needs and their sizes (`HEAD`s, and the weight index if the
    /// weights are sharded): config.json, the tokenizer files it has, and its weights, safetensors
    /// preferred over `.bin`.
    pub fn plan(&self, ck: &CheckpointRef) -> Result<Plan> {
        let (client, h) = self.source(ck)?;
        let info = client.revision(&h.repo, &h.commit)?;
        let rc = self.cache.repo(&h.repo);
        let mut files = Vec::new();
        let mut absent = Vec::new();
        let mut want: Vec<String> = Vec::new();
        if !info.files.iter().any(|f| f == CONFIG) {
            return Err(HubError::NotCached {
                repo: h.repo.clone(),
                cache: self.cache.root().to_path_buf(),
                offline: false,
                missing: vec![format!(
                    "{}: the revision has no config.json, so it is no checkpoint pretrace can load",
                    h.revision
                )],
                fetch: vec![format!(
                    "hf download {} --revision {} (to look at what it has)",
                    h.repo, h.revision
                )],
            });
        }
        want.push(CONFIG.into());
        for t in TOKENIZER_FILES {
            if info.files.iter().any(|f| f == t) {
                want.push(t.to_string());
            } else {
                absent.push(t.to_string());
            }
        }
        let weights = pick_weights(&info.files).ok_or_else(|| HubError::NotCached {
            repo: h.repo.clone(),
            cache: self.cache.root().to_path_buf(),
            offline: false,
            missing: vec![format!("{}: the revision has no weights (model.safetensors, pytorch_model.bin or an index of shards)", h.revision)],
            fetch: vec![format!("hf download {} --revision {}", h.repo, h.revision)],
        })?;
        want.push(weights.to_string());
        let head = |path: &str| -> Result<PlannedFile> {
            match client.head(&h.repo, &h.commit, path)? {
                Head::Found(meta) => Ok(PlannedFile {
                    path: path.to_string(),
                    cached: rc.blob_path(&meta.etag)?.is_file(),
                    meta,
                }),
                Head::Absent { .. } => Err(HubError::NotCached {
                    repo: h.repo.clone(),
                    cache: self.cache.root().to_path_buf(),
                    offline: false,
                    missing: vec![format!(
                        "{}: {path} is listed but the hub does not serve it",
                        h.revision
                    )],
                    fetch: vec![format!("hf download {} --revision {}", h.repo, h.revision)],
                }),
            }
        };
        for w in &want {
            files.push(head(w)?);
        }
        if weights.ends_with(".index.json") {
            // The index names the shards: fetch it now (it is small).
            let idx = files
                .last()
                .cloned()
                .ok_or_else(|| HubError::Invalid("no index".into()))?;
            let got = client.download_known(
                &self.cache,
                &h.repo,
                &h.revision,
                &idx.path,
                &idx.meta,
                &mut |_, _| {},
            )?;
            let text = std::fs::read_to_string(&got.path)
                .map_err(|e| HubError::at(&got.path, format!("cannot read: {e}")))?;
            let shards = shards_in_index(&text).map_err(|w| HubError::at(&got.path, w))?;
            if let Some(last) = files.last_mut() {
                last.cached = true;
            }
            for s in shards {
                files.push(head(&s)?);
            }
        }
        Ok(Plan { files, absent })
    }

    /// Downloads what `plan` lists for `ck` into the cache and records the tokenizer files it
    /// lacks in `.no_exist`.
    pub fn fetch(
        &self,
        ck: &CheckpointRef,
        plan: &Plan,
        progress: &mut dyn FnMut(FetchEvent),
    ) -> Result<FetchSummary> {
        let (client, h) = self.source(ck)?;
        let rc = self.cache.repo(&h.repo);
        let mut out = FetchSummary::default();
        for f in &plan.files {
            let got = client.download_known(
                &self.cache,
                &h.repo,
                &h.revision,
                &f.path,
                &f.meta,
                &mut |done, total| {
                    progress(FetchEvent::Bytes {
                        name: &ck.name,
                        file: &f.path,
                        done,
                        total,
                    })
                },
            )?;
            out.downloaded += got.downloaded;
            if got.new_blob {
                out.new_blobs.push((got.blob.clone(), got.size));
            }
            out.files.push((got.path, got.blob, got.size));
        }
        for a in &plan.absent {
            rc.mark_absent(&h.commit, a)?;
        }
        Ok(out)
    }

    /// Whether the revision of `h` has tokenizer files of its own (`tokenizer.json` or
    /// `tokenizer.model`): from the cache, else from the hub's file list. A snapshot in the cache
    /// without them, offline, has none (`hf download` fetches every file of a revision).
    pub fn has_own_tokenizer(&self, h: &HubSource) -> Result<bool> {
        let rc = self.cache.repo(&h.repo);
        if snapshot_has_tokenizer(&rc, &h.commit) {
            return Ok(true);
        }
        let known_absent = ["tokenizer.json", "tokenizer.model"]
            .iter()
            .all(|f| matches!(rc.lookup(&h.commit, f), Presence::Absent));
        match &self.client {
            Some(c) if !known_absent => Ok(crate::files::has_tokenizer(
                &c.revision(&h.repo, &h.commit)?.files,
            )),
            _ => Ok(false),
        }
    }

    /// The folder holding the tokenizer files of `r` (a path, or `hf:ORG/NAME[@REVISION]` whose
    /// tokenizer files alone are downloaded into the cache when they are not there), and what to
    /// record for it.
    pub fn tokenizer(&self, r: &Reference) -> Result<TokenizerSource> {
        let h = match r {
            Reference::Path(p) => {
                return Ok(TokenizerSource {
                    path: p.clone(),
                    reference: p.display().to_string(),
                })
            }
            Reference::Hub(h) => h,
        };
        let rev = h.revision_or_main().to_string();
        let rc = self.cache.repo(&h.repo);
        let cached = rc
            .commit_of(&rev)?
            .filter(|c| snapshot_has_tokenizer(&rc, c));
        let commit = match (cached, &self.client) {
            (Some(c), _) => c,
            (None, None) => {
                return Err(HubError::NotCached {
                    repo: h.repo.clone(),
                    cache: self.cache.root().to_path_buf(),
                    offline: true,
                    missing: vec![format!(
                        "{rev}: the tokenizer (tokenizer.json or tokenizer.model)"
                    )],
                    fetch: vec![format!(
                        "hf download {} --revision {rev} {}",
                        h.repo,
                        TOKENIZER_FILES.join(" ")
                    )],
                })
            }
            (None, Some(client)) => {
                let info = client.revision(&h.repo, &rev)?;
                if !crate::files::has_tokenizer(&info.files) {
                    return Err(HubError::Invalid(format!(
                        "hf:{}@{rev} has no tokenizer.json or tokenizer.model either; name a tokenizer with --tokenizer hf:ORG/NAME[@REVISION] or a folder",
                        h.repo
                    )));
                }
                for t in TOKENIZER_FILES {
                    if info.files.iter().any(|f| f == t) {
                        client.download(&self.cache, &h.repo, &rev, t, &mut |_, _| {})?;
                    } else {
                        rc.mark_absent(&info.commit, t)?;
                    }
                }
                info.commit
            }
        };
        Ok(TokenizerSource {
            path: rc.snapshot_dir(&commit),
            reference: format!("hf:{}@{rev} (commit {commit})", h.repo),
        })
    }

    /// Gives every checkpoint of `suite` its tokenizer source: `explicit` for all when given,
    /// else, for hub revisions without tokenizer files, the repository's `main`. Returns a note
    /// for each checkpoint that takes its tokenizer from elsewhere.
    pub fn attach_tokenizers(
        &self,
        suite: &mut [CheckpointRef],
        explicit: Option<&Reference>,
    ) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        if let Some(r) = explicit {
            let t = self.tokenizer(r)?;
            notes.push(format!(
                "the tokenizer of every checkpoint comes from {}",
                t.reference
            ));
            for c in suite.iter_mut() {
                c.tokenizer = Some(t.clone());
            }
            return Ok(notes);
        }
        let mut main: std::collections::BTreeMap<String, TokenizerSource> = Default::default();
        for c in suite.iter_mut() {
            let Some(h) = c.hub.clone() else { continue };
            if self.has_own_tokenizer(&h)? {
                continue;
            }
            let t = match main.get(&h.repo) {
                Some(t) => t.clone(),
                None => {
                    let t = self.tokenizer(&Reference::Hub(HubRef {
                        repo: h.repo.clone(),
                        revision: Some("main".into()),
                    }))?;
                    main.insert(h.repo.clone(), t.clone());
                    t
                }
            };
            notes.push(format!(
                "{} ships no tokenizer: taking the tokenizer of {}",
                h.reference(),
                t.reference
            ));
            c.tokenizer = Some(t);
        }
        Ok(notes)
    }
}
