//! `pretrace report`.

use crate::infoplane::{run_infoplane, InfoplaneArgs};
use crate::probe::{run_probe, ProbeArgs};
use anyhow::{Context, Result};
use clap::Args;
use pretrace_report::{manifests, read_json, write_report, Inputs, Options};
use pretrace_store::Store;
use std::path::PathBuf;

#[derive(Args)]
pub struct ReportArgs {
    /// The activation store (`pretrace extract --out`).
    #[arg(long)]
    store: PathBuf,
    /// Directory for report.html and figures/; probes.* and infoplane.* are read from here, and
    /// computed into it when missing.
    #[arg(long)]
    out: PathBuf,
    /// Directory holding probes.json from `pretrace probe` (default: --out).
    #[arg(long)]
    probes: Option<PathBuf>,
    /// Directory holding infoplane.json from `pretrace infoplane` (default: --out).
    #[arg(long)]
    infoplane: Option<PathBuf>,
    /// Estimators computed when infoplane.json is missing (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "nhsic-paper")]
    estimator: Vec<String>,
    /// Layers drawn in the per-step figures (default: five spread over the stored layers).
    #[arg(long, value_delimiter = ',')]
    layers: Vec<usize>,
    /// The report's title.
    #[arg(long)]
    title: Option<String>,
    /// experiment.json of `pretrace run`: adds training curves, evaluation and steering results.
    #[arg(long)]
    experiment: Option<PathBuf>,
}

pub fn run_report(a: ReportArgs) -> Result<()> {
    let store = Store::open(&a.store)?;
    pretrace_core::OutDir::prepare(&a.out)?;
    let probes_dir = a.probes.clone().unwrap_or_else(|| a.out.clone());
    let info_dir = a.infoplane.clone().unwrap_or_else(|| a.out.clone());
    let probes_json = probes_dir.join("probes.json");
    if !probes_json.is_file() {
        eprintln!(
            "{} is missing: probing the store (paper protocol)",
            probes_json.display()
        );
        run_probe(ProbeArgs::defaults(a.store.clone(), probes_dir.clone()))?;
    }
    let info_json = info_dir.join("infoplane.json");
    if !info_json.is_file() {
        eprintln!(
            "{} is missing: estimating the information plane ({})",
            info_json.display(),
            a.estimator.join(", ")
        );
        run_infoplane(InfoplaneArgs::defaults(
            a.store.clone(),
            info_dir.clone(),
            a.estimator.clone(),
        ))?;
    }
    let inputs = Inputs {
        probes: read_json(&probes_json)?,
        infoplane: read_json(&info_json)?,
        manifests: manifests(&store)?,
        store: a.store.display().to_string(),
        experiment: match &a.experiment {
            Some(p) => Some(
                serde_json::from_str(
                    &std::fs::read_to_string(p)
                        .with_context(|| format!("{}: cannot read", p.display()))?,
                )
                .with_context(|| {
                    format!("{}: not an experiment.json of `pretrace run`", p.display())
                })?,
            ),
            None => None,
        },
    };
    let figs = write_report(
        &a.out,
        &inputs,
        &Options {
            layers: a.layers.clone(),
            title: a.title.clone(),
        },
    )?;
    eprintln!(
        "wrote {} with {} figures (PNG and SVG in {})",
        a.out.join("report.html").display(),
        figs.len(),
        a.out.join("figures").display()
    );
    Ok(())
}
