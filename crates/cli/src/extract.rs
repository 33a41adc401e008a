//! `pretrace extract` and `pretrace build-dataset`.

use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use pretrace_data::{builders, Dataset, LabelColumn, ReadOptions, Table};
use pretrace_model::Pool;
use pretrace_store::{write_atomic, Store, StoreDType};
use pretrace_sweep::{
    extract_from, parse_size, peak_rss_bytes, CheckpointRef, ExtractOptions, FromHub, LayerSpec,
    Progress, Selection,
};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct ExtractArgs {
    /// A directory of checkpoints (one per training step: ckpt_000, step1000,
    /// stage1-step1000-tokens4B, checkpoint-500, ...), a single checkpoint directory or .gguf file,
    /// a Hugging Face cache folder (models--ORG--NAME or its snapshots/), or a hub repository
    /// hf:ORG/NAME (its revisions from --revisions) or hf:ORG/NAME@REVISION.
    #[arg(long)]
    checkpoints: String,
    /// The revisions of a hub repository (--checkpoints hf:ORG/NAME): names (step0,step1000), globs
    /// over its branches (step*), or all; ordered by the step in each name. Default: main.
    #[arg(long)]
    revisions: Option<String>,
    #[command(flatten)]
    device: crate::DeviceArg,
    /// Take every checkpoint's tokenizer from this folder or hub reference (hf:ORG/NAME[@REV]).
    /// Default: each checkpoint's own; a hub revision that ships none takes its repository's main.
    #[arg(long)]
    tokenizer: Option<String>,
    /// A data file (.csv, .jsonl, .arrow, .parquet); repeat for several. Its entry is named after
    /// the file without its extension.
    #[arg(long = "data", required = true)]
    data: Vec<PathBuf>,
    /// The activation store directory (created if needed; re-running resumes it).
    #[arg(long)]
    out: PathBuf,
    /// Layers to keep: all, a list (0,6,12), ranges (0-31), or a mix.
    #[arg(long, default_value = "all")]
    layers: String,
    /// Which token's residual stream to keep per row.
    #[arg(long, value_enum, default_value_t = TokenRule::Last)]
    token: TokenRule,
    /// Most rows per forward pass.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Most tokens per forward pass (rows × longest row, padding included).
    #[arg(long, default_value_t = 4096)]
    max_batch_tokens: usize,
    /// Compute dtype.
    #[arg(long, value_enum, default_value_t = Compute::F32)]
    dtype: Compute,
    /// Dtype the activations are stored in.
    #[arg(long, value_enum, default_value_t = Stored::F32)]
    store_dtype: Stored,
    /// Text template containing {text}, applied to every row.
    #[arg(long)]
    template: Option<String>,
    /// Memory budget (e.g. 24G, 512M): a checkpoint whose weights exceed it runs block by block.
    /// Default: 80% of this machine's memory.
    #[arg(long)]
    max_memory: Option<String>,
    /// Run block by block whatever the checkpoint's size.
    #[arg(long)]
    blockwise: bool,
    /// Steps to run: a list (0,1000,2000) or an inclusive range (1000..5000).
    #[arg(long)]
    steps: Option<String>,
    /// Run every k-th checkpoint (after --steps).
    #[arg(long)]
    every: Option<usize>,
    /// Run at most N checkpoints spaced evenly in log(step), first and last included.
    #[arg(long)]
    log_spaced: Option<usize>,
    /// Text column (default: statement, Question, sentence, text or prompt, whichever the file has).
    #[arg(long)]
    text_column: Option<String>,
    /// Label column (default: label when present); `none` reads no labels.
    #[arg(long)]
    label_column: Option<String>,
    /// Cut rows longer than the model's positions to their first tokens (transformers'
    /// `truncation=True`) instead of stopping with an error naming the row.
    #[arg(long)]
    truncate: bool,
    /// Disk budget for checkpoints downloaded from the hub (e.g. 30G): the next checkpoint
    /// downloads while one is extracted, and once a checkpoint's entries are all in the store,
    /// the blobs this run downloaded for it are deleted when room is needed. Blobs that were in the
    /// cache before are never deleted. Default: no limit.
    #[arg(long)]
    cache_budget: Option<String>,
    /// On resume, also recompute each finished entry's sha256 and redo any that differs from its
    /// manifest (sizes and headers are always checked).
    #[arg(long)]
    verify: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum TokenRule {
    Last,
    Mean,
}
#[derive(Clone, Copy, ValueEnum)]
enum Compute {
    F32,
    Bf16,
}
#[derive(Clone, Copy, ValueEnum)]
enum Stored {
    F32,
    F16,
}

/// Progress on a terminal: a bar over every row of every checkpoint. Otherwise: log lines.
struct Report {
    bar: Option<ProgressBar>,
    start: Instant,
    rows_total: u64,
    tokens_done: u64,
}

impl Report {
    fn line(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }
}

impl Progress for Report {
    fn begin(&mut self, checkpoints: usize, rows: usize) {
        self.rows_total = (checkpoints * rows) as u64;
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(self.rows_total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} rows  {per_sec}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            self.bar = Some(bar);
        }
        self.line(&format!(
            "extract: {checkpoints} checkpoint(s) × {rows} rows"
        ));
    }
    fn checkpoint(&mut self, index: usize, ck: &CheckpointRef, mode: &str) {
        let step = ck.step.map_or(String::new(), |s| format!(" (step {s})"));
        self.line(&format!(
            "checkpoint {}: {}{step}, {mode}",
            index + 1,
            ck.name
        ));
        if let Some(b) = &self.bar {
            b.set_message(ck.name.clone());
        }
    }
    fn skipped(&mut self, ck: &CheckpointRef, dataset: &str) {
        self.line(&format!(
            "skip {}/{dataset}: already in the store with the same inputs",
            ck.name
        ));
    }
    fn advance(&mut self, rows: usize, tokens: usize) {
        self.tokens_done += tokens as u64;
        if let Some(b) = &self.bar {
            b.inc(rows as u64);
        }
    }
    fn written(&mut self, ck: &CheckpointRef, dataset: &str, rows: usize, secs: f64) {
        let el = self.start.elapsed().as_secs_f64();
        let tps = self.tokens_done as f64 / el.max(1e-9);
        self.line(&format!(
            "wrote {}/{dataset}: {rows} rows in {secs:.1}s ({:.1} rows/s; {tps:.0} tokens/s overall)",
            ck.name,
            rows as f64 / secs.max(1e-9)
        ));
    }
    fn redo(&mut self, ck: &CheckpointRef, dataset: &str, why: &str) {
        self.line(&format!(
            "redo {}/{dataset}: the stored entry is broken: {why}",
            ck.name
        ));
    }
    fn note(&mut self, msg: &str) {
        if self.bar.is_none() {
            eprintln!("{msg}");
        }
    }
}

