//! The report's experiment sections: what an experiment run (`pretrace run`, `pretrace demo`)
//! measured besides probes and the information plane (training curves, evaluations with and
//! without steering), and whether each of the paper's three observations appears in it.
//!
//! The verdicts are computed from the numbers by fixed rules stated in the report:
//! 1. **Linear separability early in pre-training**, per dataset, at the layer whose probe is best
//!    at the last checkpoint: *separable* if that accuracy is at least 0.65 (and, under the cv
//!    protocol, at least 0.1 above the shuffled-label control); *reached* at the first checkpoint
//!    whose accuracy is within 0.05 of the last one's; *early* if that step is at most a quarter
//!    of the last step; *present from initialization* if step 0 is already within 0.05.
//! 2. **Fitting then compression**, per dataset and estimator, at the steering layer (else the
//!    middle stored layer): I(T;X) rises from the first checkpoint to a peak at an interior
//!    checkpoint and then falls, each by at least 5% of its range over all checkpoints and layers
//!    of the dataset (and by at least 0.01).
//! 3. **Steering from a pre-training checkpoint improves trust at small cost**, per trust task,
//!    with the vector of the mid pre-training checkpoint: some α improves the metric by more than
//!    twice the unsteered result's standard error, more than two items' worth (2/n) and at least
//!    0.01, while the capability tasks' mean falls by at most 0.05.
//!
//! An observation *appears* when its rule holds for at least half of the datasets (tasks), *partly*
//! when it holds for at least one, and *does not appear* otherwise.

use crate::{InfoRow, ProbeRow};

/// The rules, as the report states them.
pub const RULES: &str = "1. Linear separability early in pre-training, per dataset, at the layer whose probe is best at the
   last checkpoint: separable if that accuracy is at least 0.65 (under the cv protocol, also at
   least 0.1 above the shuffled-label control); reached at the first checkpoint within 0.05 of the
   last one's accuracy; early if that step is at most a quarter of the last step; present from
   initialization (not learnt) if step 0 is already within 0.05.
2. Fitting then compression, per dataset and estimator, at the steering layer (else the middle
   stored layer): I(T;X) rises from the first checkpoint to a peak at an interior checkpoint and
   then falls, each by at least 5% of its range over the dataset's checkpoints and layers (and by
   at least 0.01).
3. Steering improves trust at small cost, per trust task, with the vector of the mid pre-training
   checkpoint: some alpha improves the metric by more than twice the unsteered standard error, more
   than two items' worth (2/n) and at least 0.01, while the mean of the capability tasks falls by at
   most 0.05. The alpha is
   chosen on the evaluation items themselves, as in the paper, so the gain is optimistic.
An observation appears when its rule holds for at least half of the datasets (tasks), appears in
part when it holds for at least one, and does not appear otherwise.";
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A (step, loss) point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    pub step: usize,
    pub loss: f64,
}

/// One evaluation result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// The vector's source checkpoint; `None` unsteered.
    pub source: Option<String>,
    /// Its role: `mid` (a pre-training checkpoint) or `chat` (the evaluated model itself).
    #[serde(default)]
    pub source_role: Option<String>,
    pub source_step: Option<u64>,
    /// The dataset the vector was built from.
    pub dataset: Option<String>,
    pub layer: Option<usize>,
    /// α as applied (signed).
    pub alpha: f64,
    pub task: String,
    pub metric: String,
    /// Not a number (`null` in JSON) where the task gives none.
    #[serde(deserialize_with = "nan_if_null")]
    pub value: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub stderr: f64,
    pub n: usize,
    pub higher_is_better: bool,
    /// `trust` or `capability`.
    pub role: String,
    /// For a trust task's row: the trust task this steering targets (the same as `task`); for a
    /// capability row: the trust task whose vector was applied.
    pub target: Option<String>,
}

