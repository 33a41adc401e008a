//! `lab pretrain`: corpus, tokenizer and probe datasets, then pre-training from random
//! initialization with checkpoints `step{N}` saved densely early and sparser later.
//!
//! Layout of the output folder:
//! - `corpus.txt`, `world.json`, `probes/{concept}.csv`, `tokenizer.json` (see [`crate::corpus`]);
//! - `step{N}/`: Hugging Face checkpoints;
//! - `train.json`: the plan, every step's loss and learning rate, the held-out loss at each
//!   checkpoint; written last, so its presence (with the same plan) means the run is complete and
//!   a rerun reuses it.

use crate::corpus::{probe_sets, training_text, write};
use crate::train::{
    checkpoint_steps, evaluate, window_starts, Arch, Params, Settings, StepLog, TrainBatch, Trainer,
};
use crate::world::{Size, World};
use crate::{LabError, Result};
use candle_core::DType;
use pretrace_data::builders::SplitMix64;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything that determines a pre-training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub seed: u64,
    /// Towns, people and groups in the world.
    pub world: Size,
    /// Training documents generated.
    pub docs: usize,
    /// Rows per probe dataset.
    pub probe_rows: usize,
    /// The tokenizer's largest vocabulary.
    pub vocab: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_mlp: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    pub settings: Settings,
}

impl Default for Plan {
    fn default() -> Plan {
        let a = Arch::small(0);
        Plan {
            seed: 0,
            world: Size {
                towns: 16,
                people: 40,
                groups: 6,
            },
            docs: 20_000,
            probe_rows: 256,
            vocab: 2048,
            d_model: a.d_model,
            n_layers: a.n_layers,
            n_heads: a.n_heads,
            d_mlp: a.d_mlp,
            batch: 16,
            seq: 64,
            settings: Settings {
                steps: 600,
                lr: 3e-3,
                warmup: 30,
                min_lr_ratio: 0.1,
                weight_decay: 0.1,
                beta1: 0.9,
                beta2: 0.95,
                eps: 1e-8,
                clip: 1.0,
            },
        }
    }
}

impl Plan {
    pub fn arch(&self, vocab_size: usize) -> Arch {
        Arch {
            d_model: self.d_model,
            n_layers: self.n_layers,
            n_heads: self.n_heads,
            n_kv_heads: self.n_heads,
            d_mlp: self.d_mlp,
            vocab_size,
            max_positions: self.seq.max(256),
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-5,
        }
    }
}

/// A saved checkpoint and the held-out loss there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    pub step: usize,
    pub dir: String,
    pub heldout_loss: f64,
}

/// `train.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub plan: Plan,
    pub arch: Arch,
    pub parameters: usize,
    pub train_tokens: usize,
    pub heldout_tokens: usize,
    pub checkpoints: Vec<Saved>,
    pub log: Vec<StepLog>,
    pub seconds: f64,
}

/// What a run reports as it goes.
pub enum Event<'a> {
    /// The corpus, probes and tokenizer are written.
    Corpus {
        docs: usize,
        tokens: usize,
    },
    Step(&'a StepLog),
    Saved(&'a Saved),
}

/// The tokenized stream: every document encoded with its leading `<|endoftext|>`, concatenated.
fn encode_all(tok: &tokenizers::Tokenizer, docs: &[String]) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for d in docs {
        let e = tok
            .encode(d.as_str(), true)
            .map_err(|e| LabError::Invalid(format!("tokenizing the corpus: {e}")))?;
        out.extend_from_slice(e.get_ids());
    }
    Ok(out)
}

/// The completed run in `out`, if `train.json` there records this plan and every checkpoint exists.
pub fn completed(out: &Path, plan: &Plan) -> Option<Record> {
    let text = std::fs::read_to_string(out.join("train.json")).ok()?;
    let rec: Record = serde_json::from_str(&text).ok()?;
    (rec.plan == *plan
        && rec
            .checkpoints
            .iter()
            .all(|c| out.join(&c.dir).join("model.safetensors").is_file()))
    .then_some(rec)
}

/// Checkpoint directory names of a record, by step.
pub fn checkpoint_dirs(out: &Path, rec: &Record) -> Vec<(usize, PathBuf)> {
    rec.checkpoints
        .iter()
        .map(|c| (c.step, out.join(&c.dir)))
        .collect()
}

/// Most training documents the lab generates (about a gigabyte of text).
pub const MAX_DOCS: usize = 10_000_000;
/// Most rows per probe dataset: more than the lab's world has distinct statements.
pub const MAX_PROBE_ROWS: usize = 100_000;
/// Largest tokenizer vocabulary the lab trains.
pub const MAX_VOCAB: usize = 65_536;

/// Refuses corpus sizes the lab cannot serve, before any work: the bounds above, and a vocabulary
/// of at least the 256 bytes plus the end-of-text token.
pub fn check_sizes(docs: usize, probe_rows: usize, vocab: usize) -> Result<()> {
    let fail = |what: &str, v: usize, lo: usize, hi: usize| {
        Err(LabError::Invalid(format!(
            "{what} is {v}; the lab takes {lo} to {hi}"
        )))
    };
    if !(1..=MAX_DOCS).contains(&docs) {
        return fail("the number of documents", docs, 1, MAX_DOCS);
    }
    if !(10..=MAX_PROBE_ROWS).contains(&probe_rows) {
        return fail("the number of probe rows", probe_rows, 10, MAX_PROBE_ROWS);
    }
    if !(257..=MAX_VOCAB).contains(&vocab) {
        return fail("the vocabulary size", vocab, 257, MAX_VOCAB);
    }
    Ok(())
}

