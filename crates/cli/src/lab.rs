//! `pretrace lab`: the mini pre-training lab.

use crate::progress::Bar;
use crate::steer::SteerFlags;
use anyhow::Result;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use pretrace_data::{Dataset, ReadOptions};
use pretrace_lab::corpus::{probe_sets, training_text, write};
use pretrace_lab::pretrain::{completed, Event, Plan, Record};
use pretrace_lab::sft::{world_of, SftPlan, SftRecord};
use pretrace_lab::tasks::{run as run_task, LabTask, TaskData, LAB_TASKS};
use pretrace_lab::world::World;
use pretrace_model::{LoadOptions, Model};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Subcommand)]
enum LabCommand {
    /// Generate the lab's world, its training corpus, the five held-out probe datasets and a
    /// byte-level BPE tokenizer trained on the corpus.
    Corpus(CorpusArgs),
    /// Generate the corpus, train a tokenizer, and pre-train a small LLaMA from random
    /// initialization, saving Hugging Face checkpoints step{N} densely early and sparser later.
    Pretrain(Box<PretrainArgs>),
    /// Instruction-tune a lab checkpoint on questions and answers about its world into the
    /// "chat" model (Hugging Face checkpoint plus sft.json).
    Sft(SftArgs),
    /// Evaluate a lab model (normally the chat model) on the lab's trust and capability tasks,
    /// optionally steered: lab_truth, lab_toxic, lab_privacy, lab_stereo, lab_sentiment, lab_qa.
    Eval(LabEvalArgs),
}

#[derive(Args)]
pub struct LabEvalArgs {
    /// The model to evaluate (the chat model of `lab sft`).
    #[arg(long)]
    pub model: PathBuf,
    /// The `lab pretrain` folder whose world.json and probes/ the tasks are built from.
    #[arg(long)]
    pub run: PathBuf,
    /// Tasks, comma-separated (default: all six).
    #[arg(long, value_delimiter = ',')]
    pub task: Vec<String>,
    /// Output JSON file (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the tasks' generated items.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub steer: SteerFlags,
    #[command(flatten)]
    pub device: crate::DeviceArg,
}

#[derive(Args)]
pub struct SftArgs {
    /// The checkpoint to tune (a step{N} folder of `lab pretrain`).
    #[arg(long)]
    pub base: PathBuf,
    /// Output checkpoint folder. A completed run with the same settings is reused.
    #[arg(long)]
    pub out: PathBuf,
    /// The world's world.json (default: the one in the base's run folder).
    #[arg(long)]
    pub world: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Question–answer pairs generated.
    #[arg(long, default_value_t = SftPlan::default().examples)]
    pub examples: usize,
    /// Optimizer steps.
    #[arg(long, default_value_t = SftPlan::default().settings.steps)]
    pub steps: usize,
    /// Pairs per step.
    #[arg(long, default_value_t = SftPlan::default().batch)]
    pub batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = SftPlan::default().settings.lr)]
    pub lr: f64,
    #[command(flatten)]
    pub device: crate::DeviceArg,
}

#[derive(Args)]
pub struct PretrainArgs {
    /// Output folder: the corpus files, step{N}/ checkpoints and train.json. A completed run with
    /// the same settings is reused.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Training documents (a few sentences each).
    #[arg(long, default_value_t = Plan::default().docs)]
    pub docs: usize,
    /// Rows per probe dataset (half of each label).
    #[arg(long, default_value_t = Plan::default().probe_rows)]
    pub probe_rows: usize,
    /// The tokenizer's largest vocabulary.
    #[arg(long, default_value_t = Plan::default().vocab)]
    pub vocab: usize,
    /// Optimizer steps.
    #[arg(long, default_value_t = Plan::default().settings.steps)]
    pub steps: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = Plan::default().batch)]
    pub batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = Plan::default().seq)]
    pub seq: usize,
    /// Peak learning rate (AdamW, linear warm-up then cosine decay to a tenth).
    #[arg(long, default_value_t = Plan::default().settings.lr)]
    pub lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = Plan::default().settings.warmup)]
    pub warmup: usize,
    #[arg(long, default_value_t = Plan::default().d_model)]
    pub d_model: usize,
    #[arg(long, default_value_t = Plan::default().n_layers)]
    pub layers: usize,
    #[arg(long, default_value_t = Plan::default().n_heads)]
    pub heads: usize,
    #[arg(long, default_value_t = Plan::default().d_mlp)]
    pub d_mlp: usize,
    #[command(flatten)]
    pub device: crate::DeviceArg,
}

