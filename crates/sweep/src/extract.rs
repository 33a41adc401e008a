//! `extract`: every dataset through every checkpoint, checkpoint-major, into the activation store.

use crate::error::{Result, SweepError};
use candle_core::{DType, Device};
use pretrace_data::Dataset;
use pretrace_hub::CheckpointRef;
use pretrace_model::{
    Batch, Checkpoint, Hook, LoadOptions, Logits, Model, Padding, Pool, PoolRows, Site,
};
use pretrace_store::{
    CheckpointInfo, DatasetInfo, Extraction, FileId, HubInfo, Manifest, Store, StoreDType,
    FORMAT_VERSION,
};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Which layers to keep: `all`, a list `0,6,12`, ranges `0-31`, or a mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSpec {
    All,
    List(Vec<usize>),
}

impl LayerSpec {
    pub fn parse(s: &str) -> Result<LayerSpec> {
        let s = s.trim();
        if s == "all" {
            return Ok(LayerSpec::All);
        }
        let bad = |p: &str| {
            SweepError::Invalid(format!(
                "--layers {s}: '{p}' is not a layer; write all, 0,6,12 or 0-31"
            ))
        };
        let mut out = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            match part.split_once('-') {
                Some((a, b)) => {
                    let a: usize = a.trim().parse().map_err(|_| bad(part))?;
                    let b: usize = b.trim().parse().map_err(|_| bad(part))?;
                    if a > b {
                        return Err(bad(part));
                    }
                    out.extend(a..=b);
                }
                None => out.push(part.parse().map_err(|_| bad(part))?),
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(LayerSpec::List(out))
    }

    /// The layers for a model of `n` layers; an error if one is out of range.
    pub fn resolve(&self, n: usize) -> Result<Vec<usize>> {
        match self {
            LayerSpec::All => Ok((0..n).collect()),
            LayerSpec::List(v) => {
                if let Some(bad) = v.iter().find(|&&l| l >= n) {
                    return Err(SweepError::Invalid(format!(
                        "--layers: layer {bad} is out of range: the model has {n} layers (0-{})",
                        n.saturating_sub(1)
                    )));
                }
                Ok(v.clone())
            }
        }
    }
}

/// Parses a memory size: bytes, or with a K/M/G/T suffix (powers of 1024; `GB`, `GiB` alike).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let num_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(num_end);
    let scale: u64 = match unit.trim().trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => {
            return Err(SweepError::Invalid(format!(
                "--max-memory {t}: unknown unit; write e.g. 24G, 512M or a number of bytes"
            )))
        }
    };
    let v: f64 = num.parse().map_err(|_| {
        SweepError::Invalid(format!(
            "--max-memory {t}: not a size; write e.g. 24G, 512M or a number of bytes"
        ))
    })?;
    Ok((v * scale as f64) as u64)
}

/// Settings of an extraction.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    pub layers: LayerSpec,
    pub pool: Pool,
    /// Most rows in one forward pass.
    pub batch_size: usize,
    /// Most tokens (rows × longest row, padding included) in one forward pass.
    pub max_batch_tokens: usize,
    /// Compute dtype (F32 or BF16).
    pub dtype: DType,
    pub store_dtype: StoreDType,
    /// Text template containing `{text}`.
    pub template: Option<String>,
    /// Memory budget in bytes: a checkpoint whose weights exceed it runs block by block. On a GPU
    /// it is GPU memory (default: 80% of what is free there); on the CPU, host memory (default:
    /// 80% of the machine's).
    pub max_memory: Option<u64>,
    /// Where the model runs.
    pub device: Device,
    /// Run block by block regardless of size.
    pub force_blockwise: bool,
    /// `pretrace <version>`, recorded in manifests.
    pub tool: String,
    /// On resume, also check each finished entry's sha256 against its manifest (sizes and headers
    /// are always checked).
    pub verify_checksums: bool,
    /// Cut rows longer than the model's context to its first tokens instead of failing.
    pub truncate: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            layers: LayerSpec::All,
            pool: Pool::Last,
            batch_size: 64,
            max_batch_tokens: 4096,
            dtype: DType::F32,
            store_dtype: StoreDType::F32,
            template: None,
            max_memory: None,
            device: Device::Cpu,
            force_blockwise: false,
            tool: "pretrace".into(),
            verify_checksums: false,
            truncate: false,
        }
    }
}

