//! The cross-validated protocol: stratified k-fold with a seed, standardization fitted on the
//! training folds only, mean and spread of test accuracy over folds, and a control task (the same
//! probe on shuffled labels) so selectivity (accuracy − control) can be read.

use crate::{fit_standardized, standardization, LogRegOptions, ProbeError};
use pretrace_data::builders::SplitMix64 as Rng;

/// Settings of the cross-validated protocol.
#[derive(Debug, Clone, Copy)]
pub struct CvOptions {
    pub folds: usize,
    pub seed: u64,
}

impl Default for CvOptions {
    fn default() -> Self {
        CvOptions { folds: 5, seed: 0 }
    }
}

/// One cell's cross-validated result.
#[derive(Debug, Clone)]
pub struct CvResult {
    /// Mean test accuracy over folds.
    pub accuracy: f64,
    /// Population standard deviation of the folds' test accuracies.
    pub accuracy_std: f64,
    /// Mean test accuracy of the same protocol on a seeded permutation of the labels.
    pub control_accuracy: f64,
    /// Training rows per fold (the smallest training set of any fold).
    pub n_train: usize,
    /// Rows tested over all folds (every row once).
    pub n_test: usize,
    pub constant_features: usize,
    /// Folds whose training rows held one class only (that fold predicts it).
    pub single_class_folds: usize,
    /// Largest iteration count of any fold's fit.
    pub n_iter: usize,
    /// Whether every fit stopped on a convergence test.
    pub converged: bool,
}

/// Stratified fold of every row: each class's rows are shuffled with the seed, the classes are laid
/// end to end (class 0 first) and dealt to the folds in turn, so every fold gets its share of each
/// class and fold sizes differ by at most one.
pub fn stratified_folds(labels: &[i64], folds: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut fold = vec![0usize; labels.len()];
    let mut next = 0usize;
    for class in [0i64, 1] {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut rows);
        for i in rows {
            fold[i] = next % folds;
            next += 1;
        }
    }
    fold
}

/// A seeded permutation of the labels: the control task's targets.
pub fn shuffled_labels(labels: &[i64], seed: u64) -> Vec<i64> {
    let mut v = labels.to_vec();
    // A different stream from the folds' so the permutation is not aligned with them.
    Rng::new(seed ^ 0xC0_4E_7A_01).shuffle(&mut v);
    v
}

/// Test accuracy per fold of the probe trained on the other folds.
fn fold_accuracies(
    x: &[f32],
    d: usize,
    labels: &[i64],
    fold: &[usize],
    k: usize,
    opts: &LogRegOptions,
    stats: &mut FoldStats,
) -> Vec<f64> {
    let n = labels.len();
    let mut acc = Vec::with_capacity(k);
    for f in 0..k {
        let train: Vec<usize> = (0..n).filter(|&i| fold[i] != f).collect();
        let test: Vec<usize> = (0..n).filter(|&i| fold[i] == f).collect();
        if test.is_empty() {
            continue;
        }
        let mut xt = Vec::with_capacity(train.len() * d);
        for &i in &train {
            xt.extend_from_slice(&x[i * d..(i + 1) * d]);
        }
        let (mean, scale, constant) = standardization(&xt, d);
        stats.constant = stats.constant.max(constant);
        stats.n_train = stats.n_train.min(train.len());
        let y: Vec<f64> = train.iter().map(|&i| labels[i] as f64).collect();
        let ones = y.iter().filter(|&&v| v == 1.0).count();
        let z = |i: usize| -> Vec<f64> {
            x[i * d..(i + 1) * d]
                .iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((&v, m), s)| (v as f64 - m) * s)
                .collect()
        };
        let right = if ones == 0 || ones == train.len() {
            stats.single_class += 1;
            let class = (ones > 0) as i64;
            test.iter().filter(|&&i| labels[i] == class).count()
        } else {
            let model = fit_standardized(&xt, d, &mean, &scale, &y, opts);
            stats.n_iter = stats.n_iter.max(model.n_iter);
            stats.converged &= model.converged;
            test.iter()
                .filter(|&&i| model.predict(&z(i)) == labels[i])
                .count()
        };
        acc.push(right as f64 / test.len() as f64);
    }
    acc
}

