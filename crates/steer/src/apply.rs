//! Applying a vector through the model's hooks, and reporting how its size compares with the
//! residual stream it is added to.

use candle_core::{DType, Tensor};
use pretrace_model::{AddVector, Hook, Positions, Site, SiteCtx};

/// Adds `alpha · v` at `blocks.{layer}.hook_resid_post` and records the norms of the residual stream
/// it is added to (valid positions of the first forward call, before the addition).
#[derive(Debug, Clone)]
pub struct Steer {
    add: AddVector,
    layer: usize,
    vector_norm: f64,
    residual_norms: Vec<f64>,
}

impl Steer {
    /// `vector` is `[d_model]`.
    pub fn new(
        layer: usize,
        vector: &[f32],
        alpha: f64,
        positions: Positions,
    ) -> pretrace_model::Result<Steer> {
        let max = vector.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
        if !alpha.is_finite() || alpha.abs() * max > f32::MAX as f64 {
            return Err(pretrace_model::ModelError::Invalid(format!(
                "steering alpha {alpha} is not usable: α·v must be a finite f32 (the vector's largest entry is {max:e}); give a finite alpha of moderate size"
            )));
        }
        let vector_norm = vector
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            .sqrt();
        Ok(Steer {
            add: AddVector {
                site: Site::ResidPost(layer),
                vector: Tensor::new(vector, &candle_core::Device::Cpu)?,
                alpha,
                positions,
            },
            layer,
            vector_norm,
            residual_norms: Vec::new(),
        })
    }

    /// Takes the residual norms `other` recorded if this hook has none yet (for hooks cloned to run
    /// on several threads).
    pub fn absorb_norms(&mut self, other: &Steer) {
        if self.residual_norms.is_empty() {
            self.residual_norms = other.residual_norms.clone();
        }
    }

    /// The positions the vector is added at.
    pub fn positions(&self) -> Positions {
        self.add.positions.clone()
    }

    /// Changes the positions the vector is added at (for the next calls).
    pub fn set_positions(&mut self, p: Positions) {
        self.add.positions = p;
    }

    /// ‖v‖.
    pub fn vector_norm(&self) -> f64 {
        self.vector_norm
    }

    /// ‖α·v‖.
    pub fn added_norm(&self) -> f64 {
        self.add.alpha.abs() * self.vector_norm
    }

    /// The median L2 norm of the residual stream rows the vector was added to (before adding), once a
    /// forward call has run.
    pub fn median_residual_norm(&self) -> Option<f64> {
        let mut v = self.residual_norms.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        })
    }

    /// One line comparing ‖α·v‖ with the layer's typical norm; `warning: ` first when the two differ
    /// by more than 4× either way (the vector swamps the stream, or barely touches it).
    pub fn norm_report(&self) -> Option<String> {
        let r = self.median_residual_norm()?;
        let a = self.added_norm();
        if a == 0.0 {
            return Some(format!(
                "steering: alpha·v is zero; the model runs unsteered (layer {} residual median norm {r:.3})",
                self.layer
            ));
        }
        let ratio = a / r.max(1e-30);
        let warn = !(1e-3..=4.0).contains(&ratio);
        Some(format!(
            "{}steering: |alpha·v| = {a:.4} at layer {}, whose residual stream has median norm {r:.4} on this \
             input (ratio {ratio:.3}){}",
            if warn { "warning: " } else { "" },
            self.layer,
            if ratio > 4.0 {
                "; the vector dominates the stream, expect degraded text"
            } else if ratio < 1e-3 {
                "; the vector is too small to change anything"
            } else {
                ""
            }
        ))
    }
}

impl Hook for Steer {
    fn at(&mut self, site: Site, x: Tensor, ctx: &SiteCtx) -> pretrace_model::Result<Tensor> {
        if site == self.add.site && self.residual_norms.is_empty() {
            let (b, t, d) = x.dims3()?;
            let all = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            for r in 0..b {
                for j in 0..t {
                    if ctx.valid[r][j] {
                        let row = &all[(r * t + j) * d..(r * t + j + 1) * d];
                        self.residual_norms.push(
                            row.iter()
                                .map(|&v| (v as f64) * (v as f64))
                                .sum::<f64>()
                                .sqrt(),
                        );
                    }
                }
            }
        }
        self.add.at(site, x, ctx)
    }
    fn last_site(&self) -> Option<Site> {
        Some(self.add.site)
    }
}