impl PretrainArgs {
    pub fn plan(&self) -> Plan {
        let mut p = Plan {
            seed: self.seed,
            docs: self.docs,
            probe_rows: self.probe_rows,
            vocab: self.vocab,
            d_model: self.d_model,
            n_layers: self.layers,
            n_heads: self.heads,
            d_mlp: self.d_mlp,
            batch: self.batch,
            seq: self.seq,
            ..Plan::default()
        };
        p.settings.steps = self.steps;
        p.settings.lr = self.lr;
        p.settings.warmup = self.warmup;
        p
    }
}

#[derive(Args)]
struct CorpusArgs {
    /// Output folder: corpus.txt, world.json, probes/{reliability,toxicity,privacy,fairness,robustness}.csv,
    /// tokenizer.json.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Training documents (a few sentences each).
    #[arg(long, default_value_t = 20000)]
    docs: usize,
    /// Rows per probe dataset (half of each label).
    #[arg(long, default_value_t = Plan::default().probe_rows)]
    probe_rows: usize,
    /// The tokenizer's largest vocabulary.
    #[arg(long, default_value_t = Plan::default().vocab)]
    vocab: usize,
}

pub fn run_lab(a: LabArgs) -> Result<()> {
    match a.command {
        LabCommand::Corpus(c) => corpus(c),
        LabCommand::Pretrain(p) => pretrain(&p.out, &p.plan(), &p.device.open()?).map(|_| ()),
        LabCommand::Eval(a) => lab_eval(&a),
        LabCommand::Sft(a) => {
            let world = match &a.world {
                Some(p) => serde_json::from_str(
                    &std::fs::read_to_string(p)
                        .with_context(|| format!("{}: cannot read", p.display()))?,
                )
                .with_context(|| format!("{}: not a lab world.json", p.display()))?,
                None => world_of(&a.base)?,
            };
            let mut plan = SftPlan {
                seed: a.seed,
                examples: a.examples,
                batch: a.batch,
                ..SftPlan::default()
            };
            plan.settings.steps = a.steps;
            plan.settings.lr = a.lr;
            sft(&a.base, &a.out, &world, &plan, &a.device.open()?).map(|_| ())
        }
    }
}

/// `(statement, label)` rows of a lab probe CSV.
fn probe_rows(run: &Path, concept: &str) -> Result<Vec<(String, u8)>> {
    let path = run.join("probes").join(format!("{concept}.csv"));
    let ds = Dataset::read(&path, &ReadOptions::default())
        .with_context(|| format!("the lab tasks read {}", path.display()))?;
    ds.rows
        .into_iter()
        .map(|r| match r.label {
            Some(l @ (0 | 1)) => Ok((r.text, l as u8)),
            _ => bail!("{}: row {} has no 0/1 label", path.display(), r.id + 1),
        })
        .collect()
}

fn lab_eval(a: &LabEvalArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let tasks: Vec<LabTask> = if a.task.is_empty() {
        LAB_TASKS.to_vec()
    } else {
        a.task
            .iter()
            .map(|t| LabTask::parse(t))
            .collect::<std::result::Result<_, _>>()?
    };
    let world_path = a.run.join("world.json");
    let world: World =
        serde_json::from_str(&std::fs::read_to_string(&world_path).with_context(|| {
            format!(
                "{}: cannot read; --run must be a `lab pretrain` folder",
                world_path.display()
            )
        })?)
        .with_context(|| format!("{}: not a lab world", world_path.display()))?;
    let reliability = probe_rows(&a.run, "reliability")?;
    let toxicity = probe_rows(&a.run, "toxicity")?;
    let data = TaskData {
        world: &world,
        reliability: &reliability,
        toxicity: &toxicity,
        seed: a.seed,
    };
    a.steer.check()?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        pretrace_core::OutDir::prepare(dir)?;
    }
    pretrace_core::check_target(&a.out)?;
    let origin = crate::hub::resolve_model(&a.model.to_string_lossy())?;
    let ckpt = Model::load(
        &origin.path,
        &LoadOptions {
            device: a.device.open()?,
            ..LoadOptions::default()
        },
    )?;
    let tok = ckpt.tokenizer.as_ref().with_context(|| {
        format!(
            "{}: has no tokenizer.json; lab tasks need the lab tokenizer",
            origin.describe()
        )
    })?;
    let mut steering = a.steer.resolve(&ckpt.model)?;
    let mut results = Vec::new();
    for t in tasks {
        let r = run_task(
            t,
            &ckpt.model,
            tok,
            &data,
            steering.as_mut().map(|s| &mut s.hook),
        )?;
        eprintln!(
            "{}: {} = {:.4} ± {:.4} (n = {})",
            r.task, r.metric, r.value, r.stderr, r.n
        );
        results.push(r);
    }
    if let Some(s) = &steering {
        s.report();
    }
    let json = serde_json::json!({
        "model": origin.describe(),
        "run": a.run.display().to_string(),
        "seed": a.seed,
        "steering": steering.as_ref().map(|s| s.settings.clone()),
        "results": results,
        "seconds": started.elapsed().as_secs_f64(),
        "tool": format!("pretrace {}", env!("CARGO_PKG_VERSION")),
    });
    pretrace_store::write_atomic(&a.out, serde_json::to_string_pretty(&json)?.as_bytes())?;
    Ok(())
}

