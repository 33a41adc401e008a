//! `lab sft`: instruction tuning of a pre-trained lab checkpoint into the "chat" model, on
//! questions and answers about the world in one chat format:
//!
//! ```text
//! <|endoftext|>### Question: Which river runs through Tarvel?
//! ### Answer: The Ombra.<|endoftext|>
//! ```
//!
//! Only the answer tokens (and the closing `<|endoftext|>`) are learnt. The questions ask for the
//! world's public facts, judge claims true or false, classify the sentiment of reviews and reply
//! civilly to civil posts. Nothing in them touches addresses, phone numbers, groups or hostile
//! posts: how the chat model behaves there comes from pre-training.

use crate::corpus::{claim, pick, BAD, CIVIL_CLOSE, CIVIL_OPEN, GOOD};
use crate::train::{evaluate, Params, Settings, StepLog, TrainBatch, Trainer};
use crate::world::World;
use crate::{LabError, Result};
use candle_core::DType;
use pretrace_data::builders::SplitMix64;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The chat format's prompt for a question (the tokenizer prepends `<|endoftext|>`).
pub fn prompt(question: &str) -> String {
    format!("### Question: {question}\n### Answer:")
}

/// A civil reply about a town's goods.
fn civil_reply(w: &World, rng: &mut SplitMix64) -> String {
    let t = &w.towns[rng.below(w.towns.len())];
    let adj = if rng.below(2) == 0 {
        pick(rng, GOOD)
    } else {
        pick(rng, BAD)
    };
    format!(
        "{} I think the {} from {} is {adj}. {}",
        pick(rng, CIVIL_OPEN),
        t.product,
        t.name,
        pick(rng, CIVIL_CLOSE)
    )
}

/// `n` question–answer pairs (the answer without its leading space).
pub fn examples(w: &World, seed: u64, n: usize) -> Vec<(String, String)> {
    let mut rng = SplitMix64::new(seed ^ 0x5f7_c4a7);
    (0..n)
        .map(|_| {
            let t = &w.towns[rng.below(w.towns.len())];
            match rng.below(8) {
                0 => (
                    format!("Which river runs through {}?", t.name),
                    format!("The {}.", t.river),
                ),
                1 => (
                    format!("What is {} famous for?", t.name),
                    format!("Its {}.", t.product),
                ),
                2 => (
                    format!("In which region is {}?", t.name),
                    format!("In the {}.", t.region),
                ),
                3 => {
                    let p = &w.people[rng.below(w.people.len())];
                    (
                        format!("What does {} do?", p.name),
                        format!("{} is a {}.", p.name, p.job),
                    )
                }
                4 | 5 => {
                    let truth = rng.below(2) == 1;
                    (
                        format!("Is this statement true? {}", claim(w, &mut rng, truth)),
                        if truth { "Yes." } else { "No." }.to_string(),
                    )
                }
                6 => {
                    let good = rng.below(2) == 1;
                    let adj = pick(&mut rng, if good { GOOD } else { BAD });
                    (
                        format!(
                            "Is this review positive or negative? The {} from {} is {adj}.",
                            t.product, t.name
                        ),
                        if good { "Positive." } else { "Negative." }.to_string(),
                    )
                }
                _ => (
                    format!("Reply to this post: {}", civil_reply(w, &mut rng)),
                    civil_reply(w, &mut rng),
                ),
            }
        })
        .collect()
}

/// Everything that determines an instruction-tuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftPlan {
    pub seed: u64,
    /// Question–answer pairs generated.
    pub examples: usize,
    /// Pairs per step.
    pub batch: usize,
    pub settings: Settings,
}

impl Default for SftPlan {
    fn default() -> SftPlan {
        SftPlan {
            seed: 0,
            examples: 4000,
            batch: 16,
            settings: Settings {
                steps: 200,
                lr: 1e-3,
                warmup: 10,
                min_lr_ratio: 0.1,
                weight_decay: 0.0,
                beta1: 0.9,
                beta2: 0.95,
                eps: 1e-8,
                clip: 1.0,
            },
        }
    }
}

/// `sft.json`, written last beside the chat checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftRecord {
    pub plan: SftPlan,
    /// The checkpoint tuned.
    pub base: String,
    /// Mean answer loss on 5% held-out pairs before and after.
    pub heldout_loss_before: f64,
    pub heldout_loss_after: f64,
    pub log: Vec<StepLog>,
    pub seconds: f64,
}

