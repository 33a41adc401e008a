//! A local stand-in for the Hugging Face hub, for tests and benchmarks: an HTTP/1.1 server on
//! 127.0.0.1 that serves, from an in-memory suite, the endpoints a hub client uses, with the hub's
//! headers and status codes:
//!
//! - `HEAD|GET /ORG/NAME/resolve/REVISION/PATH`: a small (git) file answers 200 with `ETag` (its
//!   git blob sha1), `X-Repo-Commit` and the body; an LFS file answers 302 to `/cdn/SHA256` with
//!   `X-Linked-Etag`, `X-Linked-Size` and `X-Repo-Commit`. Errors carry `X-Error-Code`
//!   (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound` with `X-Repo-Commit`, `GatedRepo`).
//! - `GET /cdn/SHA256`, with `Range: bytes=N-` answered 206.
//! - `GET /api/models/ORG/NAME/refs` and `GET /api/models/ORG/NAME/revision/REVISION`.
//!
//! Faults for tests: a bandwidth limit, a stall after some bytes, a connection dropped after some
//! bytes, a file served with wrong contents, a gated repository that needs a token.

use crate::cache::ContentHash;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One file of a commit.
#[derive(Clone)]
pub struct FakeFile {
    pub bytes: Arc<Vec<u8>>,
    /// Stored in LFS (served by redirect to the CDN, ETag = sha256).
    pub lfs: bool,
    /// The hub's ETag of it (sha256 of an LFS file, git's blob sha1 of the others), computed once.
    pub etag: String,
}

impl FakeFile {
    pub fn new(bytes: Vec<u8>, lfs: bool) -> FakeFile {
        let etag = if lfs {
            sha256_hex(&bytes)
        } else {
            let mut h = ContentHash::git_sha1(bytes.len() as u64);
            h.update(&bytes);
            h.hex()
        };
        FakeFile {
            bytes: Arc::new(bytes),
            lfs,
            etag,
        }
    }
}

/// A repository: its commits' files, and branches and tags pointing at commits.
#[derive(Clone, Default)]
pub struct FakeRepo {
    pub commits: BTreeMap<String, BTreeMap<String, FakeFile>>,
    pub branches: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// Needs `Authorization: Bearer TOKEN` (401 without a token, 403 with another one).
    pub gated_token: Option<String>,
}

impl FakeRepo {
    /// Adds a commit whose files are the regular files of `dir` (weights and `tokenizer.model` in
    /// LFS, the rest in git), pointed at by `branch`. The commit hash is derived from the contents.
    pub fn add_folder(&mut self, branch: &str, dir: &std::path::Path) -> std::io::Result<String> {
        let mut files = BTreeMap::new();
        let mut names: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        for n in names {
            let bytes = std::fs::read(dir.join(&n))?;
            let lfs = is_lfs_name(&n);
            files.insert(n, FakeFile::new(bytes, lfs));
        }
        Ok(self.add_commit(branch, files))
    }

    /// Adds a commit of `files`, pointed at by `branch`; returns its hash.
    pub fn add_commit(&mut self, branch: &str, files: BTreeMap<String, FakeFile>) -> String {
        let mut h = ContentHash::git_sha1(0);
        h.update(branch.as_bytes());
        for (n, f) in &files {
            h.update(n.as_bytes());
            h.update(&f.bytes);
        }
        let commit = h.hex();
        self.commits.insert(commit.clone(), files);
        self.branches.retain(|(b, _)| b != branch);
        self.branches.push((branch.to_string(), commit.clone()));
        commit
    }

    fn commit_of(&self, rev: &str) -> Option<String> {
        if self.commits.contains_key(rev) {
            return Some(rev.to_string());
        }
        self.branches
            .iter()
            .chain(&self.tags)
            .find(|(n, _)| n == rev)
            .map(|(_, c)| c.clone())
    }
}

/// Files the hub keeps in LFS by the default `.gitattributes`.
pub fn is_lfs_name(n: &str) -> bool {
    [
        ".safetensors",
        ".bin",
        ".model",
        ".gguf",
        ".pt",
        ".pth",
        ".h5",
    ]
    .iter()
    .any(|s| n.ends_with(s))
}

/// Faults and limits, changeable while the server runs.
#[derive(Default)]
pub struct Faults {
    /// Bytes per second for file bodies (0 = unlimited).
    pub bytes_per_sec: AtomicU64,
    /// After this many body bytes of a file, stop sending and keep the connection open (0 = never).
    pub stall_after: AtomicU64,
    /// After this many body bytes of a file, close the connection (0 = never).
    pub drop_after: AtomicU64,
    /// Serve LFS files with one byte changed.
    pub corrupt: AtomicBool,
}

