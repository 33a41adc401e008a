//! Evaluation: the pipeline's last step before the report. Multiple-choice tasks are scored by
//! log-likelihood in lm-evaluation-harness's conventions (its prompts, its tokenization of
//! context and continuation, `acc` and length-normalized `acc_norm`), `lambada` by the perplexity
//! and accuracy of the last word, and the paper's trust evaluations by greedy generation.
//!
//! ```no_run
//! use pretrace_eval::{score::encode_pair, tasks::{mc_items, Task}, mc_scores};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ckpt = pretrace_model::Model::load("model".as_ref(), &Default::default())?;
//! let table = pretrace_data::Table::read("ARC-Easy/validation/data-00000-of-00001.arrow".as_ref())?;
//! let items = mc_items(Task::ArcEasy, &table, None, 0)?;
//! let scored = mc_scores(&ckpt.model, ckpt.tokenizer.as_ref().unwrap(), &items, 8, None, &mut |_| {})?;
//! let m = pretrace_eval::mc_metrics(Task::ArcEasy, &items, &scored);
//! println!("acc {} acc_norm {}", m.metrics["acc"], m.metrics["acc_norm"]);
//! # Ok(()) }
//! ```

pub mod pyliteral;
pub mod roberta;
pub mod score;
pub mod tasks;
pub mod trust;