pub fn run_extract(a: ExtractArgs) -> Result<()> {
    let opts = ExtractOptions {
        layers: LayerSpec::parse(&a.layers)?,
        pool: match a.token {
            TokenRule::Last => Pool::Last,
            TokenRule::Mean => Pool::Mean,
        },
        batch_size: a.batch_size,
        max_batch_tokens: a.max_batch_tokens,
        dtype: match a.dtype {
            Compute::F32 => DType::F32,
            Compute::Bf16 => DType::BF16,
        },
        store_dtype: match a.store_dtype {
            Stored::F32 => StoreDType::F32,
            Stored::F16 => StoreDType::F16,
        },
        template: a.template.clone(),
        max_memory: a.max_memory.as_deref().map(parse_size).transpose()?,
        force_blockwise: a.blockwise,
        device: a.device.open()?,
        tool: format!("pretrace {}", env!("CARGO_PKG_VERSION")),
        verify_checksums: a.verify,
        truncate: a.truncate,
    };
    let read = ReadOptions {
        text_column: a.text_column.clone(),
        label_column: match a.label_column.as_deref() {
            None => LabelColumn::Auto,
            Some("none") => LabelColumn::None,
            Some(c) => LabelColumn::Named(c.to_string()),
        },
    };
    let hub = crate::hub::hub();
    let datasets = a
        .data
        .iter()
        .map(|p| Dataset::read(p, &read))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let suite = Selection {
        steps: a.steps.clone(),
        every: a.every,
        log_spaced: a.log_spaced,
    }
    .apply(crate::hub::resolve_suite(
        &hub,
        &a.checkpoints,
        a.revisions.as_deref(),
    )?)?;
    let mut suite = suite;
    let explicit = a
        .tokenizer
        .as_deref()
        .map(pretrace_hub::Reference::parse)
        .transpose()?;
    for n in hub.attach_tokenizers(&mut suite, explicit.as_ref())? {
        eprintln!("note: {n}");
    }
    let budget = a
        .cache_budget
        .as_deref()
        .map(|b| {
            parse_size(b).map_err(|_| {
                anyhow::anyhow!(
                    "--cache-budget {b}: not a size; write e.g. 30G, 512M or a number of bytes"
                )
            })
        })
        .transpose()?;
    let store = Store::create(&a.out, &opts.tool)?;
    let mut report = Report {
        bar: None,
        start: Instant::now(),
        rows_total: 0,
        tokens_done: 0,
    };
    let mut source = FromHub::new(hub.clone(), budget, crate::hub::prefetch_report());
    let s = extract_from(&suite, &datasets, &store, &opts, &mut report, &mut source)?;
    if source.peak_bytes() > 0 {
        eprintln!(
            "downloads held at most {} on disk at once{}",
            crate::hub::human(source.peak_bytes()),
            budget.map_or(String::new(), |b| format!(
                " (budget {})",
                crate::hub::human(b)
            ))
        );
    }
    if let Some(b) = &report.bar {
        b.finish_and_clear();
    }
    let rate = |x: f64| x / s.forward_secs.max(1e-9);
    eprintln!(
        "done: {} entries written, {} already current; {} rows, {} tokens; forward {:.2}s: {:.1} rows/s, {:.0} tokens/s, {:.1} GFLOP/s",
        s.written,
        s.skipped,
        s.rows,
        s.tokens,
        s.forward_secs,
        rate(s.rows as f64),
        rate(s.tokens as f64),
        rate(s.flops) / 1e9
    );
    if let Some(p) = peak_rss_bytes() {
        eprintln!("peak resident memory: {} MiB", p >> 20);
    }
    Ok(())
}