/// The running server. Dropping it stops it.
pub struct FakeHub {
    pub addr: std::net::SocketAddr,
    pub repos: Arc<Mutex<BTreeMap<String, FakeRepo>>>,
    pub faults: Arc<Faults>,
    /// Every request line served, in order (`HEAD /o/n/resolve/main/config.json`).
    pub log: Arc<Mutex<Vec<String>>>,
    /// Body bytes sent for files.
    pub sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl FakeHub {
    pub fn start(repos: BTreeMap<String, FakeRepo>) -> std::io::Result<FakeHub> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let hub = FakeHub {
            addr,
            repos: Arc::new(Mutex::new(repos)),
            faults: Arc::new(Faults::default()),
            log: Arc::new(Mutex::new(Vec::new())),
            sent: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (repos, faults, log, sent, stop) = (
            hub.repos.clone(),
            hub.faults.clone(),
            hub.log.clone(),
            hub.sent.clone(),
            hub.stop.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (repos, faults, log, sent, stop) = (
                    repos.clone(),
                    faults.clone(),
                    log.clone(),
                    sent.clone(),
                    stop.clone(),
                );
                std::thread::spawn(move || {
                    let _ = serve(conn, addr, &repos, &faults, &log, &sent, &stop);
                });
            }
        });
        Ok(hub)
    }

    /// `http://127.0.0.1:PORT`, for `HF_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some(Request {
        method,
        path,
        headers,
    }))
}

/// `%XX` decoding of a URL path segment.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

enum Body {
    Empty,
    Text(Vec<u8>),
    File {
        bytes: Arc<Vec<u8>>,
        from: u64,
        corrupt: bool,
    },
}

fn error(status: u16, code: &str, msg: &str, commit: Option<&str>) -> Response {
    let mut headers = vec![
        ("X-Error-Code".to_string(), code.to_string()),
        ("X-Error-Message".to_string(), msg.to_string()),
        ("Content-Type".to_string(), "application/json".to_string()),
    ];
    if let Some(c) = commit {
        headers.push(("X-Repo-Commit".into(), c.into()));
    }
    Response {
        status,
        headers,
        body: Body::Text(serde_json::json!({ "error": msg }).to_string().into_bytes()),
    }
}

fn json(v: serde_json::Value) -> Response {
    Response {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Body::Text(v.to_string().into_bytes()),
    }
}

fn route(
    req: &Request,
    addr: std::net::SocketAddr,
    repos: &Mutex<BTreeMap<String, FakeRepo>>,
    faults: &Faults,
) -> Response {
    let path = req.path.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let Ok(repos) = repos.lock() else {
        return error(500, "", "poisoned", None);
    };
    // The CDN.
    if segs.first() == Some(&"cdn") && segs.len() == 2 {
        let want = segs[1];
        for r in repos.values() {
            for files in r.commits.values() {
                for f in files.values() {
                    if f.lfs && f.etag == want {
                        let from = req
                            .header("Range")
                            .and_then(|v| v.strip_prefix("bytes="))
                            .and_then(|v| v.strip_suffix('-'))
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0);
                        let len = f.bytes.len() as u64;
                        if from > len {
                            return error(416, "", "range not satisfiable", None);
                        }
                        let mut headers = vec![
                            ("ETag".into(), format!("\"{want}\"")),
                            ("Content-Length".into(), (len - from).to_string()),
                            ("Accept-Ranges".into(), "bytes".into()),
                        ];
                        let status = if req.header("Range").is_some() {
                            headers.push((
                                "Content-Range".into(),
                                format!("bytes {from}-{}/{len}", len.saturating_sub(1)),
                            ));
                            206
                        } else {
                            200
                        };
                        return Response {
                            status,
                            headers,
                            body: Body::File {
                                bytes: f.bytes.clone(),
                                from,
                                corrupt: faults.corrupt.load(Ordering::SeqCst),
                            },
                        };
                    }
                }
            }
        }
        return error(404, "", "no such object", None);
    }
    let api = segs.first() == Some(&"api") && segs.get(1) == Some(&"models");
    let (org, name, rest) = if api {
        (segs.get(2), segs.get(3), &segs[segs.len().min(4)..])
    } else {
        (segs.first(), segs.get(1), &segs[segs.len().min(2)..])
    };
    let (Some(org), Some(name)) = (org, name) else {
        return error(404, "", "not found", None);
    };
    let id = format!("{org}/{name}");
    let Some(repo) = repos.get(&id) else {
        // The hub answers 401 for a repository that does not exist (or is private).
        return error(401, "RepoNotFound", "Repository not found", None);
    };
    if let Some(tok) = &repo.gated_token {
        match req
            .header("Authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            None => {
                return error(
                    401,
                    "GatedRepo",
                    "Access to this model is restricted: you must be authenticated",
                    None,
                )
            }
            Some(t) if t != tok => {
                return error(
                    403,
                    "GatedRepo",
                    "Access to this model is restricted and you are not in the authorized list",
                    None,
                )
            }
            Some(_) => {}
        }
    }
    if api {
        match rest {
            ["refs"] => {
                let refs = |v: &[(String, String)], kind: &str| -> Vec<serde_json::Value> {
                    v.iter()
                        .map(|(n, c)| {
                            serde_json::json!({"name": n, "ref": format!("refs/{kind}/{n}"), "targetCommit": c})
                        })
                        .collect()
                };
                return json(serde_json::json!({
                    "branches": refs(&repo.branches, "heads"),
                    "tags": refs(&repo.tags, "tags"),
                    "converts": [],
                }));
            }
            ["revision", rev @ ..] => {
                let rev = percent_decode(&rev.join("/"));
                let Some(commit) = repo.commit_of(&rev) else {
                    return error(
                        404,
                        "RevisionNotFound",
                        &format!("Invalid rev id: {rev}"),
                        None,
                    );
                };
                let files = &repo.commits[&commit];
                return json(serde_json::json!({
                    "id": id,
                    "modelId": id,
                    "sha": commit,
                    "siblings": files.keys().map(|k| serde_json::json!({"rfilename": k})).collect::<Vec<_>>(),
                }));
            }
            _ => return error(404, "", "no such API", None),
        }
    }
    let ["resolve", rev, file @ ..] = rest else {
        return error(404, "", "not found", None);
    };
    let rev = percent_decode(rev);
    let file = percent_decode(&file.join("/"));
    let Some(commit) = repo.commit_of(&rev) else {
        return error(
            404,
            "RevisionNotFound",
            &format!("Invalid rev id: {rev}"),
            None,
        );
    };
    let Some(f) = repo.commits[&commit].get(&file) else {
        return error(
            404,
            "EntryNotFound",
            &format!("{file} does not exist on \"{rev}\""),
            Some(&commit),
        );
    };
    if f.lfs {
        let sha = f.etag.clone();
        Response {
            status: 302,
            headers: vec![
                (
                    "Location".into(),
                    format!("http://{addr}/cdn/{sha}?X-Amz-Signature=x"),
                ),
                ("X-Linked-Etag".into(), format!("\"{sha}\"")),
                ("X-Linked-Size".into(), f.bytes.len().to_string()),
                ("X-Repo-Commit".into(), commit.clone()),
                ("ETag".into(), "W/\"redirect\"".into()),
                ("Content-Length".into(), "0".into()),
            ],
            body: Body::Empty,
        }
    } else {
        Response {
            status: 200,
            headers: vec![
                ("ETag".into(), format!("\"{}\"", f.etag)),
                ("X-Repo-Commit".into(), commit.clone()),
                ("Content-Length".into(), f.bytes.len().to_string()),
            ],
            body: Body::File {
                bytes: f.bytes.clone(),
                from: 0,
                corrupt: false,
            },
        }
    }
}