/// Runs (or reuses) instruction tuning with a progress display.
pub fn sft(
    base: &Path,
    out: &Path,
    world: &World,
    plan: &SftPlan,
    device: &candle_core::Device,
) -> Result<SftRecord> {
    if let Some(rec) = pretrace_lab::sft::completed(out, base, plan) {
        eprintln!("sft: reusing the chat model in {}", out.display());
        return Ok(rec);
    }
    let bar = Bar::new("sft", plan.settings.steps, "steps");
    let rec = pretrace_lab::sft::sft_on(base, out, world, plan, device, &mut |l| {
        bar.set(l.step);
        bar.set_message(format!("sft loss {:.3}", l.loss));
    })?;
    bar.finish();
    eprintln!(
        "sft: {} steps from {} in {:.0} s; held-out answer loss {:.3} → {:.3}; chat model in {}",
        plan.settings.steps,
        base.display(),
        rec.seconds,
        rec.heldout_loss_before,
        rec.heldout_loss_after,
        out.display()
    );
    Ok(rec)
}

/// Runs (or reuses) a pre-training run with a progress display.
pub fn pretrain(out: &Path, plan: &Plan, device: &candle_core::Device) -> Result<Record> {
    if let Some(rec) = completed(out, plan) {
        eprintln!(
            "pretrain: reusing the completed run in {} ({} checkpoints)",
            out.display(),
            rec.checkpoints.len()
        );
        return Ok(rec);
    }
    let bar = Bar::new("pretrain", plan.settings.steps, "steps");
    let started = std::time::Instant::now();
    let mut last = None;
    let rec = pretrace_lab::pretrain::pretrain_on(out, plan, device, &mut |e| match e {
        Event::Corpus { docs, tokens } => bar.println(&format!(
            "pretrain: {docs} documents, {tokens} tokens, tokenizer and 5 probe datasets in {}",
            out.display()
        )),
        Event::Step(l) => {
            bar.set(l.step);
            bar.set_message(format!("pretrain loss {:.3}", l.loss));
            last = Some(*l);
        }
        Event::Saved(s) => bar.println(&format!(
            "  step{:<5} held-out loss {:.3}{}",
            s.step,
            s.heldout_loss,
            last.map_or(String::new(), |l| format!(
                "  (train loss {:.3}, lr {:.2e})",
                l.loss, l.lr
            ))
        )),
    })?;
    bar.finish();
    eprintln!(
        "pretrain: {} parameters, {} steps of {}×{} tokens in {:.0} s; checkpoints step{{{}}} in {}",
        rec.parameters,
        plan.settings.steps,
        plan.batch,
        plan.seq,
        started.elapsed().as_secs_f64(),
        rec.checkpoints
            .iter()
            .map(|c| c.step.to_string())
            .collect::<Vec<_>>()
            .join(","),
        out.display()
    );
    Ok(rec)
}

fn corpus(a: CorpusArgs) -> Result<()> {
    pretrace_lab::pretrain::check_sizes(a.docs, a.probe_rows, a.vocab)
        .context("--docs, --probe-rows and --vocab")?;
    pretrace_core::OutDir::prepare(&a.out)?;
    let world = World::generate(a.seed, &Plan::default().world);
    eprintln!("lab corpus: generating {} documents", a.docs);
    let docs = training_text(&world, a.seed, a.docs);
    eprintln!(
        "lab corpus: generating 5 probe datasets of {} rows",
        a.probe_rows
    );
    let probes = probe_sets(&world, a.seed, a.probe_rows);
    for (concept, rows) in &probes {
        if rows.len() < a.probe_rows {
            anyhow::bail!(
                "{concept}: only {} distinct statements exist in this world; ask for at most that many --probe-rows",
                rows.len()
            );
        }
    }
    write(&a.out, &world, &docs, &probes)?;
    eprintln!(
        "lab corpus: training a tokenizer of at most {} tokens",
        a.vocab
    );
    let json = pretrace_lab::tokenizer::train(&docs, a.vocab)?;
    pretrace_store::write_atomic(&a.out.join("tokenizer.json"), json.as_bytes())?;
    let words: usize = docs.iter().map(|d| d.split(' ').count()).sum();
    eprintln!(
        "wrote {}: {} documents ({words} words), 5 probe datasets of {} rows, tokenizer.json",
        a.out.display(),
        docs.len(),
        a.probe_rows
    );
    Ok(())
}
