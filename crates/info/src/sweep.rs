//! Information-plane estimates over a whole activation store, into `infoplane.csv` and
//! `infoplane.json`.

use crate::hsic::{
    centered_kernel, hsic_from_centered, normalize, regularized_projection, trace_product,
};
use crate::ksg::{ksg, ksg_discrete, pca};
use crate::InfoError;
use faer::Mat;
use pretrace_probe::{
    csv_field, for_each_entry, select_entries, standardization, write_table, Selection,
};
use pretrace_store::Store;
use rayon::prelude::*;
use std::path::Path;

/// An estimator of I(T;X) and I(T;Y).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Estimator {
    /// The paper's code: `tr(R_A R_B)` with `R = K̃ (K̃ + 1e-5 m I)⁻¹`.
    NhsicPaper,
    /// Biased HSIC, `(m−1)⁻² tr(K_A H K_B H)`.
    Hsic,
    /// `HSIC(A,B) / √(HSIC(A,A) HSIC(B,B))`.
    HsicNormalized,
    /// KSG (I(T;X)) and Ross (I(T;Y)) nearest-neighbour estimates in nats on PCA projections.
    Ksg,
}

impl Estimator {
    pub fn name(self) -> &'static str {
        match self {
            Estimator::NhsicPaper => "nhsic-paper",
            Estimator::Hsic => "hsic",
            Estimator::HsicNormalized => "hsic-normalized",
            Estimator::Ksg => "ksg",
        }
    }
    pub fn parse(s: &str) -> Option<Estimator> {
        [
            Estimator::NhsicPaper,
            Estimator::Hsic,
            Estimator::HsicNormalized,
            Estimator::Ksg,
        ]
        .into_iter()
        .find(|e| e.name() == s)
    }
}

/// Estimator settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    pub estimators: Vec<Estimator>,
    /// Gaussian kernel width σ (kernel `exp(−D / (2 σ² d))`).
    pub sigma: f64,
    /// The stored layer used as the input X; `None` for the lowest stored layer.
    pub input_layer: Option<usize>,
    /// At most this many training rows per cell (the first ones).
    pub max_rows: usize,
    /// KSG neighbours.
    pub k: usize,
    /// KSG: PCA dimensions of T and X.
    pub pca_dims: usize,
    /// Bytes the concurrent cells may hold; bounds how many layers run at once.
    pub memory_budget: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            estimators: vec![Estimator::NhsicPaper],
            sigma: 50.0,
            input_layer: None,
            max_rows: 10_000,
            k: 3,
            pca_dims: 4,
            memory_budget: 4 << 30,
        }
    }
}

/// One (checkpoint, dataset, layer, estimator) result, a row of `infoplane.csv`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub checkpoint: String,
    pub step: Option<u64>,
    pub dataset: String,
    pub layer: usize,
    pub estimator: &'static str,
    pub i_tx: f64,
    pub i_ty: f64,
    /// Rows the estimate used.
    pub m: usize,
}

/// The paper's z-score (mean and unbiased std over all `n` rows) of `[n, d]` features, first `m`
/// rows, as f64.
fn standardized_head(x: &[f32], d: usize, m: usize) -> Mat<f64> {
    let (mean, scale, _) = standardization(x, d);
    Mat::from_fn(m, d, |i, j| (x[i * d + j] as f64 - mean[j]) * scale[j])
}

/// What every layer of one (checkpoint, dataset) shares: X and Y and their kernels.
struct Context {
    m: usize,
    labels: Vec<i64>,
    r_x: Option<Mat<f64>>,
    r_y: Option<Mat<f64>>,
    k_x: Option<Mat<f64>>,
    k_y: Option<Mat<f64>>,
    h_xx: f64,
    h_yy: f64,
    x_pca: Option<Mat<f64>>,
}

impl Context {
    fn new(x: Mat<f64>, labels: &[i64], s: &Settings) -> Context {
        let m = x.nrows();
        let y = Mat::from_fn(m, 1, |i, _| labels[i] as f64);
        let has = |e: Estimator| s.estimators.contains(&e);
        let nhsic = has(Estimator::NhsicPaper);
        let hsic = has(Estimator::Hsic) || has(Estimator::HsicNormalized);
        let (k_x, k_y) = if hsic {
            (
                Some(centered_kernel(x.as_ref(), s.sigma)),
                Some(centered_kernel(y.as_ref(), s.sigma)),
            )
        } else {
            (None, None)
        };
        let self_hsic = |k: &Option<Mat<f64>>| {
            k.as_ref()
                .map_or(0.0, |k| hsic_from_centered(k.as_ref(), k.as_ref()))
        };
        Context {
            m,
            labels: labels[..m].to_vec(),
            r_x: nhsic.then(|| regularized_projection(centered_kernel(x.as_ref(), s.sigma))),
            r_y: nhsic.then(|| regularized_projection(centered_kernel(y.as_ref(), s.sigma))),
            h_xx: self_hsic(&k_x),
            h_yy: self_hsic(&k_y),
            k_x,
            k_y,
            x_pca: has(Estimator::Ksg).then(|| pca(x.as_ref(), s.pca_dims)),
        }
    }

