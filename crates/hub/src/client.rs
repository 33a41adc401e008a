//! The hub's HTTP protocol, as `huggingface_hub` speaks it: `HEAD …/resolve/REVISION/PATH` for a
//! file's commit, ETag and size (following the hub's relative redirects; an absolute one is the
//! CDN), `GET` of the file with `Range` to resume, and the refs and model-info APIs.
//!
//! Every file is verified before it appears in the cache: LFS files hash (sha256) to the hub's
//! `X-Linked-Etag`, git files (git blob sha1) to their `ETag`. A download in progress lives in
//! `blobs/ETAG.incomplete` (resumed with `Range: bytes=N-` after a crash), under the lock
//! `.locks/models--ORG--NAME/ETAG.lock`, and is renamed to `blobs/ETAG` only once whole.

use crate::cache::{check_etag, Cache, ContentHash, RepoCache};
use crate::error::{HubError, Result};
use crate::reference::{check_repo_path, is_commit};
use crate::resolve::Branch;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to reach the hub.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `HF_ENDPOINT`, default `https://huggingface.co`, without a trailing `/`.
    pub endpoint: String,
    /// `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`, else the file `$HF_HOME/token`.
    pub token: Option<String>,
    /// How long a connection may stay silent (connecting, awaiting headers, between body reads)
    /// before it counts as stalled: `HF_HUB_DOWNLOAD_TIMEOUT` seconds, default 30.
    pub timeout: Duration,
}

impl ClientOptions {
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> ClientOptions {
        let set = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let clean = |t: String| {
            let t = t.replace(['\r', '\n'], "").trim().to_string();
            (!t.is_empty()).then_some(t)
        };
        let token = set("HF_TOKEN")
            .or_else(|| set("HUGGING_FACE_HUB_TOKEN"))
            .and_then(clean)
            .or_else(|| {
                let path = set("HF_TOKEN_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| crate::cache::hf_home_from(&var).join("token"));
                std::fs::read_to_string(path).ok().and_then(clean)
            });
        let timeout = set("HF_HUB_DOWNLOAD_TIMEOUT")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(Duration::from_secs(30), Duration::from_secs_f64);
        ClientOptions {
            endpoint: set("HF_ENDPOINT")
                .unwrap_or_else(|| "https://huggingface.co".into())
                .trim_end_matches('/')
                .to_string(),
            token,
            timeout,
        }
    }

    pub fn from_env() -> ClientOptions {
        ClientOptions::from_vars(|k| std::env::var(k).ok())
    }
}

/// What `HEAD …/resolve/…` says of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// `X-Repo-Commit`.
    pub commit: String,
    /// `X-Linked-Etag` (LFS) or `ETag`, without `W/` and quotes: the blob's name.
    pub etag: String,
    /// `X-Linked-Size`, or `Content-Length` of a non-redirect.
    pub size: u64,
    /// Where the bytes are (the CDN for LFS files).
    pub url: String,
}

/// A file that the revision has, or does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    Found(FileMeta),
    /// 404 `EntryNotFound`: the revision (at this commit) has no such file.
    Absent {
        commit: Option<String>,
    },
}

/// A repository's branches and tags (`GET /api/models/ORG/NAME/refs`).
#[derive(Debug, Clone, Default)]
pub struct Refs {
    pub branches: Vec<Branch>,
    pub tags: Vec<Branch>,
}

/// A revision's commit and file list (`GET /api/models/ORG/NAME/revision/REVISION`).
#[derive(Debug, Clone)]
pub struct RevisionInfo {
    pub commit: String,
    pub files: Vec<String>,
}

/// A file in the cache after [`HubClient::download`].
#[derive(Debug, Clone)]
pub struct Fetched {
    /// `snapshots/COMMIT/PATH`.
    pub path: PathBuf,
    /// The blob it links to.
    pub blob: PathBuf,
    pub size: u64,
    /// Bytes this call transferred (0 when the blob was already there).
    pub downloaded: u64,
    /// The blob was created by this call.
    pub new_blob: bool,
}

/// A blocking client for the hub's endpoints.
pub struct HubClient {
    pub opts: ClientOptions,
    agent: ureq::Agent,
}

