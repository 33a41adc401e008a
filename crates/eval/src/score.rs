//! Log-likelihood scoring in lm-evaluation-harness's conventions, with each item's context run once.
//!
//! A request is a (context, continuation) pair, tokenized as lm-evaluation-harness's
//! `_encode_pair` does: trailing spaces of the context move to the continuation, the context and
//! the whole string are tokenized without special tokens, and the continuation's tokens are the
//! whole string's tokens after the context's. The score is the sum of the continuation tokens' log
//! probabilities given everything before them, and `greedy` says whether each was the argmax.
//!
//! Every choice of an item shares its context: the context runs once (one unpadded row, with a KV
//! cache), the cache row is repeated for each choice, and the continuations run as one right-padded
//! batch on top. The result equals running each pair whole (to float rounding), and an item is
//! always computed the same way, so results do not depend on how many items run at once.
//!
//! Steering: with `Positions::Last`, the context's last token is steered (the prefill's last
//! position) and so is every continuation token, as if each had been generated one at a time: the
//! paper's semantics for generation, applied to scored text.

use crate::{EvalError, Result};
use candle_core::{DType, IndexOp};
use pretrace_model::{Batch, Hook, KvCache, Logits, Model, Padding, Positions, Tokenizer};
use pretrace_steer::Steer;

/// One tokenized request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub context: Vec<u32>,
    pub continuation: Vec<u32>,
}

/// A scored request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Sum of the continuation tokens' log-probabilities (natural log).
    pub loglikelihood: f64,
    /// Whether every continuation token was the most likely one.
    pub greedy: bool,
    pub tokens: usize,
}

/// lm-evaluation-harness's `_encode_pair` for a causal model (no special tokens). An empty context
/// becomes `[prefix]` (the BOS id, or EOS where there is none), as lm-evaluation-harness does.
pub fn encode_pair(
    tok: &Tokenizer,
    context: &str,
    continuation: &str,
    prefix: u32,
) -> Result<Request> {
    if context.is_empty() {
        return Ok(Request {
            context: vec![prefix],
            continuation: tok.encode_with(continuation, false)?,
        });
    }
    let trimmed =
        context.trim_end_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c));
    let (ctx, cont) = if trimmed.len() < context.len() {
        (
            trimmed,
            format!("{}{continuation}", &context[trimmed.len()..]),
        )
    } else {
        (context, continuation.to_string())
    };
    let whole = tok.encode_with(&format!("{ctx}{cont}"), false)?;
    let context_enc = tok.encode_with(ctx, false)?;
    let continuation = whole.get(context_enc.len()..).unwrap_or(&[]).to_vec();
    Ok(Request {
        context: context_enc,
        continuation,
    })
}

/// Log-softmax of one row of logits at `token`, and whether `token` is the row's argmax (ties go to
/// the lowest index, as `torch.argmax`).
fn token_logprob(row: &[f32], token: u32) -> (f64, bool) {
    let mut best = 0usize;
    let mut max = f32::NEG_INFINITY;
    for (i, &v) in row.iter().enumerate() {
        if v > max {
            max = v;
            best = i;
        }
    }
    let m = max as f64;
    let sum: f64 = row.iter().map(|&v| ((v as f64) - m).exp()).sum();
    (
        row[token as usize] as f64 - m - sum.ln(),
        best == token as usize,
    )
}