    /// `(estimator, I(T;X), I(T;Y))` for one layer's standardized rows.
    fn layer(&self, t: Mat<f64>, s: &Settings) -> Vec<(Estimator, f64, f64)> {
        let mut out = Vec::new();
        for &e in &s.estimators {
            match e {
                Estimator::NhsicPaper => {
                    let r_t = regularized_projection(centered_kernel(t.as_ref(), s.sigma));
                    let (r_x, r_y) = (self.r_x.as_ref().unwrap(), self.r_y.as_ref().unwrap());
                    out.push((
                        e,
                        trace_product(r_x.as_ref(), r_t.as_ref()),
                        trace_product(r_y.as_ref(), r_t.as_ref()),
                    ));
                }
                Estimator::Hsic | Estimator::HsicNormalized => {
                    // Both HSIC forms come from the same kernels; compute them once.
                    if out
                        .iter()
                        .any(|(o, _, _)| matches!(o, Estimator::Hsic | Estimator::HsicNormalized))
                    {
                        continue;
                    }
                    let k_t = centered_kernel(t.as_ref(), s.sigma);
                    let (k_x, k_y) = (self.k_x.as_ref().unwrap(), self.k_y.as_ref().unwrap());
                    let h_tt = hsic_from_centered(k_t.as_ref(), k_t.as_ref());
                    let h_tx = hsic_from_centered(k_x.as_ref(), k_t.as_ref());
                    let h_ty = hsic_from_centered(k_y.as_ref(), k_t.as_ref());
                    for f in [Estimator::Hsic, Estimator::HsicNormalized] {
                        if !s.estimators.contains(&f) {
                            continue;
                        }
                        out.push(match f {
                            Estimator::Hsic => (f, h_tx, h_ty),
                            _ => (
                                f,
                                normalize(h_tx, h_tt, self.h_xx),
                                normalize(h_ty, h_tt, self.h_yy),
                            ),
                        });
                    }
                }
                Estimator::Ksg => {
                    let t_p = pca(t.as_ref(), s.pca_dims);
                    let x_p = self.x_pca.as_ref().unwrap();
                    out.push((
                        e,
                        ksg(t_p.as_ref(), x_p.as_ref(), s.k),
                        ksg_discrete(t_p.as_ref(), &self.labels, s.k),
                    ));
                }
            }
        }
        out.sort_by_key(|r| r.0);
        out
    }
}

/// Training rows a cell uses: the paper probe's (first `floor(0.8 n)`), at most `max_rows`.
fn rows_used(n: usize, s: &Settings) -> usize {
    ((n as f64 * 0.8).floor() as usize).min(s.max_rows)
}

/// The estimates for one layer: `x` `[n, dx]` the input layer's raw activations, `t` `[n, dt]` the
/// layer's, `labels` 0/1. Standardized and split as the paper probe does.
pub fn cell_estimates(
    x: &[f32],
    dx: usize,
    t: &[f32],
    dt: usize,
    labels: &[i64],
    s: &Settings,
) -> Vec<(Estimator, f64, f64)> {
    let m = rows_used(labels.len(), s);
    let ctx = Context::new(standardized_head(x, dx, m), labels, s);
    ctx.layer(standardized_head(t, dt, m), s)
}

