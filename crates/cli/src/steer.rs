//! `pretrace steer`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use pretrace_steer::{build, to_safetensors, Method, Rows};
use pretrace_store::Store;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args)]
pub struct SteerArgs {
    #[command(subcommand)]
    command: SteerCommand,
}

#[derive(Subcommand)]
enum SteerCommand {
    /// Build a steering vector per layer from one (checkpoint, dataset) entry of an activation store.
    Build(BuildArgs),
}

#[derive(Args)]
struct BuildArgs {
    /// The activation store (`pretrace extract --out`).
    #[arg(long)]
    store: PathBuf,
    /// The source checkpoint (its name in the store).
    #[arg(long)]
    checkpoint: String,
    /// The dataset (its name in the store).
    #[arg(long)]
    dataset: String,
    /// Layers, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    layers: Vec<usize>,
    /// Output .safetensors file (written atomically).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = MethodArg::Paper)]
    method: MethodArg,
    /// Rows the direction is estimated from: the first half of the file (the paper's split), or all.
    #[arg(long, value_enum, default_value_t = RowsArg::Half)]
    rows: RowsArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    /// Mean of label-1 rows − mean of label-0 rows, unit-normalized, times the unbiased std of all
    /// rows' projections on it.
    Paper,
    /// The raw difference of class means (the paper's equation).
    MeanDiff,
    /// The first principal component of paired differences (repeng's `pca_diff`), unit length.
    Pca,
}

#[derive(Clone, Copy, ValueEnum)]
enum RowsArg {
    Half,
    All,
}

pub fn run_steer(a: SteerArgs) -> Result<()> {
    match a.command {
        SteerCommand::Build(b) => run_build(b),
    }
}

fn run_build(a: BuildArgs) -> Result<()> {
    let store = Store::open(&a.store)?;
    let Some(manifest) = store.manifest(&a.checkpoint, &a.dataset)? else {
        let have: Vec<String> = store
            .entries()?
            .into_iter()
            .map(|(c, d)| format!("{c}/{d}"))
            .collect();
        bail!(
            "{}: no entry {}/{}; the store holds {}",
            a.store.display(),
            a.checkpoint,
            a.dataset,
            if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            }
        );
    };
    let entry = store.read(&a.checkpoint, &a.dataset)?;
    let (method, rows) = (
        match a.method {
            MethodArg::Paper => Method::Paper,
            MethodArg::MeanDiff => Method::MeanDiff,
            MethodArg::Pca => Method::Pca,
        },
        match a.rows {
            RowsArg::Half => Rows::FirstHalf,
            RowsArg::All => Rows::All,
        },
    );
    let mut vectors = BTreeMap::new();
    let mut norms = BTreeMap::new();
    let mut rows_used = 0;
    for &l in &a.layers {
        let Some(m) = entry.layers.get(&l) else {
            bail!(
                "{}/{}: layer {l} is not in the store (it holds {:?}); extract it or choose from those",
                a.checkpoint,
                a.dataset,
                entry.layers.keys().collect::<Vec<_>>()
            );
        };
        let b = build(&m.data, m.cols, &entry.labels, method, rows)
            .with_context(|| format!("{}/{}, layer {l}", a.checkpoint, a.dataset))?;
        norms.insert(l.to_string(), b.norm);
        rows_used = b.rows_used;
        vectors.insert(l, b.vector);
    }
    let ck = &manifest.checkpoint;
    let field = |k: &str| ck.config.get(k).map(|v| v.to_string()).unwrap_or_default();
    let meta: BTreeMap<String, String> = [
        ("format", "pretrace-steering-vector".to_string()),
        ("format_version", "1".to_string()),
        ("tool", format!("pretrace {}", env!("CARGO_PKG_VERSION"))),
        ("source_model", ck.path.clone()),
        ("architecture", field("arch").trim_matches('"').to_string()),
        ("d_model", field("d_model")),
        ("checkpoint", ck.name.clone()),
        ("step", ck.step.map_or(String::new(), |s| s.to_string())),
        ("dataset", manifest.dataset.name.clone()),
        ("dataset_sha256", manifest.dataset.sha256.clone()),
        ("dataset_rows", manifest.dataset.rows.to_string()),
        (
            "layers",
            a.layers
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("site", manifest.extraction.site.clone()),
        ("token", manifest.extraction.token.clone()),
        ("method", method.name().to_string()),
        (
            "rows",
            match rows {
                Rows::FirstHalf => "first-half",
                Rows::All => "all",
            }
            .to_string(),
        ),
        ("rows_used", rows_used.to_string()),
        ("norms", serde_json::to_string(&norms)?),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let bytes = to_safetensors(&vectors, &meta)?;
    pretrace_store::write_atomic(&a.out, &bytes)?;
    eprintln!(
        "wrote {} ({} method, layers {:?}, {} rows; norms {})",
        a.out.display(),
        method.name(),
        a.layers,
        rows_used,
        meta["norms"]
    );
    Ok(())
}