/// Scores groups of requests that share their context (each group's requests must have the same
/// context tokens). Each group runs alone, the same way whatever the concurrency: its context as one
/// unpadded row with a KV cache, then its continuations as one right-padded batch on the repeated
/// cache, so results do not depend on `concurrency` (the number of groups scored at once on the
/// thread pool). `max_len` left-truncates context+continuation as lm-evaluation-harness does
/// (`[-(max_len + 1):][:-1]` of the input). `progress(done)` is called as groups finish.
pub fn score_groups(
    model: &Model,
    groups: &[Vec<Request>],
    concurrency: usize,
    max_len: Option<usize>,
    steer: Option<&mut Steer>,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<Scored>>> {
    for (k, group) in groups.iter().enumerate() {
        let Some(first) = group.first() else {
            return Err(EvalError::Invalid(format!("item {k} has no choices")));
        };
        if group.iter().any(|r| r.context != first.context) {
            return Err(EvalError::Invalid(format!(
                "item {k}: its requests do not share one context"
            )));
        }
        if group.iter().any(|r| r.continuation.is_empty()) {
            return Err(EvalError::Invalid(format!(
                "item {k}: a continuation tokenizes to no tokens"
            )));
        }
    }
    crate::run_each(
        groups,
        concurrency,
        steer,
        |g, s| score_group(model, g, max_len, s),
        progress,
    )
}

/// One group: the context alone with a KV cache, then every continuation on a copy of its cache.
fn score_group(
    model: &Model,
    group: &[Request],
    max_len: Option<usize>,
    mut steer: Option<&mut Steer>,
) -> Result<Vec<Scored>> {
    let longest = group
        .iter()
        .map(|r| r.continuation.len())
        .max()
        .unwrap_or(0);
    let mut ctx = group[0].context.clone();
    if let Some(m) = max_len {
        // The input is context + continuation[..n-1]; it must fit in m tokens.
        let keep = (m + 1).saturating_sub(longest).max(1);
        if ctx.len() > keep {
            ctx = ctx[ctx.len() - keep..].to_vec();
        }
    }
    let mut cache = KvCache::new();
    let positions = steer.as_ref().map(|s| s.positions());
    let last = {
        let mut hooks: Vec<&mut dyn Hook> = Vec::new();
        if let Some(s) = steer.as_deref_mut() {
            hooks.push(s);
        }
        model
            .forward(
                &Batch::single(&ctx)?,
                &mut hooks,
                Logits::Last,
                Some(&mut cache),
            )?
            .ok_or_else(|| EvalError::Invalid("the model returned no logits".into()))?
    };
    let conts: Vec<Vec<u32>> = group.iter().map(|r| r.continuation.clone()).collect();
    let mut cache = cache.select_rows(&vec![0; conts.len()])?;
    let logits = {
        // Continuation tokens are steered as generated tokens would be: each is the last
        // position of its own step.
        if let (Some(s), Some(Positions::Last)) = (steer.as_deref_mut(), &positions) {
            s.set_positions(Positions::All);
        }
        let mut hooks: Vec<&mut dyn Hook> = Vec::new();
        if let Some(s) = steer.as_deref_mut() {
            hooks.push(s);
        }
        let l = model.forward(
            &Batch::pad(&conts, Padding::Right, 0)?,
            &mut hooks,
            Logits::All,
            Some(&mut cache),
        );
        if let (Some(s), Some(p)) = (steer, positions) {
            s.set_positions(p);
        }
        l?.ok_or_else(|| EvalError::Invalid("the model returned no logits".into()))?
    };
    let first: Vec<f32> = last.to_dtype(DType::F32)?.i(0)?.to_vec1()?;
    let mut scored = Vec::with_capacity(group.len());
    for (row, r) in group.iter().enumerate() {
        let n = r.continuation.len();
        let (mut ll, mut greedy) = token_logprob(&first, r.continuation[0]);
        if n > 1 {
            let rest: Vec<Vec<f32>> = logits.i((row, 0..n - 1))?.to_dtype(DType::F32)?.to_vec2()?;
            for (j, lrow) in rest.iter().enumerate() {
                let (lp, g) = token_logprob(lrow, r.continuation[j + 1]);
                ll += lp;
                greedy &= g;
            }
        }
        scored.push(Scored {
            loglikelihood: ll,
            greedy,
            tokens: n,
        });
    }
    Ok(scored)
}

/// Scores single requests whole, one forward pass each, no cache: the plain loop a reference
/// implementation runs, for tests and benchmarks.
pub fn score_plain(model: &Model, req: &Request) -> Result<Scored> {
    let mut input = req.context.clone();
    input.extend_from_slice(&req.continuation[..req.continuation.len() - 1]);
    let logits = model
        .forward(&Batch::single(&input)?, &mut [], Logits::All, None)?
        .ok_or_else(|| EvalError::Invalid("the model returned no logits".into()))?
        .i(0)?;
    let c = req.context.len();
    let rows: Vec<Vec<f32>> = logits.i(c - 1..input.len())?.to_vec2()?;
    let mut ll = 0.0;
    let mut greedy = true;
    for (row, &t) in rows.iter().zip(&req.continuation) {
        let (lp, g) = token_logprob(row, t);
        ll += lp;
        greedy &= g;
    }
    Ok(Scored {
        loglikelihood: ll,
        greedy,
        tokens: req.continuation.len(),
    })
}