/// Estimates every selected cell of `store`. `progress(done, total, what)` is called as entries
/// finish.
pub fn infoplane_store(
    store: &Store,
    sel: &Selection,
    s: &Settings,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<Vec<Row>, InfoError> {
    let err = |m: String| InfoError::Invalid(m);
    let entries = select_entries(store, sel).map_err(|e| err(e.to_string()))?;
    let total = entries.len();
    let mut rows = Vec::new();
    for_each_entry(store, &entries, |k, c, d, e| {
        let e = e.map_err(err)?;
        if e.labels.iter().any(|&l| l < 0) {
            progress(k + 1, total, &format!("skip {c}/{d}: unlabeled"));
            return Ok(());
        }
        let input = match (s.input_layer, e.layers.keys().next()) {
            (Some(l), _) => l,
            (None, Some(&l)) => l,
            (None, None) => {
                return Err(err(format!(
                    "{c}/{d}: the entry holds no layers; re-extract it"
                )))
            }
        };
        let Some(xm) = e.layers.get(&input) else {
            return Err(err(format!(
                "{c}/{d}: the input layer {input} is not in the store (it holds {:?}); extract it or choose --input-layer",
                e.layers.keys().collect::<Vec<_>>()
            )));
        };
        for (l, mat) in &e.layers {
            if let Some(i) = mat.data.iter().position(|v| !v.is_finite()) {
                return Err(err(format!(
                    "checkpoint '{c}', dataset '{d}', layer {l}: row {} holds a non-finite activation ({}); re-extract it",
                    i / mat.cols,
                    mat.data[i]
                )));
            }
        }
        let m = rows_used(e.labels.len(), s);
        if m < 2 {
            progress(
                k + 1,
                total,
                &format!("skip {c}/{d}: fewer than 2 training rows"),
            );
            return Ok(());
        }
        if s.estimators.contains(&Estimator::Ksg) && m <= s.k {
            return Err(err(format!(
                "{c}/{d}: KSG with k = {} neighbours needs more than k training rows, and this cell has {m}; choose a smaller k",
                s.k
            )));
        }
        let ctx = Context::new(standardized_head(&xm.data, xm.cols, m), &e.labels, s);
        let layers: Vec<usize> = e
            .layers
            .keys()
            .copied()
            .filter(|l| sel.layers.is_empty() || sel.layers.contains(l))
            .collect();
        // A layer holds about three m×m f64 matrices at its peak.
        let per_layer = 3 * 8 * (m as u64) * (m as u64);
        let concurrent =
            ((s.memory_budget / per_layer.max(1)) as usize).clamp(1, rayon::current_num_threads());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(concurrent)
            .build()
            .map_err(|e| err(format!("cannot start worker threads: {e}")))?;
        let step = e.manifest.checkpoint.step;
        // Layers in parallel, each layer's matrix work on one thread: at these sizes that keeps
        // every core busy without the cost of splitting small products.
        let outer = faer::get_global_parallelism();
        if concurrent > 1 {
            faer::set_global_parallelism(faer::Par::Seq);
        }
        let cells: Vec<Vec<Row>> = pool.install(|| {
            layers
                .par_iter()
                .map(|&l| {
                    let mat = &e.layers[&l];
                    ctx.layer(standardized_head(&mat.data, mat.cols, m), s)
                        .into_iter()
                        .map(|(est, i_tx, i_ty)| Row {
                            checkpoint: c.to_string(),
                            step,
                            dataset: d.to_string(),
                            layer: l,
                            estimator: est.name(),
                            i_tx,
                            i_ty,
                            m: ctx.m,
                        })
                        .collect()
                })
                .collect()
        });
        faer::set_global_parallelism(outer);
        rows.extend(cells.into_iter().flatten());
        progress(k + 1, total, &format!("{c}/{d}"));
        Ok(())
    })?;
    rows.sort_by(|a, b| {
        (a.step, &a.checkpoint, &a.dataset, a.estimator, a.layer).cmp(&(
            b.step,
            &b.checkpoint,
            &b.dataset,
            b.estimator,
            b.layer,
        ))
    });
    Ok(rows)
}

/// `infoplane.csv` (header `checkpoint,step,dataset,layer,estimator,i_tx,i_ty,m`) and
/// `infoplane.json` (the settings and the rows) in `dir`, each written atomically.
pub fn write_results(
    dir: &Path,
    rows: &[Row],
    manifest: &serde_json::Value,
) -> Result<(), InfoError> {
    let mut csv = String::from("checkpoint,step,dataset,layer,estimator,i_tx,i_ty,m\n");
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{:e},{:e},{}\n",
            csv_field(&r.checkpoint),
            r.step.map_or(String::new(), |s| s.to_string()),
            csv_field(&r.dataset),
            r.layer,
            r.estimator,
            r.i_tx,
            r.i_ty,
            r.m
        ));
    }
    let mut json = manifest.clone();
    json["rows"] = serde_json::to_value(rows).map_err(|e| InfoError::Invalid(e.to_string()))?;
    write_table(dir, "infoplane", &csv, &json).map_err(|e| InfoError::Invalid(e.to_string()))
}
