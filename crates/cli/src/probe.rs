//! `pretrace probe`.

use anyhow::Result;
use clap::{Args, ValueEnum};
use pretrace_probe::{probe_store, write_results, CvOptions, LogRegOptions, Selection};
use pretrace_store::Store;
use pretrace_sweep::LayerSpec;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct ProbeArgs {
    /// The activation store (`pretrace extract --out`).
    #[arg(long)]
    store: PathBuf,
    /// Directory for probes.csv and probes.json.
    #[arg(long)]
    out: PathBuf,
    /// The probing protocol.
    #[arg(long, value_enum, default_value_t = Protocol::Paper)]
    protocol: Protocol,
    /// Checkpoints to probe (comma-separated names; default all).
    #[arg(long, value_delimiter = ',')]
    checkpoints: Vec<String>,
    /// Datasets to probe (comma-separated names; default all).
    #[arg(long, value_delimiter = ',')]
    datasets: Vec<String>,
    /// Layers to probe: all, a list (0,6,12) or ranges (0-31).
    #[arg(long, default_value = "all")]
    layers: String,
    /// cv: number of stratified folds.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// cv: seed of the fold assignment and of the control task's label permutation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Protocol {
    /// The paper's code: z-score over all rows, first 80% of rows train, scikit-learn's
    /// `LogisticRegression()` (C=1, L-BFGS, 100 iterations, tol 1e-4), test accuracy.
    Paper,
    /// Stratified k-fold (--folds, --seed) with standardization fitted on the training folds,
    /// mean and std of test accuracy, and the same probe on shuffled labels as a control task.
    Cv,
}

pub fn run_probe(a: ProbeArgs) -> Result<()> {
    let store = Store::open(&a.store)?;
    pretrace_core::OutDir::prepare(&a.out)?;
    let layers = match LayerSpec::parse(&a.layers)? {
        LayerSpec::All => Vec::new(),
        LayerSpec::List(v) => v,
    };
    let sel = Selection {
        checkpoints: a.checkpoints.clone(),
        datasets: a.datasets.clone(),
        layers,
    };
    let opts = LogRegOptions::default();
    let (protocol, settings) = match a.protocol {
        Protocol::Paper => (
            pretrace_probe::Protocol::Paper,
            serde_json::json!({
                "name": "paper",
                "standardize": "all rows, unbiased std",
                "split": "first floor(0.8 n) rows train, the rest test",
                "C": opts.c, "max_iter": opts.max_iter, "tol": opts.tol,
            }),
        ),
        Protocol::Cv => (
            pretrace_probe::Protocol::Cv(CvOptions {
                folds: a.folds,
                seed: a.seed,
            }),
            serde_json::json!({
                "name": "cv",
                "folds": a.folds, "seed": a.seed,
                "standardize": "training folds, unbiased std",
                "control": "same folds, labels permuted with the seed",
                "C": opts.c, "max_iter": opts.max_iter, "tol": opts.tol,
            }),
        ),
    };
    if a.folds < 2 {
        anyhow::bail!(
            "--folds {} is too few; cross-validation needs at least 2",
            a.folds
        );
    }
    let t0 = Instant::now();
    let rows = probe_store(&store, &sel, protocol, &opts, &mut |done, total, what| {
        eprintln!("[{done}/{total}] {what}");
    })?;
    write_results(&a.out, &rows, &settings)?;
    let unconverged = rows.iter().filter(|r| !r.converged && r.n_iter > 0).count();
    eprintln!(
        "done: {} probes in {:.1}s ({} stopped at the iteration limit, as scikit-learn's do); wrote {}",
        rows.len(),
        t0.elapsed().as_secs_f64(),
        unconverged,
        a.out.join("probes.csv").display()
    );
    Ok(())
}

impl ProbeArgs {
    /// The paper protocol over every cell of `store`, into `out`.
    pub fn defaults(store: PathBuf, out: PathBuf) -> ProbeArgs {
        ProbeArgs {
            store,
            out,
            protocol: Protocol::Paper,
            checkpoints: Vec::new(),
            datasets: Vec::new(),
            layers: "all".into(),
            folds: 5,
            seed: 0,
        }
    }
}
