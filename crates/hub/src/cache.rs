//! The Hugging Face cache, exactly as `huggingface_hub` lays it out:
//!
//! ```text
//! $HF_HUB_CACHE/models--ORG--NAME/
//!   refs/REVISION                 the commit the revision pointed at (40 hex digits, no newline)
//!   blobs/ETAG                    file contents, named by ETag (sha256 for LFS files, git sha1 else)
//!   snapshots/COMMIT/PATH         relative symlinks into ../../blobs (one more ../ per folder)
//!   .no_exist/COMMIT/PATH         empty files: PATH is known to be absent at COMMIT
//! ```
//!
//! Reading needs no network at all. Writing (used by downloads) follows the same rules: a blob
//! appears under its final name only once it is whole and verified, then the snapshot link is made.

use crate::error::{HubError, Result};
use crate::reference::{check_repo_path, check_revision, is_commit};
use std::path::{Path, PathBuf};

/// Where the cache is: `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub` (`huggingface_hub.constants`).
pub fn cache_root_from(var: impl Fn(&str) -> Option<String>) -> PathBuf {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(p) = set("HF_HUB_CACHE").or_else(|| set("HUGGINGFACE_HUB_CACHE")) {
        return expand_home(&p, &var);
    }
    hf_home_from(&var).join("hub")
}

/// `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`: where the token
/// file lives, and the cache's parent.
pub fn hf_home_from(var: impl Fn(&str) -> Option<String>) -> PathBuf {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(h) = set("HF_HOME") {
        return expand_home(&h, &var);
    }
    let xdg = set("XDG_CACHE_HOME")
        .map(|x| expand_home(&x, &var))
        .unwrap_or_else(|| home(&var).join(".cache"));
    xdg.join("huggingface")
}

fn home(var: &impl Fn(&str) -> Option<String>) -> PathBuf {
    PathBuf::from(
        var("HOME")
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "/".into()),
    )
}

/// `~` and `~/…` as Python's `os.path.expanduser` reads them.
fn expand_home(p: &str, var: &impl Fn(&str) -> Option<String>) -> PathBuf {
    if p == "~" {
        home(var)
    } else if let Some(rest) = p.strip_prefix("~/") {
        home(var).join(rest)
    } else {
        PathBuf::from(p)
    }
}

/// Whether a variable's value is true as `huggingface_hub` reads it (`1`, `ON`, `YES`, `TRUE`,
/// any case).
pub fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

/// `HF_HUB_OFFLINE` is set to a true value.
/// (`TRANSFORMERS_OFFLINE` stands in when `HF_HUB_OFFLINE` is unset or empty, as there.)
pub fn offline_from(var: impl Fn(&str) -> Option<String>) -> bool {
    var("HF_HUB_OFFLINE")
        .filter(|v| !v.is_empty())
        .or_else(|| var("TRANSFORMERS_OFFLINE"))
        .is_some_and(|v| truthy(&v))
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// A Hugging Face hub cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// The cache the environment names (see [`cache_root_from`]).
    pub fn from_env() -> Cache {
        Cache::new(cache_root_from(env))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cache of one model repository (`ORG/NAME`).
    pub fn repo(&self, repo: &str) -> RepoCache {
        RepoCache {
            repo: repo.to_string(),
            dir: self.root.join(repo_folder_name(repo)),
        }
    }

    /// The lock folder of a repository, `.locks/models--ORG--NAME`.
    pub fn locks(&self, repo: &str) -> PathBuf {
        self.root.join(".locks").join(repo_folder_name(repo))
    }
}

/// `models--ORG--NAME`.
pub fn repo_folder_name(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// What the cache says of one file at one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// It is there (the snapshot path; it reads through to the blob).
    Cached(PathBuf),
    /// `.no_exist` records that the repository does not have it at that commit.
    Absent,
    /// The cache does not know.
    Unknown,
}

/// The cache of one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoCache {
    /// `ORG/NAME`.
    pub repo: String,
    /// `…/models--ORG--NAME`.
    pub dir: PathBuf,
}