/// Where a sweep reports what it does. Every method has a silent default.
pub trait Progress {
    /// A sweep of `checkpoints` checkpoints and `rows` rows per checkpoint begins.
    fn begin(&mut self, _checkpoints: usize, _rows: usize) {}
    /// Checkpoint `index` (0-based) starts; `mode` says how it runs.
    fn checkpoint(&mut self, _index: usize, _ckpt: &CheckpointRef, _mode: &str) {}
    /// An entry is already in the store with the same inputs.
    fn skipped(&mut self, _ckpt: &CheckpointRef, _dataset: &str) {}
    /// An entry is in the store but broken (truncated, deleted, damaged): it is redone.
    fn redo(&mut self, _ckpt: &CheckpointRef, _dataset: &str, _why: &str) {}
    /// Rows and tokens just processed.
    fn advance(&mut self, _rows: usize, _tokens: usize) {}
    /// An entry was written.
    fn written(&mut self, _ckpt: &CheckpointRef, _dataset: &str, _rows: usize, _secs: f64) {}
    fn note(&mut self, _msg: &str) {}
}

/// A progress sink that reports nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// What a sweep did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub written: usize,
    pub skipped: usize,
    pub rows: usize,
    pub tokens: usize,
    /// Seconds spent in forward passes.
    pub forward_secs: f64,
    /// 2 · non-embedding parameters · tokens, summed: the arithmetic the forward passes did.
    pub flops: f64,
}

fn file_id(path: &Path) -> Result<FileId> {
    let meta =
        std::fs::metadata(path).map_err(|e| SweepError::at(path, format!("cannot read: {e}")))?;
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(FileId {
        name: path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().to_string()),
        bytes: meta.len(),
        modified_ns,
    })
}

/// Identity of every file a checkpoint's activations depend on: config, tokenizer and weights.
pub fn checkpoint_files(ckpt: &CheckpointRef) -> Result<Vec<FileId>> {
    let p = &ckpt.path;
    if p.is_file() {
        let mut v = vec![file_id(p)?];
        let tok = p.with_file_name("tokenizer.json");
        if tok.is_file() {
            v.push(file_id(&tok)?);
        }
        return Ok(v);
    }
    let mut files: Vec<_> = std::fs::read_dir(p)
        .map_err(|e| SweepError::at(p, format!("cannot list: {e}")))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|f| {
            let n = f
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().to_string());
            f.is_file()
                && (n == "config.json"
                    || (ckpt.tokenizer.is_none() && TOKENIZER_FILES.contains(&n.as_str()))
                    || n.ends_with(".safetensors")
                    || n.ends_with(".bin")
                    || n.ends_with(".index.json"))
        })
        .collect();
    if let Some(t) = &ckpt.tokenizer {
        files.extend(
            TOKENIZER_FILES
                .iter()
                .map(|n| t.path.join(n))
                .filter(|f| f.is_file()),
        );
    }
    files.sort();
    files.iter().map(|f| file_id(f)).collect()
}

/// The files that make a tokenizer (transformers reads them all).
const TOKENIZER_FILES: [&str; 4] = pretrace_hub::files::TOKENIZER_FILES;

/// Tokens a batch needs before padding is avoided by cutting it short.
const PLENTY_TOKENS: usize = 512;
/// Most padding (percent of real tokens) a batch of [`PLENTY_TOKENS`] or more takes on.
const MAX_PAD_PERCENT: usize = 3;