#[derive(Args)]
pub struct BuildArgs {
    /// Which dataset to build.
    #[arg(value_enum)]
    kind: BuildKind,
    /// The source file (.csv, .jsonl, .arrow, .parquet).
    #[arg(long)]
    input: PathBuf,
    /// The CSV to write (statement,label; written atomically).
    #[arg(long)]
    out: PathBuf,
    /// sst2-robustness: seed of the case flips.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// sst2-robustness: share of letters whose case is flipped.
    #[arg(long, default_value_t = 0.05)]
    rate: f64,
    /// sst2-robustness: shuffle the rows (with the same seed).
    #[arg(long)]
    shuffle: bool,
    /// truthfulqa: keep questions A..B (0-based, end exclusive) of the source.
    #[arg(long)]
    questions: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum BuildKind {
    /// TruthfulQA.csv → `Q: {question}\tA: {answer}` true (1) / false (0) statements.
    Truthfulqa,
    /// GLUE SST-2 → sentences (0) and copies with ~5% of letters' case flipped (1).
    Sst2Robustness,
    /// PKU-SafeRLHF → safe (1) / unsafe (0) responses of prompts whose two responses differ.
    PkuSaferlhf,
}

pub fn run_build(a: BuildArgs) -> Result<()> {
    let table = Table::read(&a.input)?;
    let name = a
        .out
        .file_stem()
        .map_or("data".into(), |s| s.to_string_lossy().to_string());
    let ds = match a.kind {
        BuildKind::Truthfulqa => {
            let range = match &a.questions {
                None => None,
                Some(q) => {
                    let (lo, hi) = q
                        .split_once("..")
                        .context("--questions: write A..B, e.g. 0..410")?;
                    Some(
                        lo.trim().parse::<usize>().context("--questions start")?
                            ..hi.trim().parse::<usize>().context("--questions end")?,
                    )
                }
            };
            builders::truthfulqa(&table, &name, range)?
        }
        BuildKind::Sst2Robustness => {
            if !(0.0..=1.0).contains(&a.rate) {
                bail!("--rate {} is not a share between 0 and 1", a.rate);
            }
            builders::sst2_robustness(&table, &name, a.rate, a.seed, a.shuffle)?
        }
        BuildKind::PkuSaferlhf => builders::pku_saferlhf(&table, &name)?,
    };
    if ds.is_empty() {
        bail!("{}: the builder produced no rows", a.input.display());
    }
    write_atomic(&a.out, &ds.to_csv())?;
    let (z, o) = ds.label_counts();
    eprintln!(
        "wrote {}: {} rows (label 0: {z}, label 1: {o})",
        a.out.display(),
        ds.len()
    );
    Ok(())
}