/// JSON has no NaN: serde_json writes it as `null`, read back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// `experiment.json`: written by the experiment runner, read by the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub title: String,
    /// The experiment file and every command it ran, in order.
    pub file: String,
    pub commands: Vec<String>,
    /// Pre-training: loss per step, held-out loss per checkpoint.
    pub training: Vec<LossPoint>,
    pub heldout: Vec<LossPoint>,
    /// Instruction tuning: loss per step, and held-out answer loss before and after.
    pub sft: Vec<LossPoint>,
    pub sft_heldout: Option<(f64, f64)>,
    /// The layer steering vectors were built at and added to.
    pub steer_layer: Option<usize>,
    pub results: Vec<EvalRow>,
}

/// Whether an observation appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Appears,
    Partly,
    DoesNotAppear,
    /// The run has no results to judge it by.
    NotMeasured,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Appears => "appears",
            Verdict::Partly => "appears in part",
            Verdict::DoesNotAppear => "does not appear",
            Verdict::NotMeasured => "not measured",
        }
    }
    fn of(hits: usize, n: usize) -> Verdict {
        if n == 0 {
            Verdict::NotMeasured
        } else if 2 * hits >= n {
            Verdict::Appears
        } else if hits > 0 {
            Verdict::Partly
        } else {
            Verdict::DoesNotAppear
        }
    }
}

/// One observation: its verdict, and one line per dataset or task with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub title: String,
    pub verdict: Verdict,
    pub summary: String,
    pub details: Vec<String>,
}

fn by_step<'a, T>(rows: impl Iterator<Item = &'a T>, step: impl Fn(&T) -> Option<u64>) -> Vec<&'a T>
where
    T: 'a,
{
    let mut v: Vec<&T> = rows.collect();
    v.sort_by_key(|r| step(r).unwrap_or(u64::MAX));
    v
}

/// Observation 1 from probe results.
pub fn separability(probes: &[ProbeRow]) -> Observation {
    let title = "1. Linear separability early in pre-training".to_string();
    let datasets: BTreeSet<&str> = probes.iter().map(|r| r.dataset.as_str()).collect();
    let mut details = Vec::new();
    let mut hits = 0;
    let mut judged = 0;
    for ds in datasets {
        let rows: Vec<&ProbeRow> = probes
            .iter()
            .filter(|r| r.dataset == ds && r.step.is_some() && r.accuracy.is_some())
            .collect();
        let steps: BTreeSet<u64> = rows.iter().filter_map(|r| r.step).collect();
        let (Some(&first), Some(&last)) = (steps.iter().next(), steps.iter().last()) else {
            continue;
        };
        if steps.len() < 2 {
            continue;
        }
        judged += 1;
        let at = |s: u64, l: usize| {
            rows.iter()
                .find(|r| r.step == Some(s) && r.layer == l)
                .and_then(|r| r.accuracy)
        };
        // The best layer at the last checkpoint.
        let Some(best) = rows.iter().filter(|r| r.step == Some(last)).max_by(|a, b| {
            a.accuracy
                .partial_cmp(&b.accuracy)
                .unwrap_or(std::cmp::Ordering::Equal)
        }) else {
            continue;
        };
        let (layer, fin) = (best.layer, best.accuracy.unwrap_or(0.5));
        let control = best.control_accuracy;
        let separable = fin >= 0.65 && control.is_none_or(|c| fin >= c + 0.1);
        let curve: Vec<(u64, f64)> = steps
            .iter()
            .filter_map(|&s| at(s, layer).map(|a| (s, a)))
            .collect();
        let reached = curve.iter().find(|(_, a)| *a >= fin - 0.05).map(|c| c.0);
        let init = if first == 0 { at(0, layer) } else { None };
        let shown: Vec<String> = curve.iter().map(|(s, a)| format!("{s}: {a:.2}")).collect();
        let ctl = control.map_or(String::new(), |c| {
            format!(", shuffled-label control {c:.2}")
        });
        let verdict = if !separable {
            "not linearly separable at the end".to_string()
        } else if init.is_some_and(|a| a >= fin - 0.05) {
            "separable already at initialization (step 0): an input-level feature, not learnt"
                .to_string()
        } else if let Some(r) = reached.filter(|&r| (r as f64) <= last as f64 / 4.0) {
            hits += 1;
            format!("learnt early: within 0.05 of its final accuracy by step {r} of {last}")
        } else {
            format!(
                "learnt late: within 0.05 of its final accuracy only at step {}",
                reached.map_or("-".to_string(), |r| r.to_string())
            )
        };
        details.push(format!(
            "{ds} (layer {layer}, final accuracy {fin:.2}{ctl}): {verdict}. Accuracy by step: {}.",
            shown.join(", ")
        ));
    }
    let verdict = Verdict::of(hits, judged);
    Observation {
        title,
        verdict,
        summary: format!("learnt early in {hits} of {judged} datasets"),
        details,
    }
}

