//! Hooks: passed into each forward call, never stored in the model.
//!
//! A hook sees every site the decoder loop reaches, in order, and returns the tensor the loop goes on
//! with: its input to observe, a new tensor to intervene. Tensors at sites are `[B, T, D]`.

use crate::error::{ModelError, Result};
use crate::site::Site;
use candle_core::{DType, Tensor};
use std::collections::BTreeMap;

/// What a hook knows about the call it runs in.
#[derive(Debug)]
pub struct SiteCtx<'a> {
    /// `valid[b][t]`: whether position `t` of row `b` in this call holds a token (false = padding).
    pub valid: &'a [Vec<bool>],
    /// How many positions the KV cache held before this call (0 without a cache).
    pub past_len: usize,
}

impl SiteCtx<'_> {
    /// A `[B, T, 1]` f32 mask of the positions selected by `pos`, padding never selected.
    pub fn position_mask(&self, pos: &Positions, device: &candle_core::Device) -> Result<Tensor> {
        let b = self.valid.len();
        let t = self.valid.first().map_or(0, |r| r.len());
        let mut m = vec![0f32; b * t];
        for (r, row) in self.valid.iter().enumerate() {
            match pos {
                Positions::All => {
                    for (j, &v) in row.iter().enumerate() {
                        if v {
                            m[r * t + j] = 1.0;
                        }
                    }
                }
                Positions::Last => {
                    if let Some(j) = row.iter().rposition(|&v| v) {
                        m[r * t + j] = 1.0;
                    }
                }
                Positions::Absolute(list) => {
                    for &p in list {
                        if p >= self.past_len && p < self.past_len + t && row[p - self.past_len] {
                            m[r * t + p - self.past_len] = 1.0;
                        }
                    }
                }
            }
        }
        Ok(Tensor::from_vec(m, (b, t, 1), device)?)
    }
}

/// Which positions an intervention touches. Padding is never touched.
#[derive(Clone, Debug, PartialEq)]
pub enum Positions {
    /// Every token of every call.
    All,
    /// The last token of each row in every forward call: the last prompt token at prefill, then each
    /// generated token.
    Last,
    /// Positions counted from the start of the (padded) sequence, across KV-cache calls.
    Absolute(Vec<usize>),
}

/// A hook: called at every site the decoder loop reaches.
pub trait Hook {
    /// Called with the tensor at `site` (`[B, T, D]`); returns the tensor the loop continues with.
    fn at(&mut self, site: Site, x: Tensor, ctx: &SiteCtx) -> Result<Tensor>;
    /// The deepest site this hook needs, so a run without logits can stop after it. `None` means the
    /// hook wants every site.
    fn last_site(&self) -> Option<Site> {
        None
    }
}

/// Records the tensors at chosen sites (one entry per forward call).
#[derive(Debug, Default)]
pub struct Capture {
    sites: Vec<Site>,
    got: BTreeMap<Site, Vec<Tensor>>,
}

impl Capture {
    /// Captures `sites` on every forward call.
    pub fn new(sites: impl IntoIterator<Item = Site>) -> Self {
        Capture {
            sites: sites.into_iter().collect(),
            got: BTreeMap::new(),
        }
    }
    /// The tensor of the last forward call at `site`, `[B, T, D]`. An error if the site never fired.
    pub fn get(&self, site: Site) -> Result<&Tensor> {
        self.got
            .get(&site)
            .and_then(|v| v.last())
            .ok_or_else(|| never_fired(site))
    }
    /// Every call's tensor at `site`, in call order.
    pub fn all(&self, site: Site) -> Result<&[Tensor]> {
        self.got
            .get(&site)
            .map(|v| v.as_slice())
            .ok_or_else(|| never_fired(site))
    }
    /// Checks that every requested site fired.
    pub fn check_complete(&self) -> Result<()> {
        match self.sites.iter().find(|s| !self.got.contains_key(s)) {
            Some(s) => Err(never_fired(*s)),
            None => Ok(()),
        }
    }
}

fn never_fired(site: Site) -> ModelError {
    ModelError::Invalid(format!(
        "capture of '{site}': the site never fired (it is out of range or does not exist in this architecture, \
         e.g. hook_resid_mid in a parallel-residual block)"
    ))
}

