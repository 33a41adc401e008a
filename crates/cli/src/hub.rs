//! Models and suites named by a path or by `hf:ORG/NAME[@REVISION]`: the cache first, the hub for
//! what is missing (never with `HF_HUB_OFFLINE` set), with download progress.

use anyhow::Result;
use pretrace_hub::{
    discover, CheckpointRef, FetchEvent, Hub, PrefetchEvent, Reference, ResolvedModel,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// The cache and hub the environment names.
pub fn hub() -> Arc<Hub> {
    Arc::new(Hub::from_env())
}

pub fn human(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn eta(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Download progress as log lines: at most one every few seconds per download, with bytes/s and
/// the time left.
pub struct Meter {
    start: Instant,
    last: Instant,
    name: String,
}

impl Meter {
    pub fn new() -> Meter {
        Meter {
            start: Instant::now(),
            last: Instant::now(),
            name: String::new(),
        }
    }

    pub fn bytes(&mut self, name: &str, done: u64, total: u64) {
        if name != self.name {
            self.name = name.to_string();
            self.start = Instant::now();
            self.last = Instant::now();
        }
        if self.last.elapsed().as_secs_f64() < 3.0 || done >= total {
            return;
        }
        self.last = Instant::now();
        let el = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / el;
        eprintln!(
            "download {name}: {} of {} ({:.0}%), {}/s, {} left",
            human(done),
            human(total),
            100.0 * done as f64 / total.max(1) as f64,
            human(rate as u64),
            eta((total - done) as f64 / rate.max(1e-9))
        );
    }
}

/// The prefetcher's events as log lines.
pub fn prefetch_report() -> Box<dyn FnMut(PrefetchEvent) + Send> {
    let mut meter = Meter::new();
    Box::new(move |e| match e {
        PrefetchEvent::Start { name, bytes } if bytes > 0 => {
            eprintln!("download {name}: {} to fetch", human(bytes))
        }
        PrefetchEvent::Start { .. } => {}
        PrefetchEvent::Progress { name, done, total } => meter.bytes(&name, done, total),
        PrefetchEvent::Done {
            name,
            downloaded,
            secs,
        } => {
            if downloaded > 0 {
                eprintln!(
                    "downloaded {name}: {} in {secs:.1}s ({}/s)",
                    human(downloaded),
                    human((downloaded as f64 / secs.max(1e-9)) as u64)
                )
            }
        }
        PrefetchEvent::Evicted { name, bytes } => eprintln!(
            "evicted {name}: {} of blobs this run downloaded, to stay within the cache budget",
            human(bytes)
        ),
    })
}

/// `--model`: a checkpoint folder, a `.gguf` file, a cache snapshot, or `hf:ORG/NAME[@REVISION]`
/// (downloaded into the cache when it is not there).
pub fn resolve_model(text: &str) -> Result<ResolvedModel> {
    let r = Reference::parse(text)?;
    let mut meter = Meter::new();
    let got = hub().resolve_model(&r, &mut |e| match e {
        FetchEvent::Bytes {
            name, done, total, ..
        } => meter.bytes(name, done, total),
    })?;
    Ok(got)
}

/// `--checkpoints` (with `--revisions` for a hub repository): the suite, in training order.
pub fn resolve_suite(hub: &Hub, text: &str, revisions: Option<&str>) -> Result<Vec<CheckpointRef>> {
    match Reference::parse(text)? {
        Reference::Path(p) => {
            if revisions.is_some() {
                anyhow::bail!(
                    "--revisions applies to a hub repository (--checkpoints hf:ORG/NAME); {} is a folder: select its checkpoints with --steps, --every or --log-spaced",
                    p.display()
                );
            }
            Ok(discover(&p)?)
        }
        Reference::Hub(h) => {
            let (suite, notes) = hub.resolve_suite(&h, revisions)?;
            for n in notes {
                eprintln!("note: {n}");
            }
            Ok(suite)
        }
    }
}

/// The tokenizer folder for a model: `--tokenizer` when given, else the repository's `main` for a
/// hub revision that ships no tokenizer (said on stderr and recorded in the model's origin).
pub fn tokenizer_for(
    origin: &mut ResolvedModel,
    explicit: Option<&str>,
) -> Result<Option<PathBuf>> {
    let explicit = explicit.map(Reference::parse).transpose()?;
    let Some(h) = origin.hub.clone() else {
        return Ok(match explicit {
            Some(r) => {
                let t = hub().tokenizer(&r)?;
                origin.tokenizer = Some(t.reference.clone());
                Some(t.path)
            }
            None => None,
        });
    };
    let mut one = [CheckpointRef {
        name: h.revision.clone(),
        path: origin.path.clone(),
        step: None,
        tokens: None,
        hub: Some(h),
        tokenizer: None,
    }];
    for n in hub().attach_tokenizers(&mut one, explicit.as_ref())? {
        eprintln!("note: {n}");
    }
    let [c] = one;
    Ok(c.tokenizer.map(|t| {
        origin.tokenizer = Some(t.reference);
        t.path
    }))
}