/// Observation 2 from information-plane results at `layer` (else the middle stored layer).
pub fn fit_compress(info: &[InfoRow], layer: Option<usize>) -> Observation {
    let title = "2. Fitting then compression in the information plane".to_string();
    let mut details = Vec::new();
    let (mut hits, mut judged) = (0, 0);
    let keys: BTreeSet<(&str, &str)> = info
        .iter()
        .map(|r| (r.dataset.as_str(), r.estimator.as_str()))
        .collect();
    for (ds, est) in keys {
        let rows: Vec<&InfoRow> = info
            .iter()
            .filter(|r| r.dataset == ds && r.estimator == est && r.step.is_some())
            .collect();
        let layers: BTreeSet<usize> = rows.iter().map(|r| r.layer).collect();
        let l = match layer.filter(|l| layers.contains(l)) {
            Some(l) => l,
            None => match layers.iter().nth(layers.len() / 2) {
                Some(&l) => l,
                None => continue,
            },
        };
        let curve: Vec<(u64, f64, f64)> =
            by_step(rows.iter().copied().filter(|r| r.layer == l), |r| r.step)
                .iter()
                .map(|r| (r.step.unwrap_or(0), r.i_tx, r.i_ty))
                .collect();
        if curve.len() < 3 {
            continue;
        }
        judged += 1;
        let all: Vec<f64> = rows.iter().map(|r| r.i_tx).collect();
        let range = all.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
            - all.iter().cloned().fold(f64::INFINITY, f64::min);
        let need = (0.05 * range).max(0.01);
        let (pk, peak) = curve
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.1))
            .fold((0, f64::NEG_INFINITY), |b, x| if x.1 > b.1 { x } else { b });
        let (first, last) = (curve[0].1, curve[curve.len() - 1].1);
        let rise = peak - first;
        let fall = peak - last;
        let holds = pk > 0 && pk + 1 < curve.len() && rise >= need && fall >= need;
        if holds {
            hits += 1;
        }
        let ty_first = curve[0].2;
        let ty_max = curve.iter().map(|c| c.2).fold(f64::NEG_INFINITY, f64::max);
        details.push(format!(
            "{ds} ({est}, layer {l}): I(T;X) {first:.3} → peak {peak:.3} at step {} → {last:.3} (rise {rise:.3}, fall {fall:.3}, threshold {need:.3}): {}. I(T;Y) {ty_first:.3} → max {ty_max:.3}.",
            curve[pk].0,
            if holds {
                "fits, then compresses"
            } else if pk + 1 == curve.len() {
                "still rising at the last checkpoint (no compression)"
            } else if rise < need {
                "no fitting phase (I(T;X) does not rise first)"
            } else {
                "no compression beyond the threshold"
            }
        ));
    }
    Observation {
        title,
        verdict: Verdict::of(hits, judged),
        summary: format!("fit then compress in {hits} of {judged} (dataset, estimator) pairs"),
        details,
    }
}