impl Hook for Capture {
    fn at(&mut self, site: Site, x: Tensor, _ctx: &SiteCtx) -> Result<Tensor> {
        if self.sites.contains(&site) {
            self.got.entry(site).or_default().push(x.clone());
        }
        Ok(x)
    }
    fn last_site(&self) -> Option<Site> {
        self.sites.iter().copied().max_by_key(|s| s.order_key())
    }
}

/// Adds `alpha · vector` to the tensor at one site, at the chosen positions.
#[derive(Debug, Clone)]
pub struct AddVector {
    pub site: Site,
    /// `[D]`.
    pub vector: Tensor,
    pub alpha: f64,
    pub positions: Positions,
}

impl Hook for AddVector {
    fn at(&mut self, site: Site, x: Tensor, ctx: &SiteCtx) -> Result<Tensor> {
        if site != self.site {
            return Ok(x);
        }
        let d = x.dim(2)?;
        if self.vector.dims() != [d] {
            return Err(ModelError::Invalid(format!(
                "steering vector has shape {:?}, the model's width at {site} is [{d}]",
                self.vector.dims()
            )));
        }
        // α = 0 or a zero vector leaves the stream bit-identical (x + 0 would turn −0.0 into +0.0).
        if self.alpha == 0.0 {
            return Ok(x);
        }
        let v = (self.vector.to_dtype(DType::F32)? * self.alpha)?;
        if v.abs()?.max(0)?.to_scalar::<f32>()? == 0.0 {
            return Ok(x);
        }
        let v = v
            .reshape((1, 1, d))?
            .to_dtype(x.dtype())?
            .to_device(x.device())?;
        let steered = x.broadcast_add(&v)?;
        // Positions that are not selected keep their exact values.
        let mask = ctx
            .position_mask(&self.positions, x.device())?
            .to_dtype(DType::U8)?
            .broadcast_as(x.shape())?;
        Ok(mask.where_cond(&steered, &x)?)
    }
    fn last_site(&self) -> Option<Site> {
        Some(self.site)
    }
}

/// How a row's `[T, D]` activations at a site become one `[D]` vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// The row's last token (its last valid position): the paper's rule.
    Last,
    /// The mean over the row's tokens (padding excluded).
    Mean,
}

/// Keeps one f32 vector per row at chosen sites, appending across forward calls: after a run,
/// [`PoolRows::take`] gives `[rows, D]` row-major, rows in the order they were run.
#[derive(Debug)]
pub struct PoolRows {
    sites: Vec<Site>,
    rule: Pool,
    got: BTreeMap<Site, Vec<f32>>,
}

impl PoolRows {
    pub fn new(sites: impl IntoIterator<Item = Site>, rule: Pool) -> Self {
        PoolRows {
            sites: sites.into_iter().collect(),
            rule,
            got: BTreeMap::new(),
        }
    }

    /// The pooled rows at `site`, `[rows · D]` row-major; an error if the site never fired.
    pub fn take(&mut self, site: Site) -> Result<Vec<f32>> {
        self.got.remove(&site).ok_or_else(|| never_fired(site))
    }
}

impl Hook for PoolRows {
    fn at(&mut self, site: Site, x: Tensor, ctx: &SiteCtx) -> Result<Tensor> {
        if !self.sites.contains(&site) {
            return Ok(x);
        }
        let (b, t, d) = x.dims3()?;
        let out = self.got.entry(site).or_default();
        match self.rule {
            Pool::Last => {
                let idx: Vec<u32> = ctx
                    .valid
                    .iter()
                    .enumerate()
                    .map(|(r, row)| (r * t + row.iter().rposition(|&v| v).unwrap_or(t - 1)) as u32)
                    .collect();
                let idx = Tensor::from_vec(idx, b, x.device())?;
                let rows = x.reshape((b * t, d))?.index_select(&idx, 0)?;
                out.extend(rows.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
            }
            Pool::Mean => {
                let all = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                for (r, row) in ctx.valid.iter().enumerate() {
                    let mut acc = vec![0f64; d];
                    let mut n = 0usize;
                    for (j, _) in row.iter().enumerate().filter(|(_, &v)| v) {
                        for (a, v) in acc
                            .iter_mut()
                            .zip(&all[(r * t + j) * d..(r * t + j + 1) * d])
                        {
                            *a += *v as f64;
                        }
                        n += 1;
                    }
                    out.extend(acc.iter().map(|a| (a / n.max(1) as f64) as f32));
                }
            }
        }
        Ok(x)
    }
    fn last_site(&self) -> Option<Site> {
        self.sites.iter().copied().max_by_key(|s| s.order_key())
    }
}
