//! `pretrace lab`: the mini pre-training lab.

use crate::progress::Bar;
use anyhow::Result;
use clap::{Args, Subcommand};
use pretrace_lab::corpus::{probe_sets, training_text, write};
use pretrace_lab::pretrain::{completed, Event, Plan, Record};
use pretrace_lab::world::{Size, World};
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
    #[arg(long, default_value_t = 400)]
    probe_rows: usize,
    /// The tokenizer's largest vocabulary.
    #[arg(long, default_value_t = 2048)]
    vocab: usize,
}

pub fn run_lab(a: LabArgs) -> Result<()> {
    match a.command {
        LabCommand::Corpus(c) => corpus(c),
        LabCommand::Pretrain(p) => pretrain(&p.out, &p.plan()).map(|_| ()),
    }
}

/// Runs (or reuses) a pre-training run with a progress display.
pub fn pretrain(out: &Path, plan: &Plan) -> Result<Record> {
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
    let rec = pretrace_lab::pretrain::pretrain(out, plan, &mut |e| match e {
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
    if a.probe_rows < 10 || a.docs == 0 {
        anyhow::bail!("--docs must be at least 1 and --probe-rows at least 10");
    }
    let world = World::generate(a.seed, &Size::default());
    let docs = training_text(&world, a.seed, a.docs);
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