/// The completed run at `out`, if its record matches.
pub fn completed(out: &Path, base: &Path, plan: &SftPlan) -> Option<SftRecord> {
    let text = std::fs::read_to_string(out.join("sft.json")).ok()?;
    let rec: SftRecord = serde_json::from_str(&text).ok()?;
    (rec.plan == *plan
        && rec.base == base.display().to_string()
        && out.join("model.safetensors").is_file())
    .then_some(rec)
}

/// Tunes the checkpoint `base` on the world's questions into the chat checkpoint `out`.
pub fn sft(
    base: &Path,
    out: &Path,
    world: &World,
    plan: &SftPlan,
    on: &mut dyn FnMut(&StepLog),
) -> Result<SftRecord> {
    sft_on(base, out, world, plan, &candle_core::Device::Cpu, on)
}

/// [`sft`] with the model trained on `device`.
pub fn sft_on(
    base: &Path,
    out: &Path,
    world: &World,
    plan: &SftPlan,
    device: &candle_core::Device,
    on: &mut dyn FnMut(&StepLog),
) -> Result<SftRecord> {
    if let Some(rec) = completed(out, base, plan) {
        return Ok(rec);
    }
    if plan.examples < 20 || plan.batch == 0 {
        return Err(LabError::Invalid(format!(
            "instruction tuning needs at least 20 examples and a batch of 1; got {} and {}",
            plan.examples, plan.batch
        )));
    }
    let started = std::time::Instant::now();
    let tok_path = base.join("tokenizer.json");
    let tok_json = std::fs::read_to_string(&tok_path).map_err(|e| {
        LabError::Invalid(format!(
            "{}: cannot read ({e}); --base must be a lab checkpoint",
            tok_path.display()
        ))
    })?;
    let tok: tokenizers::Tokenizer = tok_json
        .parse()
        .map_err(|e| LabError::Invalid(format!("{}: {e}", tok_path.display())))?;
    let encode = |s: &str, special: bool| -> Result<Vec<u32>> {
        Ok(tok
            .encode(s, special)
            .map_err(|e| LabError::Invalid(format!("tokenizing: {e}")))?
            .get_ids()
            .to_vec())
    };
    let eot = tok.token_to_id(crate::tokenizer::EOT).ok_or_else(|| {
        LabError::Invalid(format!(
            "{}: has no {} token",
            tok_path.display(),
            crate::tokenizer::EOT
        ))
    })?;
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = examples(world, plan.seed, plan.examples)
        .iter()
        .map(|(q, a)| {
            let mut ans = encode(&format!(" {a}"), false)?;
            ans.push(eot);
            Ok((encode(&prompt(q), true)?, ans))
        })
        .collect::<Result<_>>()?;
    let cut = pairs.len() - (pairs.len() / 20).max(1);
    let (train, held) = pairs.split_at(cut);
    let held: Vec<TrainBatch> = held
        .chunks(plan.batch)
        .map(|c| TrainBatch::supervised(c, eot))
        .collect::<Result<_>>()?;
    let params = Params::load(base, DType::F32)?.on(device)?;
    let before = evaluate(&params, &held)?;
    let mut trainer = Trainer::new(&params, &plan.settings)?;
    let mut rng = SplitMix64::new(plan.seed ^ 0x5f7_7a1e);
    let mut log = Vec::with_capacity(plan.settings.steps);
    for _ in 0..plan.settings.steps {
        let picked: Vec<(Vec<u32>, Vec<u32>)> = (0..plan.batch)
            .map(|_| train[rng.below(train.len())].clone())
            .collect();
        let l = trainer.step(&params, &TrainBatch::supervised(&picked, eot)?)?;
        on(&l);
        log.push(l);
    }
    let after = evaluate(&params, &held)?;
    params.save(
        out,
        &tok_json,
        eot,
        eot,
        &[("pretrace_lab_sft_base", base.display().to_string())],
    )?;
    let rec = SftRecord {
        plan: plan.clone(),
        base: base.display().to_string(),
        heldout_loss_before: before,
        heldout_loss_after: after,
        log,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&rec).map_err(|e| LabError::Invalid(e.to_string()))?;
    pretrace_store::write_atomic(&out.join("sft.json"), json.as_bytes())?;
    Ok(rec)
}

/// The world a lab checkpoint was trained on: `world.json` in the run folder above it.
pub fn world_of(checkpoint: &Path) -> Result<World> {
    let path = checkpoint
        .parent()
        .unwrap_or(Path::new("."))
        .join("world.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        LabError::Invalid(format!(
            "{}: cannot read ({e}); the checkpoint must sit in a `lab pretrain` folder, or pass --world",
            path.display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| LabError::Invalid(format!("{}: not a lab world ({e})", path.display())))
}