/// Observation 3 from evaluation rows.
pub fn steering(rows: &[EvalRow]) -> Observation {
    let title =
        "3. Steering with a pre-training checkpoint's vector improves trust at small cost to capability"
            .to_string();
    let base: BTreeMap<&str, &EvalRow> = rows
        .iter()
        .filter(|r| r.source.is_none())
        .map(|r| (r.task.as_str(), r))
        .collect();
    let cap_tasks: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.role == "capability")
        .map(|r| r.task.as_str())
        .collect();
    let cap_mean = |it: &mut dyn Iterator<Item = &EvalRow>| -> Option<f64> {
        let v: Vec<f64> = it.map(|r| r.value).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let base_cap = cap_mean(
        &mut rows
            .iter()
            .filter(|r| r.source.is_none() && r.role == "capability"),
    );
    let trust_tasks: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.role == "trust")
        .map(|r| r.task.as_str())
        .collect();
    let mut details = Vec::new();
    let (mut hits, mut judged) = (0, 0);
    for t in trust_tasks {
        let Some(b) = base.get(t) else { continue };
        let steered: Vec<&EvalRow> = rows
            .iter()
            .filter(|r| r.task == t && r.source_role.as_deref() == Some("mid"))
            .collect();
        if steered.is_empty() {
            continue;
        }
        judged += 1;
        let sign = if b.higher_is_better { 1.0 } else { -1.0 };
        // More than twice the standard error, and more than two items' worth (a standard error
        // of 0, when every item agrees, says nothing about how few items moved).
        let items = 2.0 / (b.n.max(1) as f64);
        let need = if b.stderr.is_finite() {
            (2.0 * b.stderr).max(items).max(0.01)
        } else {
            items.max(0.01)
        };
        let mut best: Option<(f64, f64, Option<f64>)> = None;
        let mut all = Vec::new();
        for r in &steered {
            let cap = cap_mean(&mut rows.iter().filter(|c| {
                c.role == "capability"
                    && c.target.as_deref() == Some(t)
                    && c.source == r.source
                    && c.alpha == r.alpha
            }));
            let gain = sign * (r.value - b.value);
            let cost = match (base_cap, cap) {
                (Some(b0), Some(c)) => Some(b0 - c),
                _ => None,
            };
            all.push(format!(
                "α {:+}: {:.3}{}",
                r.alpha,
                r.value,
                cost.map_or(String::new(), |c| format!(" (capability {:+.3})", -c))
            ));
            let ok = gain > need && cost.is_none_or(|c| c <= 0.05);
            if ok && best.is_none_or(|x| gain > x.1) {
                best = Some((r.alpha, gain, cost));
            }
        }
        let src = steered[0].source.clone().unwrap_or_default();
        let what = match best {
            Some((a, g, c)) => {
                hits += 1;
                format!(
                    "improves by {g:.3} at α {a:+}{}",
                    c.map_or(String::new(), |c| format!(", capability {:+.3}", -c))
                )
            }
            None => format!("no α improves it by more than {need:.3} with capability within 0.05"),
        };
        details.push(format!(
            "{t} ({}, {} better; vector from {src}): unsteered {:.3} ± {:.3}; {what}. All: {}.",
            b.metric,
            if b.higher_is_better {
                "higher"
            } else {
                "lower"
            },
            b.value,
            b.stderr,
            all.join("; ")
        ));
    }
    if !cap_tasks.is_empty() {
        details.push(format!(
            "Capability: the mean of {} unsteered is {}.",
            cap_tasks.into_iter().collect::<Vec<_>>().join(", "),
            base_cap.map_or("-".to_string(), |c| format!("{c:.3}"))
        ));
    }
    Observation {
        title,
        verdict: Verdict::of(hits, judged),
        summary: format!("holds for {hits} of {judged} trust tasks"),
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(ds: &str, step: u64, layer: usize, acc: f64) -> ProbeRow {
        ProbeRow {
            checkpoint: format!("step{step}"),
            step: Some(step),
            dataset: ds.into(),
            layer,
            accuracy: Some(acc),
            accuracy_std: None,
            control_accuracy: Some(0.5),
            n_train: 80,
            n_test: 20,
            note: String::new(),
        }
    }

    #[test]
    fn separability_tells_learnt_early_from_initial_late_and_absent() {
        let mut rows = Vec::new();
        for (s, a, b, c, d) in [
            (0u64, 0.5, 0.99, 0.5, 0.5),
            (100, 0.9, 1.0, 0.6, 0.52),
            (200, 0.92, 1.0, 0.7, 0.55),
            (400, 0.93, 1.0, 0.9, 0.5),
        ] {
            rows.push(probe("early", s, 1, a));
            rows.push(probe("early", s, 0, a - 0.2));
            rows.push(probe("init", s, 1, b));
            rows.push(probe("late", s, 1, c));
            rows.push(probe("none", s, 1, d));
        }
        let o = separability(&rows);
        assert_eq!(o.summary, "learnt early in 1 of 4 datasets");
        assert_eq!(o.verdict, Verdict::Partly);
        let find = |k: &str| o.details.iter().find(|d| d.starts_with(k)).unwrap().clone();
        assert!(
            find("early")
                .contains("learnt early: within 0.05 of its final accuracy by step 100 of 400"),
            "{}",
            find("early")
        );
        assert!(find("early").contains("layer 1"));
        assert!(find("init").contains("already at initialization"));
        assert!(find("late").contains("learnt late"));
        assert!(find("none").contains("not linearly separable"));
    }

    fn info(ds: &str, step: u64, tx: f64) -> InfoRow {
        InfoRow {
            checkpoint: format!("step{step}"),
            step: Some(step),
            dataset: ds.into(),
            layer: 2,
            estimator: "hsic".into(),
            i_tx: tx,
            i_ty: tx / 10.0,
            m: 100,
        }
    }

    #[test]
    fn fit_then_compress_needs_an_interior_peak_and_both_moves() {
        let mut rows = Vec::new();
        for (s, a, b, c) in [
            (0u64, 0.2, 0.2, 0.9),
            (10, 0.6, 0.4, 0.7),
            (20, 0.5, 0.6, 0.5),
            (30, 0.3, 0.8, 0.3),
        ] {
            rows.push(info("ic", s, a));
            rows.push(info("rising", s, b));
            rows.push(info("falling", s, c));
        }
        let o = fit_compress(&rows, Some(2));
        assert_eq!(
            o.summary,
            "fit then compress in 1 of 3 (dataset, estimator) pairs"
        );
        assert_eq!(o.verdict, Verdict::Partly);
        assert!(o
            .details
            .iter()
            .any(|d| d.starts_with("ic") && d.contains("fits, then compresses")));
        assert!(o
            .details
            .iter()
            .any(|d| d.starts_with("rising") && d.contains("still rising")));
        assert!(o
            .details
            .iter()
            .any(|d| d.starts_with("falling") && d.contains("no fitting phase")));
    }

    fn row(
        source: Option<&str>,
        task: &str,
        alpha: f64,
        value: f64,
        role: &str,
        target: Option<&str>,
        higher: bool,
    ) -> EvalRow {
        EvalRow {
            source: source.map(String::from),
            source_role: source.map(|_| "mid".to_string()),
            source_step: None,
            dataset: None,
            layer: Some(2),
            alpha,
            task: task.into(),
            metric: "m".into(),
            value,
            stderr: 0.01,
            n: 100,
            higher_is_better: higher,
            role: role.into(),
            target: target.map(String::from),
        }
    }

    #[test]
    fn steering_counts_a_gain_beyond_noise_within_the_capability_budget() {
        let rows = vec![
            row(None, "truth", 0.0, 0.60, "trust", None, true),
            row(None, "toxic", 0.0, 0.30, "trust", None, false),
            row(None, "qa", 0.0, 0.80, "capability", None, true),
            // truth improves by 0.05 with capability down 0.02: holds.
            row(
                Some("step300"),
                "truth",
                2.0,
                0.65,
                "trust",
                Some("truth"),
                true,
            ),
            row(
                Some("step300"),
                "qa",
                2.0,
                0.78,
                "capability",
                Some("truth"),
                true,
            ),
            // toxic improves a lot but capability collapses: does not hold.
            row(
                Some("step300"),
                "toxic",
                -2.0,
                0.10,
                "trust",
                Some("toxic"),
                false,
            ),
            row(
                Some("step300"),
                "qa",
                -2.0,
                0.60,
                "capability",
                Some("toxic"),
                true,
            ),
        ];
        let o = steering(&rows);
        assert_eq!(o.summary, "holds for 1 of 2 trust tasks");
        assert_eq!(o.verdict, Verdict::Appears);
        assert!(
            o.details[1].contains("improves by 0.050 at α +2, capability -0.020"),
            "{}",
            o.details[1]
        );
        assert!(o.details[0].starts_with("toxic") && o.details[0].contains("no α improves it"));
        assert_eq!(steering(&[]).verdict, Verdict::NotMeasured);
    }
}
