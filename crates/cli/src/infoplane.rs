//! `pretrace infoplane`.

use anyhow::{bail, Result};
use clap::Args;
use pretrace_info::{infoplane_store, write_results, Estimator, Settings};
use pretrace_probe::Selection;
use pretrace_store::Store;
use pretrace_sweep::{parse_size, total_memory_bytes, LayerSpec};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct InfoplaneArgs {
    /// The activation store (`pretrace extract --out`).
    #[arg(long)]
    store: PathBuf,
    /// Directory for infoplane.csv and infoplane.json.
    #[arg(long)]
    out: PathBuf,
    /// Estimators, comma-separated: nhsic-paper (the paper's code), hsic (biased HSIC),
    /// hsic-normalized, ksg (KSG / Ross nearest-neighbour MI in nats on PCA projections).
    #[arg(long, value_delimiter = ',', default_value = "nhsic-paper")]
    estimator: Vec<String>,
    /// Gaussian kernel width σ (kernel exp(−D / (2σ²d)), d the feature dimension).
    #[arg(long, default_value_t = 50.0)]
    sigma: f64,
    /// The stored layer used as the input X (default: the lowest stored layer).
    #[arg(long)]
    input_layer: Option<usize>,
    /// Use at most this many training rows per cell (the first ones).
    #[arg(long, default_value_t = 10_000)]
    max_rows: usize,
    /// ksg: neighbours.
    #[arg(long, default_value_t = 3)]
    k: usize,
    /// ksg: PCA dimensions of T and X (KSG's downward bias grows with them; see the docs).
    #[arg(long, default_value_t = 4)]
    pca_dims: usize,
    /// Memory the layers estimated at once may hold (each holds about 3·8·m² bytes), e.g. 8G
    /// (default: half of RAM).
    #[arg(long)]
    max_memory: Option<String>,
    /// Checkpoints (comma-separated names; default all).
    #[arg(long, value_delimiter = ',')]
    checkpoints: Vec<String>,
    /// Datasets (comma-separated names; default all).
    #[arg(long, value_delimiter = ',')]
    datasets: Vec<String>,
    /// Layers T: all, a list (0,6,12) or ranges (0-31).
    #[arg(long, default_value = "all")]
    layers: String,
}

pub fn run_infoplane(a: InfoplaneArgs) -> Result<()> {
    let store = Store::open(&a.store)?;
    let mut estimators = Vec::new();
    for name in &a.estimator {
        match Estimator::parse(name.trim()) {
            Some(e) if !estimators.contains(&e) => estimators.push(e),
            Some(_) => {}
            None => bail!(
                "--estimator {name}: unknown; choose from nhsic-paper, hsic, hsic-normalized, ksg"
            ),
        }
    }
    if !(a.sigma.is_finite() && a.sigma > 0.0) {
        bail!("--sigma {}: expected a positive number", a.sigma);
    }
    if a.k == 0 || a.pca_dims == 0 || a.max_rows < 2 {
        bail!("--k and --pca-dims must be at least 1 and --max-rows at least 2");
    }
    pretrace_core::OutDir::prepare(&a.out)?;
    let memory_budget = match &a.max_memory {
        Some(s) => parse_size(s)?,
        None => total_memory_bytes().unwrap_or(8 << 30) / 2,
    };
    let layers = match LayerSpec::parse(&a.layers)? {
        LayerSpec::All => Vec::new(),
        LayerSpec::List(v) => v,
    };
    let sel = Selection {
        checkpoints: a.checkpoints.clone(),
        datasets: a.datasets.clone(),
        layers,
    };
    let settings = Settings {
        estimators,
        sigma: a.sigma,
        input_layer: a.input_layer,
        max_rows: a.max_rows,
        k: a.k,
        pca_dims: a.pca_dims,
        memory_budget,
    };
    faer::set_global_parallelism(faer::Par::rayon(0));
    let t0 = Instant::now();
    let rows = infoplane_store(&store, &sel, &settings, &mut |done, total, what| {
        eprintln!(
            "[{done}/{total}] {what} ({:.1}s)",
            t0.elapsed().as_secs_f64()
        );
    })?;
    let manifest = serde_json::json!({
        "tool": format!("pretrace {}", env!("CARGO_PKG_VERSION")),
        "store": a.store.display().to_string(),
        "arithmetic": "f64",
        "x": match a.input_layer {
            Some(l) => format!("layer {l}"),
            None => "the lowest stored layer".to_string(),
        },
        "rows": "the paper probe's training rows: first floor(0.8 n), z-scored with the mean and unbiased std of all n rows, at most max_rows",
        "estimators": settings.estimators.iter().map(|e| e.name()).collect::<Vec<_>>(),
        "settings": {
            "sigma": a.sigma,
            "kernel": "exp(-|r_i - 2 a_i.a_j + r_j| / (2 sigma^2 d))",
            "nhsic_paper": "tr(R_A R_B), R = K H (K H + 1e-5 m I)^-1 (by a solve)",
            "hsic": "(m-1)^-2 tr(K_A H K_B H)",
            "hsic_normalized": "HSIC(A,B) / sqrt(HSIC(A,A) HSIC(B,B))",
            "ksg": {"k": a.k, "pca_dims": a.pca_dims, "i_tx": "KSG algorithm 1 (max-norm)", "i_ty": "Ross 2014 (discrete label)", "units": "nats"},
            "max_rows": a.max_rows,
        },
    });
    write_results(&a.out, &rows, &manifest)?;
    eprintln!(
        "done: {} estimates in {:.1}s; wrote {}",
        rows.len(),
        t0.elapsed().as_secs_f64(),
        a.out.join("infoplane.csv").display()
    );
    Ok(())
}

impl InfoplaneArgs {
    /// `estimators` with default settings over every cell of `store`, into `out`.
    pub fn defaults(store: PathBuf, out: PathBuf, estimators: Vec<String>) -> InfoplaneArgs {
        InfoplaneArgs {
            store,
            out,
            estimator: estimators,
            sigma: 50.0,
            input_layer: None,
            max_rows: 10_000,
            k: 3,
            pca_dims: 4,
            max_memory: None,
            checkpoints: Vec::new(),
            datasets: Vec::new(),
            layers: "all".into(),
        }
    }
}
