//! The information plane: estimates of I(T;X) and I(T;Y) between a layer's representation T, the
//! input X (the lowest stored layer) and the label Y, per (checkpoint, dataset, layer) of an
//! activation store, with the paper's estimator and better-founded ones beside it.
//!
//! ```
//! use faer::Mat;
//! use pretrace_info::hsic::nhsic_paper;
//! let a = Mat::<f64>::from_fn(20, 3, |i, j| ((i * 3 + j) as f64).sin());
//! let b = Mat::<f64>::from_fn(20, 1, |i, _| (i % 2) as f64);
//! let v = nhsic_paper(a.as_ref(), b.as_ref(), 50.0);
//! assert!(v.is_finite() && v > 0.0);
//! ```

pub mod hsic;
pub mod ksg;
mod sweep;

pub use sweep::{cell_estimates, infoplane_store, write_results, Estimator, Row, Settings};

#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    #[error("{0}")]
    Invalid(String),
}
