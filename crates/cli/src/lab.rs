//! `pretrace lab`: the mini pre-training lab.

use anyhow::Result;
use clap::{Args, Subcommand};
use pretrace_lab::corpus::{probe_sets, training_text, write};
use pretrace_lab::world::{Size, World};
use std::path::PathBuf;

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
    }
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