struct FoldStats {
    constant: usize,
    n_train: usize,
    single_class: usize,
    n_iter: usize,
    converged: bool,
}

/// The cross-validated protocol on `[n, d]` features with 0/1 labels.
pub fn cv_probe(
    x: &[f32],
    d: usize,
    labels: &[i64],
    cv: &CvOptions,
    opts: &LogRegOptions,
) -> Result<CvResult, ProbeError> {
    let n = labels.len();
    crate::check_cell(x, d, labels)?;
    if cv.folds < 2 {
        return Err(ProbeError::Invalid(format!(
            "--folds {} is too few; cross-validation needs at least 2",
            cv.folds
        )));
    }
    if n < cv.folds {
        return Err(ProbeError::Invalid(format!(
            "{n} rows cannot be split into {} folds; use fewer --folds",
            cv.folds
        )));
    }
    let fold = stratified_folds(labels, cv.folds, cv.seed);
    let mut stats = FoldStats {
        constant: 0,
        n_train: usize::MAX,
        single_class: 0,
        n_iter: 0,
        converged: true,
    };
    let acc = fold_accuracies(x, d, labels, &fold, cv.folds, opts, &mut stats);
    let single_class_folds = stats.single_class;
    let control = shuffled_labels(labels, cv.seed);
    let control_acc = fold_accuracies(x, d, &control, &fold, cv.folds, opts, &mut stats);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let m = mean(&acc);
    let var = acc.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / acc.len() as f64;
    Ok(CvResult {
        accuracy: m,
        accuracy_std: var.sqrt(),
        control_accuracy: mean(&control_acc),
        n_train: stats.n_train,
        n_test: n,
        constant_features: stats.constant,
        single_class_folds,
        n_iter: stats.n_iter,
        converged: stats.converged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_stratified_balanced_and_seeded() {
        let labels: Vec<i64> = (0..103).map(|i| (i % 3 == 0) as i64).collect();
        let f = stratified_folds(&labels, 5, 7);
        for k in 0..5 {
            let size = f.iter().filter(|&&x| x == k).count();
            assert!((20..=21).contains(&size), "fold {k} has {size} rows");
            let ones = (0..103).filter(|&i| f[i] == k && labels[i] == 1).count();
            assert!((6..=7).contains(&ones), "fold {k} has {ones} positives");
        }
        assert_eq!(f, stratified_folds(&labels, 5, 7));
        assert_ne!(f, stratified_folds(&labels, 5, 8));
        let c = shuffled_labels(&labels, 7);
        assert_eq!(c.iter().sum::<i64>(), labels.iter().sum::<i64>());
        assert_ne!(c, labels);
    }

    #[test]
    fn separable_features_beat_their_control() {
        // One informative feature plus noise: accuracy near 1, control near chance.
        let mut rng = Rng::new(3);
        let n = 200;
        let d = 4;
        let labels: Vec<i64> = (0..n).map(|i| (i % 2) as i64).collect();
        let mut x = Vec::new();
        for &l in &labels {
            for j in 0..d {
                let noise = rng.next_f64() - 0.5;
                let v = if j == 0 {
                    l as f64 * 2.0 + noise
                } else {
                    noise
                };
                x.push(v as f32);
            }
        }
        let r = cv_probe(
            &x,
            d,
            &labels,
            &CvOptions::default(),
            &LogRegOptions::default(),
        )
        .unwrap();
        assert!(r.accuracy > 0.98, "{r:?}");
        assert!(r.control_accuracy < 0.7, "{r:?}");
        assert_eq!(r.n_test, n);
        assert_eq!(r.n_train, 160);
        assert!(r.accuracy_std < 0.05);
    }
}
