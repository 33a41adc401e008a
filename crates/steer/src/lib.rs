//! Steering vectors built from a stored layer's activations and 0/1 labels, with their provenance.
//!
//! Methods (all in f64 from the stored rows; the sign makes label 1 the positive side):
//! - `paper`: d = mean of the label-1 rows − mean of the label-0 rows over the chosen rows,
//!   unit-normalized, times the unbiased std of every row's projection on it;
//! - `mean-diff`: d itself, the paper's equation;
//! - `pca`: the first principal component of paired differences (the k-th label-1 row minus the
//!   k-th label-0 row, in file order, centred as scikit-learn's PCA centres them), unit length, as
//!   repeng's `pca_diff` builds it.
//!
//! ```
//! use pretrace_steer::{build, Method, Rows};
//! let x = [1.0f32, 0.0, 3.0, 0.0, 1.2, 0.1, 2.8, 0.1];
//! let v = build(&x, 2, &[0, 1, 0, 1], Method::MeanDiff, Rows::All).unwrap();
//! assert!((v.vector[0] - 1.8).abs() < 1e-6); // f32 inputs
//! ```

mod apply;
mod file;
pub mod gguf;

pub use apply::Steer;
pub use file::{VectorFile, FORMAT};

use faer::Mat;
use pretrace_info::ksg::principal_directions;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    #[error("{}", pretrace_core::one_line(.0))]
    Invalid(String),
}

/// How the vector is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Paper,
    MeanDiff,
    Pca,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Paper => "paper",
            Method::MeanDiff => "mean-diff",
            Method::Pca => "pca",
        }
    }
}

/// Which rows the direction is estimated from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// The first `floor(n / 2)` rows (the rest are the paper's evaluation half).
    FirstHalf,
    All,
}

/// A built vector.
#[derive(Debug, Clone)]
pub struct Built {
    pub vector: Vec<f64>,
    /// Rows the direction was estimated from (for `pca`, the rows in pairs).
    pub rows_used: usize,
    pub norm: f64,
}

fn err(m: String) -> SteerError {
    SteerError::Invalid(m)
}

fn mean_rows(x: &[f32], d: usize, rows: &[usize]) -> Vec<f64> {
    let mut m = vec![0f64; d];
    for &i in rows {
        for (a, &v) in m.iter_mut().zip(&x[i * d..(i + 1) * d]) {
            *a += v as f64;
        }
    }
    m.iter_mut().for_each(|a| *a /= rows.len() as f64);
    m
}

fn dot_row(x: &[f32], d: usize, i: usize, v: &[f64]) -> f64 {
    x[i * d..(i + 1) * d]
        .iter()
        .zip(v)
        .map(|(&a, b)| a as f64 * b)
        .sum()
}

/// Builds a vector from `[n, d]` activations `x` (row-major) and labels (0/1; other values are
/// refused).
pub fn build(
    x: &[f32],
    d: usize,
    labels: &[i64],
    method: Method,
    rows: Rows,
) -> Result<Built, SteerError> {
    let n = labels.len();
    if d == 0 || x.len() != n * d {
        return Err(err(format!(
            "activations hold {} values, expected {n} rows × {d}",
            x.len()
        )));
    }
    if let Some(bad) = labels.iter().find(|&&l| l != 0 && l != 1) {
        return Err(err(format!(
            "label {bad} is not 0 or 1; steering vectors need labeled rows"
        )));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(err(format!(
            "row {} holds a non-finite activation ({}); re-extract it",
            i / d,
            x[i]
        )));
    }
    let end = match rows {
        Rows::FirstHalf => n / 2,
        Rows::All => n,
    };
    let class = |c: i64| -> Vec<usize> { (0..end).filter(|&i| labels[i] == c).collect() };
    let (pos, neg) = (class(1), class(0));
    if pos.is_empty() || neg.is_empty() {
        return Err(err(format!(
            "the {} rows used hold {} rows of label 1 and {} of label 0; both classes are needed{}",
            end,
            pos.len(),
            neg.len(),
            if rows == Rows::FirstHalf {
                " (--rows all uses the whole file)"
            } else {
                ""
            }
        )));
    }
    let diff: Vec<f64> = mean_rows(x, d, &pos)
        .iter()
        .zip(mean_rows(x, d, &neg))
        .map(|(a, b)| a - b)
        .collect();
    let norm_of = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let (vector, rows_used) = match method {
        Method::MeanDiff => (diff, end),
        Method::Paper => {
            let len = norm_of(&diff);
            if len == 0.0 {
                return Err(err(
                    "the two classes have the same mean; there is no direction".into(),
                ));
            }
            let u: Vec<f64> = diff.iter().map(|a| a / len).collect();
            let proj: Vec<f64> = (0..n).map(|i| dot_row(x, d, i, &u)).collect();
            let mu = proj.iter().sum::<f64>() / n as f64;
            let var =
                proj.iter().map(|p| (p - mu) * (p - mu)).sum::<f64>() / (n as f64 - 1.0).max(1.0);
            (u.iter().map(|a| a * var.sqrt()).collect(), end)
        }
        Method::Pca => {
            let pairs = pos.len().min(neg.len());
            let dm = Mat::<f64>::from_fn(pairs, d, |k, j| {
                x[pos[k] * d + j] as f64 - x[neg[k] * d + j] as f64
            });
            let mut c = dm.clone();
            for j in 0..d {
                let mu = (0..pairs).map(|k| c[(k, j)]).sum::<f64>() / pairs as f64;
                for k in 0..pairs {
                    c[(k, j)] -= mu;
                }
            }
            let mut v = first_component(&c)
                .ok_or_else(|| err("the paired differences have no variance".into()))?;
            // Label 1 on the positive side.
            let side = |rows: &[usize]| {
                rows.iter().map(|&i| dot_row(x, d, i, &v)).sum::<f64>() / rows.len() as f64
            };
            if side(&pos) < side(&neg) {
                v.iter_mut().for_each(|a| *a = -*a);
            }
            (v, 2 * pairs)
        }
    };
    let norm = norm_of(&vector);
    Ok(Built {
        vector,
        rows_used,
        norm,
    })
}

/// The unit direction of the largest principal axis of `c` (`p × d`, centred); `None` when `c` is
/// zero.
fn first_component(c: &Mat<f64>) -> Option<Vec<f64>> {
    let v = principal_directions(c.as_ref(), 1);
    (v.ncols() == 1).then(|| (0..v.nrows()).map(|i| v[(i, 0)]).collect())
}

/// The safetensors file of one or more layers' vectors: a F32 `[d_model]` tensor per layer named
/// `blocks.{l}.hook_resid_post`, and `metadata` (provenance) as the file's string metadata.
pub fn to_safetensors(
    vectors: &BTreeMap<usize, Vec<f64>>,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, SteerError> {
    let bytes: Vec<(String, Vec<u8>, usize)> = vectors
        .iter()
        .map(|(l, v)| {
            (
                format!("blocks.{l}.hook_resid_post"),
                v.iter().flat_map(|&a| (a as f32).to_le_bytes()).collect(),
                v.len(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(name, b, len)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*len], b)
                .map(|v| (name.clone(), v))
                .map_err(|e| err(format!("{name}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let meta: std::collections::HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    safetensors::tensor::serialize(views, Some(meta)).map_err(|e| err(e.to_string()))
}