fn sha256_hex(b: &[u8]) -> String {
    pretrace_core::sha256_hex(b)
}

fn serve(
    conn: TcpStream,
    addr: std::net::SocketAddr,
    repos: &Mutex<BTreeMap<String, FakeRepo>>,
    faults: &Faults,
    log: &Mutex<Vec<String>>,
    sent: &AtomicU64,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut w = conn;
    let Some(req) = read_request(&mut reader)? else {
        return Ok(());
    };
    if let Ok(mut l) = log.lock() {
        l.push(format!("{} {}", req.method, req.path));
    }
    let resp = route(&req, addr, repos, faults);
    let reason = match resp.status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Error",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\nConnection: close\r\n", resp.status);
    let has_len = resp.headers.iter().any(|(k, _)| k == "Content-Length");
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        let n = match &resp.body {
            Body::Empty => 0,
            Body::Text(t) => t.len(),
            Body::File { bytes, from, .. } => bytes.len() - *from as usize,
        };
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    if req.method == "HEAD" {
        return w.flush();
    }
    match resp.body {
        Body::Empty => {}
        Body::Text(t) => w.write_all(&t)?,
        Body::File {
            bytes,
            from,
            corrupt,
        } => {
            let start = Instant::now();
            let mut pos = from as usize;
            let mut done: u64 = 0;
            while pos < bytes.len() {
                let rate = faults.bytes_per_sec.load(Ordering::SeqCst);
                let chunk = if rate > 0 {
                    (rate / 20).max(1) as usize
                } else {
                    1 << 16
                };
                let end = (pos + chunk).min(bytes.len());
                let stall = faults.stall_after.load(Ordering::SeqCst);
                if stall > 0 && done >= stall {
                    // Keep the connection open and send nothing more.
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    return Ok(());
                }
                let drop_at = faults.drop_after.load(Ordering::SeqCst);
                if drop_at > 0 && done >= drop_at {
                    return Ok(());
                }
                let piece = &bytes[pos..end];
                if corrupt && pos == from as usize && !piece.is_empty() {
                    let mut first = piece.to_vec();
                    first[0] ^= 0xff;
                    w.write_all(&first)?;
                } else {
                    w.write_all(piece)?;
                }
                done += piece.len() as u64;
                sent.fetch_add(piece.len() as u64, Ordering::SeqCst);
                pos = end;
                if rate > 0 {
                    let due = Duration::from_secs_f64(done as f64 / rate as f64);
                    let el = start.elapsed();
                    if due > el {
                        std::thread::sleep(due - el);
                    }
                }
            }
        }
    }
    w.flush()?;
    // Let the client read everything before the socket closes.
    let _ = w.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 64];
    let _ = reader.read(&mut sink);
    Ok(())
}
