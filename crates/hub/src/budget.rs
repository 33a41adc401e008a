//! Sweeps under a disk budget: while one checkpoint is extracted the next ones download, and once
//! every entry of a checkpoint is in the store, the blobs this run downloaded for it are evicted
//! when the budget needs room. Blobs that were in the cache before the run are never deleted.

use crate::error::{HubError, Result};
use crate::remote::{FetchEvent, FetchSummary, Hub, Plan};
use crate::suite::CheckpointRef;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

/// What the prefetcher reports, from its own thread.
#[derive(Debug, Clone)]
pub enum PrefetchEvent {
    /// Checkpoint `name` starts downloading `bytes`.
    Start { name: String, bytes: u64 },
    /// Bytes of checkpoint `name`: `done` of `total` (all its files).
    Progress { name: String, done: u64, total: u64 },
    /// Checkpoint `name` is on disk; `downloaded` bytes took `secs`.
    Done {
        name: String,
        downloaded: u64,
        secs: f64,
    },
    /// A finished checkpoint's blobs were deleted to make room.
    Evicted { name: String, bytes: u64 },
}

/// A blob this run downloaded, still on disk.
struct Held {
    blob: PathBuf,
    size: u64,
    /// The last checkpoint (in sweep order) that needs it: it may go once that one is finished.
    last: usize,
    /// Snapshot links to it, each with its snapshot folder `snapshots/COMMIT`.
    links: Vec<(PathBuf, PathBuf)>,
    /// The checkpoint that downloaded it, for the report.
    name: String,
}

#[derive(Default)]
struct State {
    /// Per checkpoint: fetched (Ok) or failed (Err message kept as the error).
    fetched: Vec<Option<std::result::Result<(), String>>>,
    finished: Vec<bool>,
    held: Vec<Held>,
    /// Bytes of blobs this run downloaded that are still on disk, plus the download under way.
    used: u64,
    peak: u64,
    cancel: bool,
}

/// Downloads a suite's checkpoints ahead of their extraction, within a disk budget.
pub struct Prefetch {
    state: Arc<(Mutex<State>, Condvar)>,
    names: Vec<String>,
    errors: Arc<Mutex<Vec<Option<HubError>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn human(b: u64) -> String {
    let (v, u) = match b {
        b if b >= 1 << 30 => (b as f64 / (1u64 << 30) as f64, "GiB"),
        b if b >= 1 << 20 => (b as f64 / (1u64 << 20) as f64, "MiB"),
        b if b >= 1 << 10 => (b as f64 / 1024.0, "KiB"),
        b => (b as f64, "B"),
    };
    format!("{v:.1} {u}")
}

impl Prefetch {
    /// Plans every checkpoint of `suite` (the files each needs and their sizes), refuses one that
    /// does not fit `budget` before anything downloads, and starts downloading in order.
    /// `report` is called from the download thread.
    pub fn start(
        hub: Arc<Hub>,
        suite: Vec<CheckpointRef>,
        budget: Option<u64>,
        report: Box<dyn FnMut(PrefetchEvent) + Send>,
    ) -> Result<Prefetch> {
        if hub.client().is_none() {
            // Offline: one error listing everything that is missing.
            let mut missing = Vec::new();
            let mut fetch = Vec::new();
            let mut repo = String::new();
            for ck in &suite {
                if let Some(h) = &ck.hub {
                    let m = crate::resolve::missing_files(&hub.cache.repo(&h.repo), &h.commit)?;
                    if !m.is_empty() {
                        repo = h.repo.clone();
                        missing.push(format!("{}: {}", h.revision, m.join(", ")));
                        fetch.push(crate::resolve::fetch_command(&h.repo, &h.revision));
                    }
                }
            }
            if !missing.is_empty() {
                return Err(HubError::NotCached {
                    repo,
                    cache: hub.cache.root().to_path_buf(),
                    offline: true,
                    missing,
                    fetch,
                });
            }
        }
        let mut plans = Vec::with_capacity(suite.len());
        for ck in &suite {
            let plan = if hub.is_complete(ck)? {
                None
            } else {
                Some(hub.plan(ck)?)
            };
            if let (Some(p), Some(b)) = (&plan, budget) {
                let need = p.to_download();
                if need > b {
                    return Err(HubError::Invalid(format!(
                        "checkpoint {} needs {} of downloads, more than the cache budget of {}; raise --cache-budget to at least {} (two checkpoints let downloads overlap extraction)",
                        ck.name,
                        human(need),
                        human(b),
                        human(need)
                    )));
                }
            }
            plans.push(plan);
        }
        let n = suite.len();
        let state = Arc::new((
            Mutex::new(State {
                fetched: vec![None; n],
                finished: vec![false; n],
                ..Default::default()
            }),
            Condvar::new(),
        ));
        let errors = Arc::new(Mutex::new((0..n).map(|_| None).collect::<Vec<_>>()));
        let names = suite.iter().map(|c| c.name.clone()).collect();
        let (st, errs) = (state.clone(), errors.clone());
        let thread = std::thread::spawn(move || {
            yield_to_compute();
            run(&hub, &suite, &plans, budget, &st, &errs, report);
        });
        Ok(Prefetch {
            state,
            names,
            errors,
            thread: Some(thread),
        })
    }