/// Runs (or reuses) the pre-training in `out`.
pub fn pretrain(out: &Path, plan: &Plan, on: &mut dyn FnMut(Event)) -> Result<Record> {
    pretrain_on(out, plan, &candle_core::Device::Cpu, on)
}

/// [`pretrain`] with the model trained on `device` (initialized on the host, so the run starts
/// from the same weights on every device).
pub fn pretrain_on(
    out: &Path,
    plan: &Plan,
    device: &candle_core::Device,
    on: &mut dyn FnMut(Event),
) -> Result<Record> {
    if let Some(rec) = completed(out, plan) {
        return Ok(rec);
    }
    if plan.seq < 2 || plan.batch == 0 || plan.probe_rows < 10 || plan.docs < 100 {
        return Err(LabError::Invalid(format!(
            "pre-training needs at least 100 documents, 10 probe rows, a batch of 1 and sequences of 2 tokens; got docs {} probe_rows {} batch {} seq {}",
            plan.docs, plan.probe_rows, plan.batch, plan.seq
        )));
    }
    check_sizes(plan.docs, plan.probe_rows, plan.vocab)?;
    let started = std::time::Instant::now();
    let world = World::generate(plan.seed, &plan.world);
    let docs = training_text(&world, plan.seed, plan.docs);
    let probes = probe_sets(&world, plan.seed, plan.probe_rows);
    for (concept, rows) in &probes {
        if rows.len() < plan.probe_rows {
            return Err(LabError::Invalid(format!(
                "{concept}: only {} distinct statements exist in this world; ask for at most that many probe rows",
                rows.len()
            )));
        }
    }
    write(out, &world, &docs, &probes)?;
    let tok_json = crate::tokenizer::train(&docs, plan.vocab)?;
    pretrace_store::write_atomic(&out.join("tokenizer.json"), tok_json.as_bytes())?;
    let tok: tokenizers::Tokenizer = tok_json
        .parse()
        .map_err(|e| LabError::Invalid(format!("tokenizer: {e}")))?;
    // The last 2% of documents are held out to measure the loss at each checkpoint.
    let cut = docs.len() - (docs.len() / 50).max(1);
    let train_stream = encode_all(&tok, &docs[..cut])?;
    let held_stream = encode_all(&tok, &docs[cut..])?;
    if train_stream.len() <= plan.seq + 1 || held_stream.len() <= plan.seq + 1 {
        return Err(LabError::Invalid(format!(
            "the corpus ({} tokens) is too short for sequences of {}; generate more documents",
            train_stream.len() + held_stream.len(),
            plan.seq
        )));
    }
    on(Event::Corpus {
        docs: docs.len(),
        tokens: train_stream.len() + held_stream.len(),
    });
    let held: Vec<TrainBatch> = {
        let n = (held_stream.len() - 1) / plan.seq;
        let starts: Vec<usize> = (0..n.min(64)).map(|i| i * plan.seq).collect();
        starts
            .chunks(plan.batch.max(1))
            .map(|c| TrainBatch::windows(&held_stream, c, plan.seq))
            .collect()
    };
    let arch = plan.arch(tok.get_vocab_size(true));
    let params = Params::init(&arch, plan.seed, DType::F32)?.on(device)?;
    let mut trainer = Trainer::new(&params, &plan.settings)?;
    let mut rng = SplitMix64::new(plan.seed ^ 0x5eed_ba7c);
    let save_at = checkpoint_steps(plan.settings.steps);
    let mut saved = Vec::new();
    let mut log = Vec::new();
    let eot = 0u32;
    let save = |step: usize,
                params: &Params,
                saved: &mut Vec<Saved>,
                on: &mut dyn FnMut(Event)|
     -> Result<()> {
        let dir = format!("step{step}");
        params.save(
            &out.join(&dir),
            &tok_json,
            eot,
            eot,
            &[
                ("pretrace_lab_step", step.to_string()),
                ("pretrace_lab_seed", plan.seed.to_string()),
            ],
        )?;
        let s = Saved {
            step,
            dir,
            heldout_loss: evaluate(params, &held)?,
        };
        on(Event::Saved(&s));
        saved.push(s);
        Ok(())
    };
    save(0, &params, &mut saved, on)?;
    for step in 1..=plan.settings.steps {
        let starts = window_starts(&mut rng, train_stream.len(), plan.seq, plan.batch);
        let batch = TrainBatch::windows(&train_stream, &starts, plan.seq);
        let l = trainer.step(&params, &batch)?;
        on(Event::Step(&l));
        log.push(l);
        if save_at.contains(&step) {
            save(step, &params, &mut saved, on)?;
        }
    }
    let rec = Record {
        plan: plan.clone(),
        arch,
        parameters: params.count(),
        train_tokens: train_stream.len(),
        heldout_tokens: held_stream.len(),
        checkpoints: saved,
        log,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&rec).map_err(|e| LabError::Invalid(e.to_string()))?;
    pretrace_store::write_atomic(&out.join("train.json"), json.as_bytes())?;
    Ok(rec)
}