use pretrace_model::{Model, Tokenizer};
use pretrace_steer::Steer;
use score::{encode_pair, score_groups, Request, Scored};
use std::collections::BTreeMap;
use tasks::{Gold, LlItem, McItem, Task, TARGET_DELIMITER};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Data(#[from] pretrace_data::DataError),
    #[error(transparent)]
    Model(#[from] pretrace_model::ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, EvalError>;

/// Runs `f` on every item, `concurrency` items at once on the thread pool, each with its own copy of
/// the steering hook (`steer` keeps the residual norms the first copy recorded). Results come back in
/// item order; `progress(done)` is called as items finish.
pub fn run_each<T: Sync, R: Send>(
    items: &[T],
    concurrency: usize,
    mut steer: Option<&mut Steer>,
    f: impl Fn(&T, Option<&mut Steer>) -> Result<R> + Sync,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<R>> {
    use rayon::prelude::*;
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(concurrency.max(1)) {
        let template = steer.as_deref().cloned();
        let done: Vec<(R, Option<Steer>)> = chunk
            .par_iter()
            .map(|item| {
                let mut s = template.clone();
                Ok((f(item, s.as_mut())?, s))
            })
            .collect::<Result<_>>()?;
        for (r, s) in done {
            if let (Some(dst), Some(src)) = (steer.as_deref_mut(), s.as_ref()) {
                dst.absorb_norms(src);
            }
            out.push(r);
        }
        progress(out.len());
    }
    Ok(out)
}

/// The id lm-evaluation-harness puts before an empty context: BOS, or EOS where there is none.
pub fn prefix_token(model: &Model) -> u32 {
    model
        .config
        .bos_token_id
        .or_else(|| model.config.eos_token_ids.first().copied())
        .unwrap_or(0)
}

/// The requests of one multiple-choice item: `(context, " " + choice)` per choice.
pub fn mc_requests(tok: &Tokenizer, item: &McItem, prefix: u32) -> Result<Vec<Request>> {
    item.choices
        .iter()
        .map(|c| {
            encode_pair(
                tok,
                &item.context,
                &format!("{TARGET_DELIMITER}{c}"),
                prefix,
            )
        })
        .collect()
}

/// Scores every choice of every item, `batch` items at once (results do not depend on it).
pub fn mc_scores(
    model: &Model,
    tok: &Tokenizer,
    items: &[McItem],
    batch: usize,
    steer: Option<&mut Steer>,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<Scored>>> {
    let prefix = prefix_token(model);
    let groups = items
        .iter()
        .map(|it| mc_requests(tok, it, prefix))
        .collect::<Result<Vec<_>>>()?;
    score_groups(
        model,
        &groups,
        batch,
        model.config.max_positions,
        steer,
        progress,
    )
}

/// Per-item results and the task's metrics.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub metrics: BTreeMap<String, f64>,
    /// One JSON object per item, in data order.
    pub items: Vec<serde_json::Value>,
}

fn argmax(v: impl Iterator<Item = f64>) -> usize {
    let mut best = (0usize, f64::NEG_INFINITY);
    for (i, x) in v.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// The standard error of a mean, as lm-evaluation-harness's `mean_stderr` (sample std, n − 1).
fn stderr(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return f64::NAN;
    }
    let m = xs.iter().sum::<f64>() / n;
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() / n.sqrt()
}

/// lm-evaluation-harness's multiple-choice metrics: `acc` (argmax of the log-likelihoods), `acc_norm`
/// (argmax of log-likelihood divided by the choice's length in characters, `len(choice)` in its
/// code), and for `truthfulqa_mc2` the normalized probability mass of the true choices.
pub fn mc_metrics(task: Task, items: &[McItem], scored: &[Vec<Scored>]) -> Evaluated {
    let mut accs = Vec::with_capacity(items.len());
    let mut norms = Vec::with_capacity(items.len());
    let mut rows = Vec::with_capacity(items.len());
    for (i, (item, s)) in items.iter().zip(scored).enumerate() {
        let lls: Vec<f64> = s.iter().map(|x| x.loglikelihood).collect();
        let pred = argmax(lls.iter().copied());
        let pred_norm = argmax(
            lls.iter()
                .zip(&item.choices)
                .map(|(l, c)| l / c.chars().count() as f64),
        );
        let (acc, acc_norm, gold) = match &item.gold {
            Gold::Index(g) => (
                (pred == *g) as u8 as f64,
                (pred_norm == *g) as u8 as f64,
                serde_json::json!(g),
            ),
            Gold::Labels(labels) => {
                let m = lls.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let p: Vec<f64> = lls.iter().map(|l| (l - m).exp()).collect();
                let z: f64 = p.iter().sum();
                let mass = p
                    .iter()
                    .zip(labels)
                    .filter(|(_, &l)| l == 1)
                    .map(|(p, _)| p / z)
                    .sum();
                (mass, f64::NAN, serde_json::json!(labels))
            }
        };
        accs.push(acc);
        norms.push(acc_norm);
        let mut row = serde_json::json!({
            "index": i,
            "loglikelihoods": lls,
            "gold": gold,
            "acc": acc,
            "tokens": s.iter().map(|x| x.tokens).collect::<Vec<_>>(),
            "greedy": s.iter().map(|x| x.greedy).collect::<Vec<_>>(),
        });
        if task.metrics().contains(&"acc_norm") {
            row["acc_norm"] = serde_json::json!(acc_norm);
        }
        rows.push(row);
    }
    let n = accs.len().max(1) as f64;
    let mut metrics = BTreeMap::new();
    metrics.insert("acc".to_string(), accs.iter().sum::<f64>() / n);
    metrics.insert("acc_stderr".to_string(), stderr(&accs));
    if task.metrics().contains(&"acc_norm") {
        metrics.insert("acc_norm".to_string(), norms.iter().sum::<f64>() / n);
        metrics.insert("acc_norm_stderr".to_string(), stderr(&norms));
    }
    Evaluated {
        metrics,
        items: rows,
    }
}

/// Scores lambada-style requests, `batch` at once, and computes lm-evaluation-harness's
/// `perplexity` (exp of minus the mean log-likelihood of the last word) and `acc` (the last word is
/// the greedy continuation).
pub fn lambada(
    model: &Model,
    tok: &Tokenizer,
    items: &[LlItem],
    batch: usize,
    steer: Option<&mut Steer>,
    progress: &mut dyn FnMut(usize),
) -> Result<Evaluated> {
    let prefix = prefix_token(model);
    let groups = items
        .iter()
        .map(|it| {
            Ok(vec![encode_pair(
                tok,
                &it.context,
                &it.continuation,
                prefix,
            )?])
        })
        .collect::<Result<Vec<_>>>()?;
    let scored = score_groups(
        model,
        &groups,
        batch,
        model.config.max_positions,
        steer,
        progress,
    )?;
    let lls: Vec<f64> = scored.iter().map(|s| s[0].loglikelihood).collect();
    let accs: Vec<f64> = scored.iter().map(|s| s[0].greedy as u8 as f64).collect();
    let n = lls.len().max(1) as f64;
    let mut metrics = BTreeMap::new();
    metrics.insert(
        "perplexity".to_string(),
        (-lls.iter().sum::<f64>() / n).exp(),
    );
    metrics.insert("acc".to_string(), accs.iter().sum::<f64>() / n);
    metrics.insert("acc_stderr".to_string(), stderr(&accs));
    let items = scored
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({
                "index": i,
                "loglikelihood": s[0].loglikelihood,
                "greedy": s[0].greedy,
                "tokens": s[0].tokens,
            })
        })
        .collect();
    Ok(Evaluated { metrics, items })
}