/// `%XX`-quotes everything but unreserved characters (and `/` when `keep_slash`), as Python's
/// `urllib.parse.quote` does.
pub fn quote(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn header(resp: &ureq::http::Response<ureq::Body>, k: &str) -> Option<String> {
    resp.headers()
        .get(k)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

/// An ETag as `huggingface_hub` normalizes it: `W/` and quotes removed.
pub fn normalize_etag(e: &str) -> String {
    let e = e.trim();
    let e = e.strip_prefix("W/").unwrap_or(e);
    e.trim_matches('"').to_string()
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url[after..].find('/').map_or(url.len(), |i| after + i);
    &url[..end]
}

impl HubClient {
    pub fn new(opts: ClientOptions) -> HubClient {
        let t = Some(opts.timeout);
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(t)
            .timeout_resolve(t)
            .timeout_send_request(t)
            .timeout_recv_response(t)
            .timeout_per_read(t)
            .user_agent(format!(
                "pretrace/{}; hf_hub/compatible",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        HubClient {
            opts,
            agent: ureq::Agent::new_with_config(config),
        }
    }

    fn net_err(&self, url: &str, e: ureq::Error) -> HubError {
        let secs = self.opts.timeout.as_secs_f64();
        match e {
            ureq::Error::Timeout(_) => HubError::Stalled {
                url: url.to_string(),
                secs,
            },
            ureq::Error::Io(io)
                if io.kind() == std::io::ErrorKind::TimedOut
                    || io.kind() == std::io::ErrorKind::WouldBlock =>
            {
                HubError::Stalled {
                    url: url.to_string(),
                    secs,
                }
            }
            other => HubError::Network {
                url: url.to_string(),
                msg: other.to_string(),
            },
        }
    }

    fn send(
        &self,
        method: &str,
        url: &str,
        range_from: Option<u64>,
        auth: bool,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let mut req = match method {
            "HEAD" => self.agent.head(url),
            _ => self.agent.get(url),
        };
        if auth {
            if let Some(t) = &self.opts.token {
                req = req.header("Authorization", &format!("Bearer {t}"));
            }
        }
        req = req.header("Accept-Encoding", "identity");
        if let Some(n) = range_from {
            req = req.header("Range", &format!("bytes={n}-"));
        }
        req.call().map_err(|e| self.net_err(url, e))
    }

    /// Maps an error status to a message that says what to do.
    fn status_err(
        &self,
        repo: &str,
        revision: Option<&str>,
        url: &str,
        resp: &ureq::http::Response<ureq::Body>,
    ) -> HubError {
        let status = resp.status().as_u16();
        let code = header(resp, "X-Error-Code").unwrap_or_default();
        let msg = header(resp, "X-Error-Message").unwrap_or_default();
        let page = format!("{}/{repo}", self.opts.endpoint);
        match (status, code.as_str()) {
            (_, "RevisionNotFound") => HubError::NoRevision {
                repo: repo.to_string(),
                revision: revision.unwrap_or("main").to_string(),
                hint: format!(
                    "the hub has no such branch, tag or commit; list them at {page}/tree/main"
                ),
            },
            (_, "GatedRepo") | (401, _) | (403, _) => HubError::Denied {
                repo: repo.to_string(),
                status,
                has_token: self.opts.token.is_some(),
                gated: code == "GatedRepo",
                page,
            },
            (404, _) | (_, "RepoNotFound") => HubError::NoRepo {
                repo: repo.to_string(),
                endpoint: self.opts.endpoint.clone(),
            },
            _ => HubError::Http {
                url: url.to_string(),
                status,
                msg: if msg.is_empty() { code } else { msg },
            },
        }
    }

    fn get_json(&self, repo: &str, revision: Option<&str>, url: &str) -> Result<serde_json::Value> {
        let mut resp = self.send("GET", url, None, true)?;
        if !resp.status().is_success() {
            return Err(self.status_err(repo, revision, url, &resp));
        }
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| self.net_err(url, e))?;
        serde_json::from_str(&text).map_err(|e| HubError::Http {
            url: url.to_string(),
            status: resp.status().as_u16(),
            msg: format!("the answer is not JSON ({e})"),
        })
    }

    /// The repository's branches and tags.
    pub fn refs(&self, repo: &str) -> Result<Refs> {
        let url = format!("{}/api/models/{repo}/refs", self.opts.endpoint);
        let v = self.get_json(repo, None, &url)?;
        let list = |k: &str| -> Vec<Branch> {
            v.get(k)
                .and_then(|x| x.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|b| {
                            let name = b.get("name")?.as_str()?.to_string();
                            let commit = b.get("targetCommit")?.as_str()?.to_string();
                            (is_commit(&commit) && crate::reference::check_revision(&name).is_ok())
                                .then_some(Branch { name, commit })
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Refs {
            branches: list("branches"),
            tags: list("tags"),
        })
    }

    /// A revision's commit and the files it has.
    pub fn revision(&self, repo: &str, revision: &str) -> Result<RevisionInfo> {
        let url = format!(
            "{}/api/models/{repo}/revision/{}",
            self.opts.endpoint,
            quote(revision, false)
        );
        let v = self.get_json(repo, Some(revision), &url)?;
        let commit = v
            .get("sha")
            .and_then(|s| s.as_str())
            .filter(|s| is_commit(s))
            .ok_or_else(|| HubError::Http {
                url: url.clone(),
                status: 200,
                msg: "the answer has no 40-hex 'sha'".into(),
            })?
            .to_string();
        let files = v
            .get("siblings")
            .and_then(|s| s.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.get("rfilename")?.as_str().map(str::to_string))
                    .filter(|f| check_repo_path(f).is_ok())
                    .collect()
            })
            .unwrap_or_default();
        Ok(RevisionInfo { commit, files })
    }

    /// `HEAD …/resolve/REVISION/PATH`, following the hub's relative redirects.
    pub fn head(&self, repo: &str, revision: &str, path: &str) -> Result<Head> {
        let mut url = format!(
            "{}/{repo}/resolve/{}/{}",
            self.opts.endpoint,
            quote(revision, false),
            quote(path, true)
        );
        for _ in 0..10 {
            let resp = self.send("HEAD", &url, None, true)?;
            let status = resp.status().as_u16();
            let location = header(&resp, "Location");
            if (300..400).contains(&status) {
                if let Some(loc) = &location {
                    if !loc.contains("://") {
                        // A renamed repository: same host, new path.
                        url = format!("{}{}", origin(&url), loc);
                        continue;
                    }
                }
            }
            if status == 404 && header(&resp, "X-Error-Code").as_deref() == Some("EntryNotFound") {
                return Ok(Head::Absent {
                    commit: header(&resp, "X-Repo-Commit").filter(|c| is_commit(c)),
                });
            }
            if status >= 400 {
                return Err(self.status_err(repo, Some(revision), &url, &resp));
            }
            let bad = |what: &str| HubError::Http {
                url: url.clone(),
                status,
                msg: format!("the answer has no {what}; is HF_ENDPOINT a Hugging Face hub?"),
            };
            let commit = header(&resp, "X-Repo-Commit")
                .filter(|c| is_commit(c))
                .ok_or_else(|| bad("X-Repo-Commit commit"))?;
            let etag = header(&resp, "X-Linked-Etag")
                .or_else(|| header(&resp, "ETag"))
                .map(|e| normalize_etag(&e))
                .ok_or_else(|| bad("ETag"))?;
            check_etag(&etag)?;
            let redirect = (300..400).contains(&status);
            let size = header(&resp, "X-Linked-Size")
                .or_else(|| {
                    if redirect {
                        None
                    } else {
                        header(&resp, "Content-Length")
                    }
                })
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| bad("size (X-Linked-Size or Content-Length)"))?;
            let dl = if redirect {
                location.ok_or_else(|| bad("Location"))?
            } else {
                url.clone()
            };
            return Ok(Head::Found(FileMeta {
                commit,
                etag,
                size,
                url: dl,
            }));
        }
        Err(HubError::Http {
            url,
            status: 310,
            msg: "more than 10 redirects".into(),
        })
    }

    /// Downloads `path` of `revision` into the cache (see the module docs), unless its blob is
    /// there already; writes `refs/REVISION`. `progress(done, total)` is called as bytes arrive.
    /// A file the revision does not have is recorded in `.no_exist` and returned as `None`.
    pub fn download(
        &self,
        cache: &Cache,
        repo: &str,
        revision: &str,
        path: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Option<Fetched>> {
        check_repo_path(path).map_err(|w| HubError::Invalid(format!("{repo}: {path}: {w}")))?;
        match self.head(repo, revision, path)? {
            Head::Found(m) => self
                .download_known(cache, repo, revision, path, &m, progress)
                .map(Some),
            Head::Absent { commit } => {
                if let Some(c) = commit {
                    let rc = cache.repo(repo);
                    rc.mark_absent(&c, path)?;
                    rc.write_ref(revision, &c)?;
                }
                Ok(None)
            }
        }
    }

    /// [`HubClient::download`] of a file whose `HEAD` is known.
    pub fn download_known(
        &self,
        cache: &Cache,
        repo: &str,
        revision: &str,
        path: &str,
        meta: &FileMeta,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Fetched> {
        check_repo_path(path).map_err(|w| HubError::Invalid(format!("{repo}: {path}: {w}")))?;
        let rc = cache.repo(repo);
        if is_commit(revision) && revision != meta.commit {
            return Err(HubError::Http {
                url: meta.url.clone(),
                status: 200,
                msg: format!(
                    "asked for commit {revision}, the hub answered for {}",
                    meta.commit
                ),
            });
        }
        rc.write_ref(revision, &meta.commit)?;
        let blob = rc.blob_path(&meta.etag)?;
        let pointer = rc.snapshot_dir(&meta.commit).join(path);
        if blob.is_file() {
            rc.link(&meta.commit, path, &meta.etag)?;
            return Ok(Fetched {
                path: pointer,
                blob,
                size: meta.size,
                downloaded: 0,
                new_blob: false,
            });
        }
        let locks = cache.locks(repo);
        std::fs::create_dir_all(&locks)
            .map_err(|e| HubError::at(&locks, format!("cannot create: {e}")))?;
        let lock_path = locks.join(format!("{}.lock", meta.etag));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| HubError::at(&lock_path, format!("cannot open the lock: {e}")))?;
        lock.lock()
            .map_err(|e| HubError::at(&lock_path, format!("cannot lock: {e}")))?;
        // Another process may have finished it while this one waited.
        let res = if blob.is_file() {
            Ok((0, false))
        } else {
            self.fetch_blob(&rc, repo, meta, progress)
                .map(|n| (n, true))
        };
        let _ = lock.unlock();
        let (downloaded, new_blob) = res?;
        rc.link(&meta.commit, path, &meta.etag)?;
        Ok(Fetched {
            path: pointer,
            blob,
            size: meta.size,
            downloaded,
            new_blob,
        })
    }

    /// Streams the blob into `blobs/ETAG.incomplete` (resuming what is there), verifies it, and
    /// moves it into place. Returns the bytes transferred.
    fn fetch_blob(
        &self,
        rc: &RepoCache,
        repo: &str,
        meta: &FileMeta,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64> {
        let tmp = rc.incomplete_path(&meta.etag)?;
        let blobs = tmp.parent().unwrap_or(Path::new(".")).to_path_buf();
        crate::cache::make_dirs(&rc.dir, "blobs/x")?;
        let mut have = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
        if have > meta.size {
            let _ = std::fs::remove_file(&tmp);
            have = 0;
        }
        let mut hash = ContentHash::for_etag(&meta.etag, meta.size)?;
        if have > 0 {
            // Hash what an earlier run left, then ask for the rest.
            let mut f = std::fs::File::open(&tmp)
                .map_err(|e| HubError::at(&tmp, format!("cannot read: {e}")))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut left = have;
            while left > 0 {
                let n = f
                    .read(&mut buf[..(left.min(1 << 20)) as usize])
                    .map_err(|e| HubError::at(&tmp, format!("cannot read: {e}")))?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                left -= n as u64;
            }
        }
        // The token goes only to the hub itself, never to a CDN on another host.
        let same_host = origin(&meta.url) == origin(&self.opts.endpoint);
        let mut transferred = 0u64;
        if have < meta.size || meta.size == 0 {
            let mut resp = self.send("GET", &meta.url, (have > 0).then_some(have), same_host)?;
            let status = resp.status().as_u16();
            if status == 200 && have > 0 {
                // The server ignored the range: start over.
                have = 0;
                hash = ContentHash::for_etag(&meta.etag, meta.size)?;
            } else if status != 200 && status != 206 {
                return Err(self.status_err(repo, None, &meta.url, &resp));
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(have > 0)
                .truncate(have == 0)
                .open(&tmp)
                .map_err(|e| disk_err(&tmp, &blobs, e))?;
            let mut reader = resp
                .body_mut()
                .with_config()
                .limit(meta.size.saturating_add(1))
                .reader();
            let mut buf = vec![0u8; 1 << 20];
            let mut done = have;
            progress(done, meta.size);
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = file.flush();
                        let timed_out = matches!(
                            e.kind(),
                            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                        ) || e.to_string().to_ascii_lowercase().contains("timeout");
                        return Err(if timed_out {
                            HubError::Stalled {
                                url: meta.url.clone(),
                                secs: self.opts.timeout.as_secs_f64(),
                            }
                        } else {
                            HubError::Network {
                                url: meta.url.clone(),
                                msg: format!("the download broke off after {done} of {} bytes ({e}); run again to resume it", meta.size),
                            }
                        });
                    }
                };
                file.write_all(&buf[..n])
                    .map_err(|e| disk_err(&tmp, &blobs, e))?;
                hash.update(&buf[..n]);
                done += n as u64;
                transferred += n as u64;
                progress(done, meta.size);
            }
            file.flush().map_err(|e| disk_err(&tmp, &blobs, e))?;
            file.sync_all().map_err(|e| disk_err(&tmp, &blobs, e))?;
            if done != meta.size {
                return Err(HubError::Network {
                    url: meta.url.clone(),
                    msg: format!(
                        "the download ended after {done} of {} bytes; run again to resume it",
                        meta.size
                    ),
                });
            }
        }
        let got = hash.hex();
        if got != meta.etag {
            let _ = std::fs::remove_file(&tmp);
            return Err(HubError::Corrupt {
                path: rc.blob_path(&meta.etag)?,
                expected: meta.etag.clone(),
                got,
            });
        }
        let dst = rc.blob_path(&meta.etag)?;
        std::fs::rename(&tmp, &dst)
            .map_err(|e| HubError::at(&dst, format!("cannot move the download into place: {e}")))?;
        Ok(transferred)
    }
}

fn disk_err(file: &Path, dir: &Path, e: std::io::Error) -> HubError {
    if matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) {
        HubError::DiskFull {
            path: dir.to_path_buf(),
        }
    } else {
        HubError::at(file, format!("cannot write: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_etags() {
        assert_eq!(quote("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(quote("sub dir/a.json", true), "sub%20dir/a.json");
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(origin("http://127.0.0.1:80/a/b"), "http://127.0.0.1:80");
        assert_eq!(origin("https://huggingface.co"), "https://huggingface.co");
    }

    #[test]
    fn token_and_endpoint_from_the_environment() {
        let o = ClientOptions::from_vars(|k| match k {
            "HF_ENDPOINT" => Some("http://mirror.example/".into()),
            "HF_TOKEN" => Some(" hf_abc\n".into()),
            "HF_HUB_DOWNLOAD_TIMEOUT" => Some("2.5".into()),
            _ => None,
        });
        assert_eq!(o.endpoint, "http://mirror.example");
        assert_eq!(o.token.as_deref(), Some("hf_abc"));
        assert_eq!(o.timeout, Duration::from_millis(2500));
        let d = ClientOptions::from_vars(|k| (k == "HOME").then(|| "/nonexistent".into()));
        assert_eq!(d.endpoint, "https://huggingface.co");
        assert_eq!(d.token, None);
    }
}
