//! Linear probes, the pipeline's first analysis of an activation store: a logistic-regression probe
//! per (checkpoint, layer, dataset), fitted exactly as the paper's code fits it (scikit-learn's
//! `LogisticRegression()` on z-scored features, first 80% of rows train).
//!
//! ```
//! use pretrace_probe::{paper_probe, LogRegOptions};
//! // Four rows of two features, row-major; labels 0/1.
//! let x = [0.0f32, 1.0, 1.0, 0.0, 0.1, 0.9, 0.9, 0.2, 0.0, 1.1];
//! let r = paper_probe(&x, 2, &[0, 1, 0, 1, 0], &LogRegOptions::default()).unwrap();
//! assert_eq!(r.n_train, 4);
//! ```

mod cv;
mod linesearch;
pub mod logreg;
mod sweep;

pub use cv::{cv_probe, shuffled_labels, stratified_folds, CvOptions, CvResult};
pub use logreg::{fit, fit_standardized, Feature, LogReg, LogRegOptions};
pub use sweep::{
    csv_field, for_each_entry, probe_store, select_entries, write_results, write_table, Protocol,
    Row, Selection,
};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Invalid(String),
}

/// The paper's z-score per column: the mean over all rows and `1 / std` (unbiased) as the scale;
/// constant columns (std 0) get scale 0, so they standardize to 0. Returns `(mean, scale, constant)`.
pub fn standardization(x: &[f32], d: usize) -> (Vec<f64>, Vec<f64>, usize) {
    let n = x.len() / d.max(1);
    let mut mean = vec![0f64; d];
    for row in x.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0f64; d];
    for row in x.chunks_exact(d) {
        for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
            let c = v as f64 - m;
            *s += c * c;
        }
    }
    let std: Vec<f64> = var
        .iter()
        .map(|s| (s / (n as f64 - 1.0).max(1.0)).sqrt())
        .collect();
    let constant = std.iter().filter(|&&s| s == 0.0).count();
    let scale = std
        .iter()
        .map(|&s| if s == 0.0 { 0.0 } else { 1.0 / s })
        .collect();
    (mean, scale, constant)
}

/// The checks every protocol makes on a cell: shape, 0/1 labels, finite activations.
pub(crate) fn check_cell(x: &[f32], d: usize, labels: &[i64]) -> Result<(), ProbeError> {
    let n = labels.len();
    if d == 0 || x.len() != n * d {
        return Err(ProbeError::Invalid(format!(
            "features hold {} values, expected {n} rows × {d}",
            x.len()
        )));
    }
    if let Some(bad) = labels.iter().find(|&&l| l != 0 && l != 1) {
        return Err(ProbeError::Invalid(format!(
            "label {bad} is not 0 or 1; probes need labeled rows"
        )));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(ProbeError::Invalid(format!(
            "row {} holds a non-finite activation ({})",
            i / d,
            x[i]
        )));
    }
    Ok(())
}

/// One probe's result.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    /// Test accuracy; `None` when it cannot be measured (no test rows).
    pub accuracy: Option<f64>,
    pub n_train: usize,
    pub n_test: usize,
    /// Columns with zero variance (set to 0).
    pub constant_features: usize,
    /// Set when the training rows hold one class only: the probe then predicts that class.
    pub single_class: Option<i64>,
    pub model: Option<LogReg>,
}

/// The paper's protocol on `[n, d]` features: z-score over all rows, the first `floor(0.8 n)` rows
/// train and the rest test, scikit-learn's `LogisticRegression()`, test accuracy.
pub fn paper_probe(
    x: &[f32],
    d: usize,
    labels: &[i64],
    opts: &LogRegOptions,
) -> Result<ProbeResult, ProbeError> {
    let n = labels.len();
    check_cell(x, d, labels)?;
    let (mean, scale, constant) = standardization(x, d);
    let z_row = |i: usize| -> Vec<f64> {
        x[i * d..(i + 1) * d]
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((&v, m), s)| (v as f64 - m) * s)
            .collect()
    };
    let n_train = (n as f64 * 0.8).floor() as usize;
    let n_test = n - n_train;
    let y: Vec<f64> = labels[..n_train].iter().map(|&l| l as f64).collect();
    let ones = labels[..n_train].iter().filter(|&&l| l == 1).count();
    let test = |predict: &dyn Fn(&[f64]) -> i64| -> Option<f64> {
        (n_test > 0).then(|| {
            let right = (n_train..n)
                .filter(|&i| predict(&z_row(i)) == labels[i])
                .count();
            right as f64 / n_test as f64
        })
    };
    if n_train == 0 || ones == 0 || ones == n_train {
        let class = (ones > 0) as i64;
        return Ok(ProbeResult {
            accuracy: test(&|_| class),
            n_train,
            n_test,
            constant_features: constant,
            single_class: Some(class),
            model: None,
        });
    }
    let model = fit_standardized(&x[..n_train * d], d, &mean, &scale, &y, opts);
    Ok(ProbeResult {
        accuracy: test(&|row| model.predict(row)),
        n_train,
        n_test,
        constant_features: constant,
        single_class: None,
        model: Some(model),
    })
}