    /// Blocks until checkpoint `index` is on disk; its download's error if it failed.
    pub fn wait(&self, index: usize) -> Result<()> {
        let (m, cv) = &*self.state;
        let mut s = m
            .lock()
            .map_err(|_| HubError::Invalid("the download thread failed".into()))?;
        loop {
            match s.fetched.get(index) {
                None => return Ok(()),
                Some(Some(Ok(()))) => return Ok(()),
                Some(Some(Err(msg))) => {
                    let taken = self
                        .errors
                        .lock()
                        .ok()
                        .and_then(|mut e| e.get_mut(index).and_then(|x| x.take()));
                    return Err(taken.unwrap_or_else(|| HubError::Invalid(msg.clone())));
                }
                Some(None) => {}
            }
            s = cv
                .wait(s)
                .map_err(|_| HubError::Invalid("the download thread failed".into()))?;
        }
    }

    /// Every entry of checkpoint `index` is in the store: its blobs may be evicted for room.
    pub fn finished(&self, index: usize) {
        let (m, cv) = &*self.state;
        if let Ok(mut s) = m.lock() {
            if let Some(f) = s.finished.get_mut(index) {
                *f = true;
            }
        }
        cv.notify_all();
    }

    /// The most bytes this run's downloads held on disk at once.
    pub fn peak_bytes(&self) -> u64 {
        self.state.0.lock().map_or(0, |s| s.peak)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        let (m, cv) = &*self.state;
        if let Ok(mut s) = m.lock() {
            s.cancel = true;
        }
        cv.notify_all();
        // A download under way finishes its current file (a partial one resumes next time);
        // the thread is not waited for.
        drop(self.thread.take());
    }
}

/// Lowers the calling thread's scheduling priority (Linux `nice` 10), so that downloading,
/// hashing and writing the next checkpoint take the cycles the extraction leaves and do not
/// preempt its worker threads, which wait on each other at every matrix product.
fn yield_to_compute() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's id; no memory is passed.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// Deletes a blob this run downloaded, with its snapshot links (and a snapshot left empty, with
/// the refs that name it), so the cache stays one `huggingface_hub` reads without complaint.
fn evict(hub: &Hub, repo: &str, h: &Held) -> u64 {
    for (l, _) in &h.links {
        let _ = std::fs::remove_file(l);
    }
    let freed = if std::fs::remove_file(&h.blob).is_ok() {
        h.size
    } else {
        0
    };
    let rc = hub.cache.repo(repo);
    for (_, snap) in &h.links {
        if std::fs::read_dir(snap).is_ok_and(|mut d| d.next().is_none()) {
            let _ = std::fs::remove_dir(snap);
            if let Some(commit) = snap.file_name().map(|c| c.to_string_lossy().to_string()) {
                for r in rc.refs_to(&commit).unwrap_or_default() {
                    let _ = std::fs::remove_file(rc.dir.join("refs").join(r));
                }
            }
        }
    }
    freed
}

fn run(
    hub: &Hub,
    suite: &[CheckpointRef],
    plans: &[Option<Plan>],
    budget: Option<u64>,
    state: &(Mutex<State>, Condvar),
    errors: &Mutex<Vec<Option<HubError>>>,
    mut report: Box<dyn FnMut(PrefetchEvent) + Send>,
) {
    let (m, cv) = state;
    let repo_of = |ck: &CheckpointRef| ck.hub.as_ref().map(|h| h.repo.clone()).unwrap_or_default();
    // The last checkpoint that needs each blob (by ETag).
    let mut last_of: std::collections::BTreeMap<String, usize> = Default::default();
    for (j, p) in plans.iter().enumerate() {
        for f in p.iter().flat_map(|p| p.files.iter()) {
            last_of.insert(f.meta.etag.clone(), j);
        }
    }
    for (i, (ck, plan)) in suite.iter().zip(plans).enumerate() {
        let Some(plan) = plan else {
            if let Ok(mut s) = m.lock() {
                s.fetched[i] = Some(Ok(()));
            }
            cv.notify_all();
            continue;
        };
        let repo = hub.cache.repo(&repo_of(ck));
        // Bytes still missing now (an earlier checkpoint may have brought shared blobs).
        let need: u64 = plan
            .files
            .iter()
            .filter(|f| repo.blob_path(&f.meta.etag).is_ok_and(|b| !b.is_file()))
            .map(|f| f.meta.size)
            .sum();
        // Make room: evict blobs (oldest first) whose last checkpoint is finished.
        {
            let Ok(mut s) = m.lock() else { return };
            loop {
                if s.cancel {
                    return;
                }
                if budget.is_none_or(|b| s.used + need <= b) {
                    break;
                }
                match s.held.iter().position(|h| s.finished[h.last]) {
                    Some(p) => {
                        let h = s.held.remove(p);
                        let freed = evict(hub, &repo_of(ck), &h);
                        s.used = s.used.saturating_sub(freed);
                        report(PrefetchEvent::Evicted {
                            name: h.name.clone(),
                            bytes: freed,
                        });
                    }
                    None => {
                        s = match cv.wait(s) {
                            Ok(g) => g,
                            Err(_) => return,
                        };
                    }
                }
            }
            s.used += need;
            s.peak = s.peak.max(s.used);
        }
        report(PrefetchEvent::Start {
            name: ck.name.clone(),
            bytes: need,
        });
        let t0 = std::time::Instant::now();
        let total: u64 = plan.files.iter().map(|f| f.meta.size).sum();
        let mut before = 0u64;
        let mut current = String::new();
        let mut last_done = 0u64;
        let res: Result<FetchSummary> = hub.fetch(ck, plan, &mut |e| match e {
            FetchEvent::Bytes { file, done, .. } => {
                if file != current {
                    before += last_done;
                    current = file.to_string();
                }
                last_done = done;
                report(PrefetchEvent::Progress {
                    name: ck.name.clone(),
                    done: before + done,
                    total,
                });
            }
        });
        let Ok(mut s) = m.lock() else { return };
        match res {
            Ok(sum) => {
                let new: u64 = sum.new_blobs.iter().map(|(_, b)| b).sum();
                // The reservation becomes what was really written.
                s.used = s.used.saturating_sub(need) + new;
                s.peak = s.peak.max(s.used);
                let snap = ck
                    .hub
                    .as_ref()
                    .map(|h| repo.snapshot_dir(&h.commit))
                    .unwrap_or_default();
                for (link, blob, size) in &sum.files {
                    if let Some(h) = s.held.iter_mut().find(|h| h.blob == *blob) {
                        h.links.push((link.clone(), snap.clone()));
                    } else if sum.new_blobs.iter().any(|(b, _)| b == blob) {
                        let etag = blob
                            .file_name()
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default();
                        s.held.push(Held {
                            blob: blob.clone(),
                            size: *size,
                            last: last_of.get(&etag).copied().unwrap_or(i).max(i),
                            links: vec![(link.clone(), snap.clone())],
                            name: ck.name.clone(),
                        });
                    }
                }
                s.fetched[i] = Some(Ok(()));
                drop(s);
                report(PrefetchEvent::Done {
                    name: ck.name.clone(),
                    downloaded: sum.downloaded,
                    secs: t0.elapsed().as_secs_f64(),
                });
            }
            Err(e) => {
                s.used = s.used.saturating_sub(need);
                s.fetched[i] = Some(Err(e.to_string()));
                if let Ok(mut errs) = errors.lock() {
                    errs[i] = Some(e);
                }
                // Later checkpoints wait for the user to fix what failed.
                for f in s.fetched.iter_mut().skip(i + 1) {
                    *f = Some(Err(format!(
                        "not downloaded: the download of {} failed before it",
                        ck.name
                    )));
                }
                cv.notify_all();
                return;
            }
        }
        cv.notify_all();
    }
}