/// Row order and batch layout: rows sorted by length (longest first), packed into batches of at
/// most `batch_size` rows and `max_tokens` padded tokens (a longer row runs alone).
pub fn plan_batches(lens: &[usize], batch_size: usize, max_tokens: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by(|&a, &b| lens[b].cmp(&lens[a]).then(a.cmp(&b)));
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut real = 0usize;
    for i in order {
        // Rows arrive longest first, so the batch's padded length is its first row's.
        let width = cur.first().map_or(lens[i], |&f| lens[f]);
        let full = cur.len() + 1 > batch_size || (cur.len() + 1) * width > max_tokens;
        // Padding is wasted arithmetic: once a batch is large enough to keep the matrix kernels
        // busy, start a new one rather than pad more than a few percent.
        let padded = (cur.len() + 1) * width;
        let wasteful =
            real >= PLENTY_TOKENS && padded * 100 > (real + lens[i]) * (100 + MAX_PAD_PERCENT);
        if !cur.is_empty() && (full || wasteful) {
            out.push(std::mem::take(&mut cur));
            real = 0;
        }
        cur.push(i);
        real += lens[i];
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Peak resident memory of this process (`VmHWM`), in bytes, where the system reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Makes the allocator hand large freed buffers back to the system at once, so that a block freed
/// after use leaves no resident memory behind (glibc otherwise raises its mmap threshold after the
/// first large free and keeps later blocks in its heap). Called before a block-by-block run.
fn return_freed_memory_eagerly() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: mallopt only changes allocator tuning; 1 MiB is a valid threshold.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 1 << 20);
        }
    }
}

/// Resident memory of this process now (`VmRSS`), in bytes, where the system reports it.
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Memory available to this machine, from `/proc/meminfo`, where the system reports it.
pub fn total_memory_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        _ => "f32",
    }
}

/// One dataset prepared for a checkpoint: token rows and the manifest its entry will carry.
struct Job<'a> {
    ds: &'a Dataset,
    manifest: Manifest,
    ids: Vec<Vec<u32>>,
}

/// Where a sweep's checkpoint files come from: already on disk (the default), or fetched on the
/// way, e.g. from the Hugging Face hub under a disk budget, downloading ahead while earlier
/// checkpoints run.
pub trait Source {
    /// The checkpoints (indices into the suite, in order) that have work to do; the others are
    /// finished in the store and are never fetched.
    fn prepare(&mut self, _suite: &[CheckpointRef], _todo: &[usize]) -> Result<()> {
        Ok(())
    }
    /// Blocks until checkpoint `index`'s files are on disk.
    fn ready(&mut self, _index: usize) -> Result<()> {
        Ok(())
    }
    /// Every entry of checkpoint `index` is in the store: its files may go when room is needed.
    fn finished(&mut self, _index: usize) -> Result<()> {
        Ok(())
    }
}

/// Checkpoints that are on disk already.
pub struct OnDisk;
impl Source for OnDisk {}

/// Runs every dataset through every checkpoint of `suite` (in order) into `store`, skipping
/// entries already there with the same inputs.
pub fn extract(
    suite: &[CheckpointRef],
    datasets: &[Dataset],
    store: &Store,
    opts: &ExtractOptions,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    extract_from(suite, datasets, store, opts, progress, &mut OnDisk)
}