impl RepoCache {
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// The commit `revision` points at: a commit hash stands for itself; a branch or tag is read
    /// from `refs/`. `None` when the cache has no such ref.
    pub fn commit_of(&self, revision: &str) -> Result<Option<String>> {
        if is_commit(revision) {
            return Ok(Some(revision.to_string()));
        }
        check_revision(revision).map_err(|w| HubError::Invalid(format!("{}: {w}", self.repo)))?;
        let p = self.dir.join("refs").join(revision);
        match std::fs::read_to_string(&p) {
            Ok(text) => {
                let c = text.trim();
                if !is_commit(c) {
                    return Err(HubError::at(
                        &p,
                        format!(
                            "holds '{}', not a 40-hex commit; delete the file and fetch the revision again",
                            pretrace_core::shown(c, 80)
                        ),
                    ));
                }
                Ok(Some(c.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if p.is_dir() => Err(HubError::at(
                &p,
                format!("is a folder, not a ref file ({e})"),
            )),
            Err(e) => Err(HubError::at(&p, format!("cannot read: {e}"))),
        }
    }

    /// Every ref the cache holds, `(revision, commit)`, sorted by revision; refs that do not hold
    /// a commit are left out.
    pub fn refs(&self) -> Result<Vec<(String, String)>> {
        let root = self.dir.join("refs");
        let mut out = Vec::new();
        if !root.is_dir() {
            return Ok(out);
        }
        let mut stack = vec![(root.clone(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let rd = std::fs::read_dir(&dir)
                .map_err(|e| HubError::at(&dir, format!("cannot list: {e}")))?;
            for e in rd.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().to_string();
                let rel = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let Ok(ft) = e.file_type() else { continue };
                if ft.is_dir() {
                    stack.push((e.path(), rel));
                } else if ft.is_file() {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        let c = text.trim();
                        if is_commit(c) {
                            out.push((rel, c.to_string()));
                        }
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The refs that point at `commit`.
    pub fn refs_to(&self, commit: &str) -> Result<Vec<String>> {
        Ok(self
            .refs()?
            .into_iter()
            .filter(|(_, c)| c == commit)
            .map(|(r, _)| r)
            .collect())
    }

    pub fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    /// The commits that have a snapshot folder.
    pub fn snapshots(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.join("snapshots"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| is_commit(n))
            .collect();
        v.sort();
        v
    }

    /// What the cache knows of `path` at `commit`.
    pub fn lookup(&self, commit: &str, path: &str) -> Presence {
        if check_repo_path(path).is_err() || !is_commit(commit) {
            return Presence::Unknown;
        }
        let p = self.snapshot_dir(commit).join(path);
        // A link whose blob is gone is not a cached file.
        if p.is_file() {
            return Presence::Cached(p);
        }
        if self.dir.join(".no_exist").join(commit).join(path).is_file() {
            return Presence::Absent;
        }
        Presence::Unknown
    }

    pub fn blob_path(&self, etag: &str) -> Result<PathBuf> {
        check_etag(etag)?;
        Ok(self.dir.join("blobs").join(etag))
    }

    /// Where a download of `etag` goes while it runs: `blobs/ETAG.incomplete`.
    pub fn incomplete_path(&self, etag: &str) -> Result<PathBuf> {
        check_etag(etag)?;
        Ok(self.dir.join("blobs").join(format!("{etag}.incomplete")))
    }

    /// Records that `revision` points at `commit` (`refs/REVISION`, the commit without a newline),
    /// as `huggingface_hub` does for every revision that is not itself a commit.
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        if !is_commit(commit) {
            return Err(HubError::Invalid(format!(
                "{}: '{}' is not a 40-hex commit",
                self.repo,
                pretrace_core::shown(commit, 80)
            )));
        }
        if revision == commit {
            return Ok(());
        }
        check_revision(revision).map_err(|w| HubError::Invalid(format!("{}: {w}", self.repo)))?;
        let p = self.dir.join("refs").join(revision);
        if std::fs::read_to_string(&p).is_ok_and(|t| t == commit) {
            return Ok(());
        }
        make_dirs(&self.dir, &format!("refs/{revision}"))?;
        pretrace_core::write_atomic(&p, commit.as_bytes())?;
        Ok(())
    }

    /// Links `snapshots/COMMIT/PATH` to `blobs/ETAG` with a relative symlink (`../../blobs/ETAG`,
    /// one more `../` per folder in PATH), replacing an older link there.
    pub fn link(&self, commit: &str, path: &str, etag: &str) -> Result<PathBuf> {
        check_commit(commit)?;
        check_repo_path(path)
            .map_err(|w| HubError::Invalid(format!("{}: {path}: {w}", self.repo)))?;
        let blob = self.blob_path(etag)?;
        if !blob.is_file() {
            return Err(HubError::at(&blob, "no such blob to link to"));
        }
        let rel = format!("snapshots/{commit}/{path}");
        make_dirs(&self.dir, &rel)?;
        let depth = rel.matches('/').count();
        let target: PathBuf = std::iter::repeat_n("..", depth)
            .collect::<PathBuf>()
            .join("blobs")
            .join(etag);
        let dst = self.dir.join(&rel);
        let tmp = dst.with_file_name(format!(
            "{}{}.{}",
            pretrace_core::TMP_PREFIX,
            dst.file_name()
                .map_or("link".into(), |n| n.to_string_lossy()),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        symlink(&target, &tmp)
            .map_err(|e| HubError::at(&dst, format!("cannot link to the blob: {e}")))?;
        if let Ok(m) = std::fs::symlink_metadata(&dst) {
            if m.is_dir() {
                let _ = std::fs::remove_file(&tmp);
                return Err(HubError::at(&dst, "is a folder, not a file link"));
            }
        }
        std::fs::rename(&tmp, &dst).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            HubError::at(&dst, format!("cannot link to the blob: {e}"))
        })?;
        Ok(dst)
    }

    /// Records that `path` does not exist at `commit` (an empty `.no_exist/COMMIT/PATH`).
    pub fn mark_absent(&self, commit: &str, path: &str) -> Result<()> {
        check_commit(commit)?;
        check_repo_path(path)
            .map_err(|w| HubError::Invalid(format!("{}: {path}: {w}", self.repo)))?;
        let rel = format!(".no_exist/{commit}/{path}");
        make_dirs(&self.dir, &rel)?;
        // scan_cache_dir() counts a repository without snapshots/ as broken.
        make_dirs(&self.dir, "snapshots/x")?;
        let p = self.dir.join(&rel);
        if !p.exists() {
            pretrace_core::write_atomic(&p, b"")?;
        }
        Ok(())
    }
}

/// `CACHEDIR.TAG`, as `huggingface_hub` writes it at the cache root (backup tools skip the folder).
pub const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by huggingface_hub.\n# For information about cache directory tags, see:\n#\thttps://bford.info/cachedir/\n";

impl Cache {
    /// Writes `CACHEDIR.TAG` at the root if it is not there.
    pub fn tag(&self) -> Result<()> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| HubError::at(&self.root, format!("cannot create: {e}")))?;
        let p = self.root.join("CACHEDIR.TAG");
        if std::fs::symlink_metadata(&p).is_err() {
            pretrace_core::write_atomic(&p, CACHEDIR_TAG.as_bytes())?;
        }
        Ok(())
    }
}

/// The hash an ETag names: sha256 of the contents for LFS files (64 hex digits), git's blob sha1
/// (`sha1("blob LEN\0" + contents)`, 40 hex digits) for the others.
pub enum ContentHash {
    Sha256(sha2::Sha256),
    GitSha1(sha1::Sha1),
}

impl ContentHash {
    /// The hasher for `etag`, told the file's length (git's blob header holds it).
    pub fn for_etag(etag: &str, len: u64) -> Result<ContentHash> {
        use sha1::Digest;
        check_etag(etag)?;
        Ok(if etag.len() == 64 {
            ContentHash::Sha256(sha2::Sha256::new())
        } else {
            ContentHash::git_sha1(len)
        })
    }

    /// git's blob sha1 of a file of `len` bytes.
    pub fn git_sha1(len: u64) -> ContentHash {
        use sha1::Digest;
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {len}\0").as_bytes());
        ContentHash::GitSha1(h)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        use sha1::Digest;
        match self {
            ContentHash::Sha256(h) => h.update(bytes),
            ContentHash::GitSha1(h) => h.update(bytes),
        }
    }

    pub fn hex(self) -> String {
        use sha1::Digest;
        let d: Vec<u8> = match self {
            ContentHash::Sha256(h) => h.finalize().to_vec(),
            ContentHash::GitSha1(h) => h.finalize().to_vec(),
        };
        d.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The ETag the hub gives a file: its sha256 when it is stored in LFS, else its git blob sha1.
pub fn etag_of_file(path: &Path, lfs: bool) -> Result<String> {
    use std::io::Read;
    let len = std::fs::metadata(path)
        .map_err(|e| HubError::at(path, format!("cannot read: {e}")))?
        .len();
    let mut h = if lfs {
        ContentHash::Sha256(<sha2::Sha256 as sha2::Digest>::new())
    } else {
        ContentHash::git_sha1(len)
    };
    let mut f =
        std::fs::File::open(path).map_err(|e| HubError::at(path, format!("cannot read: {e}")))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| HubError::at(path, format!("cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.hex())
}

/// Checks that the file at `path` hashes to `etag` (see [`ContentHash`]).
pub fn verify_etag(path: &Path, etag: &str) -> Result<()> {
    let got = etag_of_file(path, etag.len() == 64)?;
    if got == etag {
        Ok(())
    } else {
        Err(HubError::Corrupt {
            path: path.to_path_buf(),
            expected: etag.to_string(),
            got,
        })
    }
}

impl RepoCache {
    /// Moves a finished download (`tmp`, in this repository's `blobs/`) to `blobs/ETAG` once its
    /// contents hash to `etag`; a file that does not is deleted and is an error. A reader never
    /// sees a blob that is not whole.
    pub fn commit_blob(&self, tmp: &Path, etag: &str) -> Result<PathBuf> {
        let dst = self.blob_path(etag)?;
        if let Err(e) = verify_etag(tmp, etag) {
            let _ = std::fs::remove_file(tmp);
            return Err(e);
        }
        if let Ok(f) = std::fs::File::open(tmp) {
            let _ = f.sync_all();
        }
        std::fs::rename(tmp, &dst)
            .map_err(|e| HubError::at(&dst, format!("cannot move the download into place: {e}")))?;
        Ok(dst)
    }

    /// Adds a local file to the cache as the hub would serve it: its blob (named by its ETag:
    /// sha256 when `lfs`, else the git blob sha1) and the link `snapshots/COMMIT/PATH`. Returns
    /// the ETag.
    pub fn import(&self, commit: &str, path: &str, src: &Path, lfs: bool) -> Result<String> {
        let etag = etag_of_file(src, lfs)?;
        let dst = self.blob_path(&etag)?;
        if !dst.is_file() {
            make_dirs(&self.dir, &format!("blobs/{etag}"))?;
            let tmp = self.incomplete_path(&etag)?;
            std::fs::copy(src, &tmp)
                .map_err(|e| HubError::at(&tmp, format!("cannot write: {e}")))?;
            self.commit_blob(&tmp, &etag)?;
        }
        self.link(commit, path, &etag)?;
        Ok(etag)
    }
}

fn check_commit(commit: &str) -> Result<()> {
    if is_commit(commit) {
        Ok(())
    } else {
        Err(HubError::Invalid(format!(
            "'{}' is not a 40-hex commit",
            pretrace_core::shown(commit, 80)
        )))
    }
}

/// An ETag usable as a blob name: 40 (git sha1) or 64 (sha256) lowercase hex digits.
pub fn check_etag(etag: &str) -> Result<()> {
    let ok = (etag.len() == 40 || etag.len() == 64)
        && etag
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(HubError::Invalid(format!(
            "the hub gave the ETag '{}', not a git sha1 or a sha256; the server is not a Hugging Face hub",
            pretrace_core::shown(etag, 80)
        )))
    }
}

/// Creates the folders of `root/rel`'s parent one by one, refusing a symlink on the way, so that a
/// name from the hub never makes a write land outside `root`.
pub(crate) fn make_dirs(root: &Path, rel: &str) -> Result<()> {
    let parts: Vec<&str> = rel.split('/').collect();
    std::fs::create_dir_all(root).map_err(|e| HubError::at(root, format!("cannot create: {e}")))?;
    let mut dir = root.to_path_buf();
    for part in &parts[..parts.len().saturating_sub(1)] {
        dir = pretrace_core::create_subdir(&dir, part)?;
    }
    Ok(())
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "the cache layout needs symbolic links, which this platform build does not make",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_root_order() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            cache_root_from(vars(&[("HOME", "/home/u")])),
            PathBuf::from("/home/u/.cache/huggingface/hub")
        );
        assert_eq!(
            cache_root_from(vars(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/x")])),
            PathBuf::from("/x/huggingface/hub")
        );
        assert_eq!(
            cache_root_from(vars(&[("XDG_CACHE_HOME", "/x"), ("HF_HOME", "/h")])),
            PathBuf::from("/h/hub")
        );
        assert_eq!(
            cache_root_from(vars(&[
                ("HF_HOME", "/h"),
                ("HUGGINGFACE_HUB_CACHE", "/old")
            ])),
            PathBuf::from("/old")
        );
        assert_eq!(
            cache_root_from(vars(&[
                ("HF_HUB_CACHE", "~/c"),
                ("HUGGINGFACE_HUB_CACHE", "/old"),
                ("HOME", "/home/u")
            ])),
            PathBuf::from("/home/u/c")
        );
        for t in ["1", "ON", "yes", "True", " true "] {
            assert!(truthy(t), "{t}");
        }
        for f in ["0", "off", "no", "", "2"] {
            assert!(!truthy(f), "{f}");
        }
    }
}