/// [`extract`], with the checkpoints' files brought by `source` as they are needed.
pub fn extract_from(
    suite: &[CheckpointRef],
    datasets: &[Dataset],
    store: &Store,
    opts: &ExtractOptions,
    progress: &mut dyn Progress,
    source: &mut dyn Source,
) -> Result<Summary> {
    if let Some(t) = &opts.template {
        if !t.contains("{text}") {
            return Err(SweepError::Invalid(format!(
                "--template '{t}' does not contain {{text}}; write e.g. 'Statement: {{text}}'"
            )));
        }
    }
    if opts.batch_size == 0 || opts.max_batch_tokens == 0 {
        return Err(SweepError::Invalid(
            "--batch-size and --max-batch-tokens must be at least 1".into(),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for d in datasets {
        if !names.insert(d.name.as_str()) {
            return Err(SweepError::Invalid(format!(
                "two data files are both named '{}'; entries are named after the file, so rename one",
                d.name
            )));
        }
    }
    pretrace_hub::check_uniform(suite)?;
    let rows_per_ckpt: usize = datasets.iter().map(|d| d.len()).sum();
    progress.begin(suite.len(), rows_per_ckpt);
    let mut summary = Summary::default();
    let mut first_shape: Option<(String, String, usize, usize)> = None;
    let base = |ck: &CheckpointRef,
                files: &[FileId],
                layers: Vec<usize>,
                config: serde_json::Value|
     -> Vec<Manifest> {
        datasets
            .iter()
            .map(|ds| Manifest {
                store_format: FORMAT_VERSION,
                tool: opts.tool.clone(),
                checkpoint: CheckpointInfo {
                    name: ck.name.clone(),
                    path: ck.path.display().to_string(),
                    step: ck.step,
                    tokens: ck.tokens,
                    config: config.clone(),
                    weights: files.to_vec(),
                    hub: ck.hub.as_ref().map(|h| HubInfo {
                        reference: h.reference(),
                        commit: h.commit.clone(),
                        tokenizer: ck.tokenizer.as_ref().map(|t| t.reference.clone()),
                    }),
                },
                dataset: DatasetInfo {
                    name: ds.name.clone(),
                    path: ds
                        .path
                        .as_ref()
                        .map_or(String::new(), |p| p.display().to_string()),
                    sha256: ds.sha256.clone(),
                    rows: ds.len(),
                    text_column: ds.text_column.clone(),
                    label_column: ds.label_column.clone(),
                },
                extraction: Extraction {
                    site: "hook_resid_post".into(),
                    layers: layers.clone(),
                    token: match opts.pool {
                        Pool::Last => "last".into(),
                        Pool::Mean => "mean".into(),
                    },
                    template: opts.template.clone(),
                    special_tokens: true,
                    compute_dtype: dtype_name(opts.dtype).into(),
                    store_dtype: opts.store_dtype.name().into(),
                    device: pretrace_model::device::name_of(&opts.device),
                },
                tensors: BTreeMap::new(),
                total_tokens: 0,
                files: BTreeMap::new(),
            })
            .collect()
    };
    // Skip decisions need no model and, for a checkpoint from the hub, none of its files: an
    // entry is current if its manifest records the same files (or commit), data and settings.
    // The stored manifest's model config gives the depth.
    let mut pending_of = Vec::with_capacity(suite.len());
    for ck in suite {
        let files = if ck.hub.is_some() && !ck.path.join("config.json").is_file() {
            Vec::new()
        } else {
            checkpoint_files(ck)?
        };
        let mut pending = Vec::new();
        for (i, ds) in datasets.iter().enumerate() {
            let current = match store.manifest(&ck.name, &ds.name) {
                Ok(None) => false,
                Err(pretrace_store::StoreError::BadManifest { msg, .. }) => {
                    progress.redo(ck, &ds.name, &format!("manifest.json is damaged ({msg})"));
                    false
                }
                Err(e) => return Err(e.into()),
                Ok(Some(m)) => {
                    let depth = m.checkpoint.config.get("n_layers").and_then(|v| v.as_u64());
                    let layers = opts
                        .layers
                        .resolve(depth.unwrap_or(0) as usize)
                        .unwrap_or_default();
                    let same =
                        m.same_inputs(&base(ck, &files, layers, m.checkpoint.config.clone())[i]);
                    match store.check_entry(&m, opts.verify_checksums)? {
                        _ if !same => false,
                        pretrace_store::EntryState::Whole => true,
                        pretrace_store::EntryState::Broken(why) => {
                            progress.redo(ck, &ds.name, &why);
                            false
                        }
                    }
                }
            };
            if !current {
                pending.push(i);
            }
        }
        for i in (0..datasets.len()).filter(|i| !pending.contains(i)) {
            progress.skipped(ck, &datasets[i].name);
            summary.skipped += 1;
        }
        pending_of.push(pending);
    }
    let todo: Vec<usize> = (0..suite.len())
        .filter(|&i| !pending_of[i].is_empty())
        .collect();
    source.prepare(suite, &todo)?;
    for (ci, ck) in suite.iter().enumerate() {
        let pending = std::mem::take(&mut pending_of[ci]);
        if pending.is_empty() {
            continue;
        }
        source.ready(ci)?;
        let files = checkpoint_files(ck)?;
        // Load whole, or block by block when the weights exceed the memory budget.
        let budget = opts.max_memory.or_else(|| {
            if opts.device.is_cpu() {
                total_memory_bytes().map(|m| m / 10 * 8)
            } else {
                pretrace_model::device::memory_info(&opts.device).map(|(free, _)| free / 10 * 8)
            }
        });
        let weight_bytes: u64 = files
            .iter()
            .filter(|f| f.name.ends_with(".safetensors") || f.name.ends_with(".bin"))
            .map(|f| f.bytes)
            .sum();
        let elem = if opts.dtype == DType::F32 { 4 } else { 2 };
        // Stored bytes → compute bytes: f16/bf16 files double in f32.
        let est = estimate_compute_bytes(ck, weight_bytes, elem);
        let blockwise = opts.force_blockwise || budget.is_some_and(|b| est > b);
        let lopts = LoadOptions {
            dtype: opts.dtype,
            device: opts.device.clone(),
            tokenizer: ck.tokenizer.as_ref().map(|t| t.path.clone()),
        };
        if let Some(t) = &ck.tokenizer {
            progress.note(&format!("{}: tokenizer from {}", ck.name, t.reference));
        }
        let ckpt: Checkpoint = if blockwise {
            return_freed_memory_eagerly();
            Model::load_streamed(&ck.path, &lopts)?
        } else {
            Model::load(&ck.path, &lopts)?
        };
        let model = &ckpt.model;
        let mode = if model.is_streamed() {
            format!(
                "block by block (weights ≈ {} MiB in {}, budget {} MiB)",
                est >> 20,
                dtype_name(opts.dtype),
                budget.map_or("none".into(), |b| (b >> 20).to_string())
            )
        } else {
            "whole".to_string()
        };
        progress.checkpoint(ci, ck, &mode);
        let c = &model.config;
        let shape = (c.arch.clone(), ck.name.clone(), c.d_model, c.n_layers);
        match &first_shape {
            None => first_shape = Some(shape),
            Some(f) if (f.0.as_str(), f.2, f.3) != (c.arch.as_str(), c.d_model, c.n_layers) => {
                return Err(SweepError::at(
                    &ck.path,
                    format!(
                        "this checkpoint is {} with width {} and {} layers, but the sweep's first checkpoint '{}' is {} with width {} and {} layers; run them separately",
                        c.arch, c.d_model, c.n_layers, f.1, f.0, f.2, f.3
                    ),
                ))
            }
            _ => {}
        }
        let tok = ckpt.tokenizer.as_ref().ok_or_else(|| {
            SweepError::at(
                &ck.path,
                "no tokenizer: put the model's tokenizer.json beside its config.json",
            )
        })?;
        let layers = opts.layers.resolve(c.n_layers)?;
        let config_json = serde_json::to_value(c).unwrap_or_default();
        let manifests = base(ck, &files, layers.clone(), config_json);
        // Tokenize every pending dataset (in parallel; the tokenizer is shared read-only).
        let mut jobs = Vec::new();
        for &i in &pending {
            let ds = &datasets[i];
            let mut ids: Vec<Vec<u32>> = ds
                .rows
                .par_iter()
                .map(|r| {
                    let text = match &opts.template {
                        Some(t) => t.replace("{text}", &r.text),
                        None => r.text.clone(),
                    };
                    tok.encode(&text)
                })
                .collect::<std::result::Result<_, _>>()?;
            // Attention memory grows with the square of a row's length: rows past the model's
            // positions are refused (or cut, when asked) before any batch is built.
            if let Some(limit) = c.max_positions {
                for (r, v) in ids.iter_mut().enumerate() {
                    if v.len() > limit {
                        if opts.truncate {
                            v.truncate(limit);
                        } else {
                            return Err(SweepError::RowTooLong {
                                file: ds.path.clone().unwrap_or_else(|| ds.name.clone().into()),
                                row: ds.rows[r].id + 1,
                                tokens: v.len(),
                                limit,
                            });
                        }
                    }
                }
            }
            if let Some((r, _)) = ids.iter().enumerate().find(|(_, v)| v.is_empty()) {
                return Err(SweepError::Invalid(format!(
                    "{}: row {} encodes to no tokens with this tokenizer",
                    ds.name,
                    r + 1
                )));
            }
            jobs.push(Job {
                ds,
                manifest: manifests[i].clone(),
                ids,
            });
        }
        let sites: Vec<Site> = layers.iter().map(|&l| Site::ResidPost(l)).collect();
        let flops_per_token = 2.0 * model.non_embedding_parameters() as f64;
        if model.is_streamed() {
            // Every pending dataset's batches go through each block before the next is read.
            let t0 = Instant::now();
            let mut batches = Vec::new();
            let mut plans = Vec::new();
            for job in &jobs {
                let lens: Vec<usize> = job.ids.iter().map(|v| v.len()).collect();
                let plan = plan_batches(&lens, opts.batch_size, opts.max_batch_tokens);
                for rows in &plan {
                    let r: Vec<Vec<u32>> = rows.iter().map(|&i| job.ids[i].clone()).collect();
                    batches.push(Batch::pad(&r, Padding::Right, 0)?);
                }
                plans.push(plan);
            }
            let mut pools: Vec<PoolRows> = batches
                .iter()
                .map(|_| PoolRows::new(sites.clone(), opts.pool))
                .collect();
            let mut hooks: Vec<&mut dyn Hook> =
                pools.iter_mut().map(|p| p as &mut dyn Hook).collect();
            let n_blocks = layers.last().map_or(0, |&l| l + 1);
            let tokens_all: usize = batches
                .iter()
                .map(|b| b.valid.iter().flatten().filter(|&&v| v).count())
                .sum();
            let mut done_blocks = 0usize;
            model.forward_blockwise(&batches, &mut hooks, &mut |_l| {
                done_blocks += 1;
                let rss =
                    rss_bytes().map_or(String::new(), |b| format!(" (resident {} MiB)", b >> 20));
                progress.note(&format!(
                    "{}: block {done_blocks}/{n_blocks} done{rss}",
                    ck.name
                ));
            })?;
            drop(hooks);
            if n_blocks == c.n_layers {
                model.check_all_weights_used()?;
            }
            let secs = t0.elapsed().as_secs_f64();
            summary.forward_secs += secs;
            summary.flops +=
                flops_per_token * tokens_all as f64 * n_blocks as f64 / c.n_layers as f64;
            let mut pools = pools.into_iter();
            for (job, plan) in jobs.into_iter().zip(plans) {
                let mut per_batch: Vec<PoolRows> =
                    (0..plan.len()).filter_map(|_| pools.next()).collect();
                let name = job.ds.name.clone();
                let (rows, tokens) =
                    write_job(store, opts, job, &plan, &mut per_batch, &layers, c.d_model)?;
                progress.advance(rows, tokens);
                summary.rows += rows;
                summary.tokens += tokens;
                summary.written += 1;
                progress.written(ck, &name, rows, secs);
            }
        } else {
            for job in jobs {
                let t0 = Instant::now();
                let lens: Vec<usize> = job.ids.iter().map(|v| v.len()).collect();
                let plan = plan_batches(&lens, opts.batch_size, opts.max_batch_tokens);
                let mut pools = Vec::with_capacity(plan.len());
                let mut fwd = 0.0;
                // Batches run side by side, one per worker thread: each worker's matrix products
                // then rarely wait on another's, which on few cores beats splitting every product.
                let workers = rayon::current_num_threads().max(1);
                for group in plan.chunks(workers) {
                    let tf = Instant::now();
                    let done: Vec<PoolRows> = group
                        .par_iter()
                        .map(|rows| -> Result<PoolRows> {
                            let r: Vec<Vec<u32>> =
                                rows.iter().map(|&i| job.ids[i].clone()).collect();
                            let batch = Batch::pad(&r, Padding::Right, 0)?;
                            let mut pool = PoolRows::new(sites.clone(), opts.pool);
                            model
                                .forward(
                                    &batch,
                                    &mut [&mut pool as &mut dyn Hook],
                                    Logits::None,
                                    None,
                                )
                                .map_err(|e| in_rows(e, &ck.name, job.ds, rows))?;
                            Ok(pool)
                        })
                        .collect::<Result<_>>()?;
                    fwd += tf.elapsed().as_secs_f64();
                    for rows in group {
                        let ntok: usize = rows.iter().map(|&i| lens[i]).sum();
                        summary.flops += flops_per_token
                            * ntok as f64
                            * (layers.last().map_or(0, |&l| l + 1)) as f64
                            / c.n_layers as f64;
                        progress.advance(rows.len(), ntok);
                    }
                    pools.extend(done);
                }
                summary.forward_secs += fwd;
                let name = job.ds.name.clone();
                let (rows, tokens) =
                    write_job(store, opts, job, &plan, &mut pools, &layers, c.d_model)?;
                summary.rows += rows;
                summary.tokens += tokens;
                summary.written += 1;
                progress.written(ck, &name, rows, t0.elapsed().as_secs_f64());
            }
        }
        source.finished(ci)?;
    }
    Ok(summary)
}

/// A model error on a batch of `rows` (indices into `ds`), with a non-finite activation turned
/// into one naming the checkpoint, the dataset, the row in file order and the block.
fn in_rows(
    e: pretrace_model::ModelError,
    checkpoint: &str,
    ds: &Dataset,
    rows: &[usize],
) -> SweepError {
    if let pretrace_model::ModelError::NonFinite {
        site, row, value, ..
    } = &e
    {
        let layer = site
            .strip_prefix("blocks.")
            .and_then(|r| r.split('.').next())
            .and_then(|l| l.parse().ok());
        if let (Some(r), Some(layer)) = (rows.get(*row).and_then(|&r| ds.rows.get(r)), layer) {
            return SweepError::NonFinite {
                checkpoint: checkpoint.to_string(),
                dataset: ds.name.clone(),
                row: r.id + 1,
                layer,
                value: *value,
            };
        }
    }
    e.into()
}

/// Memory the weights take in the compute dtype, from their stored size and dtype.
fn estimate_compute_bytes(ck: &CheckpointRef, stored_bytes: u64, elem: u64) -> u64 {
    // The stored dtype, as config.json names it (`torch_dtype`, or `dtype` in transformers 5).
    let stored_elem = std::fs::read_to_string(ck.path.join("config.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| {
            let d = v
                .get("torch_dtype")
                .or_else(|| v.get("dtype"))?
                .as_str()?
                .to_string();
            Some(if d.contains("16") { 2 } else { 4 })
        })
        .unwrap_or(4);
    stored_bytes / stored_elem * elem
}

/// Scatters pooled rows back into file order and writes the entry.
fn write_job(
    store: &Store,
    opts: &ExtractOptions,
    job: Job,
    plan: &[Vec<usize>],
    pools: &mut [PoolRows],
    layers: &[usize],
    d: usize,
) -> Result<(usize, usize)> {
    let n = job.ids.len();
    let mut out: BTreeMap<usize, Vec<f32>> = BTreeMap::new();
    for &l in layers {
        let mut m = vec![0f32; n * d];
        for (rows, pool) in plan.iter().zip(pools.iter_mut()) {
            let got = pool.take(Site::ResidPost(l))?;
            for (k, &r) in rows.iter().enumerate() {
                m[r * d..(r + 1) * d].copy_from_slice(&got[k * d..(k + 1) * d]);
            }
        }
        out.insert(l, m);
    }
    let labels: Vec<i64> = job.ds.rows.iter().map(|r| r.label.unwrap_or(-1)).collect();
    let tokens: Vec<i64> = job.ids.iter().map(|v| v.len() as i64).collect();
    let total: usize = job.ids.iter().map(|v| v.len()).sum();
    let mut manifest = job.manifest;
    for &l in layers {
        manifest
            .tensors
            .insert(format!("blocks.{l}.hook_resid_post"), vec![n, d]);
    }
    manifest.tensors.insert("labels".into(), vec![n]);
    manifest.tensors.insert("tokens".into(), vec![n]);
    manifest.total_tokens = total as u64;
    store.write(&manifest, &out, d, &labels, &tokens, opts.store_dtype)?;
    Ok((n, total))
}

/// Checkpoints from the Hugging Face hub: the ones a sweep still needs download ahead of their
/// extraction, within a disk budget (see [`pretrace_hub::Prefetch`]).
pub struct FromHub {
    hub: std::sync::Arc<pretrace_hub::Hub>,
    budget: Option<u64>,
    report: Option<Box<dyn FnMut(pretrace_hub::PrefetchEvent) + Send>>,
    prefetch: Option<pretrace_hub::Prefetch>,
    /// Suite index → position in the prefetch list.
    at: Vec<Option<usize>>,
}

impl FromHub {
    pub fn new(
        hub: std::sync::Arc<pretrace_hub::Hub>,
        budget: Option<u64>,
        report: Box<dyn FnMut(pretrace_hub::PrefetchEvent) + Send>,
    ) -> FromHub {
        FromHub {
            hub,
            budget,
            report: Some(report),
            prefetch: None,
            at: Vec::new(),
        }
    }

    /// The most bytes the run's downloads held on disk at once.
    pub fn peak_bytes(&self) -> u64 {
        self.prefetch.as_ref().map_or(0, |p| p.peak_bytes())
    }
}

impl Source for FromHub {
    fn prepare(&mut self, suite: &[CheckpointRef], todo: &[usize]) -> Result<()> {
        self.at = vec![None; suite.len()];
        let mut list = Vec::new();
        for &i in todo {
            if suite[i].hub.is_some() {
                self.at[i] = Some(list.len());
                list.push(suite[i].clone());
            }
        }
        let report = self
            .report
            .take()
            .unwrap_or_else(|| Box::new(|_: pretrace_hub::PrefetchEvent| {}));
        self.prefetch = Some(pretrace_hub::Prefetch::start(
            self.hub.clone(),
            list,
            self.budget,
            report,
        )?);
        Ok(())
    }

    fn ready(&mut self, index: usize) -> Result<()> {
        if let (Some(p), Some(Some(k))) = (&self.prefetch, self.at.get(index)) {
            p.wait(*k)?;
        }
        Ok(())
    }

    fn finished(&mut self, index: usize) -> Result<()> {
        if let (Some(p), Some(Some(k))) = (&self.prefetch, self.at.get(index)) {
            p.finished(*k);
        }
        Ok(())
    }
}
