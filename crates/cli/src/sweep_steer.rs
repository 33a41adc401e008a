//! `pretrace steer sweep`: steering vectors from several source checkpoints × layers × α, applied to
//! one target model, evaluated on one or more tasks; a results table and the paper's Figures 4 and 5.

use crate::eval::{evaluate, headline, EvalSpec};
use crate::steer::PositionsArg;
use anyhow::{bail, Context, Result};
use clap::Args;
use pretrace_eval::tasks::Task;
use pretrace_model::Positions;
use pretrace_report::plots::{palette, render, Figure, LinePanel, Series};
use pretrace_steer::{build, Method, Rows, Steer};
use pretrace_store::Store;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args)]
pub struct SweepArgs {
    /// The activation store the vectors are built from.
    #[arg(long)]
    store: PathBuf,
    /// The store dataset the vectors are built from.
    #[arg(long)]
    dataset: String,
    /// Source checkpoints (default: every checkpoint of the store holding the dataset).
    #[arg(long, value_delimiter = ',')]
    sources: Vec<String>,
    /// Layers, comma-separated: a vector from each source at each layer.
    #[arg(long, value_delimiter = ',', required = true)]
    layers: Vec<usize>,
    /// The α grid, comma-separated (α = 0, the unsteered baseline, is always run).
    #[arg(
        long,
        value_delimiter = ',',
        required = true,
        allow_hyphen_values = true,
        value_parser = crate::finite_f64
    )]
    alphas: Vec<f64>,
    /// How the vectors are built (as `steer build --method`).
    #[arg(long, default_value = "paper")]
    method: String,
    /// Rows the directions are estimated from: half (the paper's split) or all.
    #[arg(long, default_value = "half")]
    rows: String,
    /// The target model the vectors are added to.
    #[command(flatten)]
    model: crate::ModelArgs,
    /// Tasks, one per `--data` in the same order.
    #[arg(long, required = true)]
    task: Vec<String>,
    /// Each task's data.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// A text file (one passage per line) whose lambada-style perplexity is measured at every α, to
    /// bound α as the paper does.
    #[arg(long)]
    ppl_data: Option<PathBuf>,
    /// Items per task (first N).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// toxigen's classifier.
    #[arg(long)]
    classifier: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = PositionsArg::Last)]
    steer_positions: PositionsArg,
    /// The α at which Figure 5's steering gain is read (default: the last of --alphas).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::finite_f64)]
    gain_alpha: Option<f64>,
    /// Output folder: sweep.csv, sweep.json, figures/ (the table is rewritten atomically after
    /// every cell, and a rerun skips the cells already there).
    #[arg(long)]
    out: PathBuf,
}

/// One measured cell.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Cell {
    source: String,
    step: Option<u64>,
    layer: usize,
    alpha: f64,
    task: String,
    metric: String,
    value: f64,
    probe_accuracy: Option<f64>,
    vector_norm: f64,
}

fn key(c: &Cell) -> String {
    format!("{}|{}|{}|{}", c.source, c.layer, c.alpha, c.task)
}

fn pearson(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len() as f64;
    if xs.len() < 3 {
        return None;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

fn write_table(
    out: &std::path::Path,
    cells: &[Cell],
    settings: &serde_json::Value,
    summary: &serde_json::Value,
) -> Result<()> {
    let mut csv =
        String::from("source,step,layer,alpha,task,metric,value,probe_accuracy,vector_norm\n");
    for c in cells {
        csv += &format!(
            "{},{},{},{},{},{},{},{},{}\n",
            pretrace_probe::csv_field(&c.source),
            c.step.map_or(String::new(), |s| s.to_string()),
            c.layer,
            c.alpha,
            c.task,
            c.metric,
            c.value,
            c.probe_accuracy.map_or(String::new(), |a| a.to_string()),
            c.vector_norm
        );
    }
    pretrace_store::write_atomic(&out.join("sweep.csv"), csv.as_bytes())?;
    let json = serde_json::json!({"settings": settings, "summary": summary, "cells": cells});
    pretrace_store::write_atomic(
        &out.join("sweep.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    Ok(())
}

pub fn run_sweep(a: SweepArgs) -> Result<()> {
    if a.task.len() != a.data.len() {
        bail!(
            "give one --data per --task ({} tasks, {} data paths)",
            a.task.len(),
            a.data.len()
        );
    }
    let method = match a.method.as_str() {
        "paper" => Method::Paper,
        "mean-diff" => Method::MeanDiff,
        "pca" => Method::Pca,
        m => bail!("--method '{m}' is not one of paper, mean-diff, pca"),
    };
    let rows = match a.rows.as_str() {
        "half" => Rows::FirstHalf,
        "all" => Rows::All,
        r => bail!("--rows '{r}' is not one of half, all"),
    };
    let mut specs = Vec::new();
    for (t, d) in a.task.iter().zip(&a.data) {
        specs.push(EvalSpec {
            task: Task::parse(t)?,
            data: d.clone(),
            limit: a.limit,
            shots: 0,
            fewshot_data: None,
            batch_size: a.batch_size,
            seed: a.seed,
            classifier: a.classifier.clone(),
        });
    }
    if let Some(p) = &a.ppl_data {
        specs.push(EvalSpec {
            task: Task::Lambada,
            data: p.clone(),
            limit: a.limit,
            shots: 0,
            fewshot_data: None,
            batch_size: a.batch_size,
            seed: a.seed,
            classifier: None,
        });
    }
    let store = Store::open(&a.store)?;
    let entries = store.entries()?;
    let mut sources: Vec<(String, Option<u64>)> = Vec::new();
    for (c, d) in &entries {
        if d == &a.dataset && (a.sources.is_empty() || a.sources.contains(c)) {
            let step = store.manifest(c, d)?.and_then(|m| m.checkpoint.step);
            sources.push((c.clone(), step));
        }
    }
    if let Some(missing) = a
        .sources
        .iter()
        .find(|s| !sources.iter().any(|(c, _)| c == *s))
    {
        bail!(
            "{}: no entry {missing}/{}; run `pretrace extract` for it",
            a.store.display(),
            a.dataset
        );
    }
    if sources.is_empty() {
        bail!(
            "{}: no checkpoint holds dataset '{}'",
            a.store.display(),
            a.dataset
        );
    }
    sources.sort_by_key(|(c, s)| (*s, c.clone()));
    let (ckpt, origin) = crate::load(&a.model)?;
    let m = &ckpt.model;
    let tok = ckpt
        .tokenizer
        .as_ref()
        .context("the target model has no tokenizer")?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create", a.out.display()))?;
    let positions = match a.steer_positions {
        PositionsArg::Last => Positions::Last,
        PositionsArg::All => Positions::All,
    };
    let settings = serde_json::json!({
        "store": a.store.display().to_string(), "dataset": a.dataset, "method": method.name(), "rows": a.rows,
        "target": origin.describe(), "layers": a.layers, "alphas": a.alphas,
        "positions": a.steer_positions.name(), "tasks": a.task, "data": a.data.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "ppl_data": a.ppl_data.as_ref().map(|p| p.display().to_string()), "limit": a.limit, "seed": a.seed,
        "probe": "the paper's protocol on the source entry (first 80% train)",
    });
    // Resume: keep the cells of an earlier run with the same settings.
    let mut cells: Vec<Cell> = match std::fs::read_to_string(a.out.join("sweep.json")) {
        Ok(t) => {
            let j: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
            if j["settings"] == settings {
                serde_json::from_value(j["cells"].clone()).unwrap_or_default()
            } else {
                Vec::new()
            }
        }
        Err(_) => Vec::new(),
    };
    let done: std::collections::HashSet<String> = cells.iter().map(key).collect();
    if !done.is_empty() {
        eprintln!("resuming: {} cells already measured", done.len());
    }
    let (nl, na) = (a.layers.len(), a.alphas.len());
    let total = specs.len() * (1 + sources.len() * nl * na);
    let mut count = 0usize;
    let mut measure = |cells: &mut Vec<Cell>,
                       cell: Cell,
                       steer: Option<&mut Steer>,
                       spec: &EvalSpec|
     -> Result<()> {
        count += 1;
        if done.contains(&key(&cell)) {
            return Ok(());
        }
        let (e, _) = evaluate(spec, m, tok, steer)?;
        let (metric, _) = headline(spec.task);
        let value = e.metrics[metric];
        eprintln!(
            "[{count}/{total}] {} layer {} alpha {}: {} {metric} {value:.4}",
            cell.source, cell.layer, cell.alpha, cell.task
        );
        cells.push(Cell {
            value,
            metric: metric.into(),
            ..cell
        });
        write_table(&a.out, cells, &settings, &serde_json::Value::Null)
    };
    // The unsteered baseline.
    for spec in &specs {
        let cell = Cell {
            source: "none".into(),
            step: None,
            layer: 0,
            alpha: 0.0,
            task: spec.task.name().into(),
            metric: String::new(),
            value: 0.0,
            probe_accuracy: None,
            vector_norm: 0.0,
        };
        measure(&mut cells, cell, None, spec)?;
    }
    for (source, step) in &sources {
        let entry = store.read(source, &a.dataset)?;
        for &l in &a.layers {
            let Some(x) = entry.layers.get(&l) else {
                bail!(
                    "{source}/{}: layer {l} is not in the store (it holds {:?})",
                    a.dataset,
                    entry.layers.keys().collect::<Vec<_>>()
                );
            };
            let built = build(&x.data, x.cols, &entry.labels, method, rows)
                .with_context(|| format!("{source}/{}, layer {l}", a.dataset))?;
            let probe =
                pretrace_probe::paper_probe(&x.data, x.cols, &entry.labels, &Default::default())
                    .ok()
                    .and_then(|r| r.accuracy);
            let v: Vec<f32> = built.vector.iter().map(|&x| x as f32).collect();
            let file = pretrace_steer::VectorFile {
                path: a.store.clone(),
                layers: BTreeMap::from([(l, v)]),
                unnamed: None,
                provenance: None,
                warnings: Vec::new(),
            };
            let v = file.vector_for(l, &m.config.arch, m.config.d_model, m.config.n_layers)?;
            for &alpha in &a.alphas {
                for spec in &specs {
                    let mut steer = Steer::new(l, v, alpha, positions.clone())?;
                    let cell = Cell {
                        source: source.clone(),
                        step: *step,
                        layer: l,
                        alpha,
                        task: spec.task.name().into(),
                        metric: String::new(),
                        value: 0.0,
                        probe_accuracy: probe,
                        vector_norm: built.norm,
                    };
                    measure(&mut cells, cell, Some(&mut steer), spec)?;
                }
            }
        }
    }
    // Figures and the summary.
    let gain_alpha = a.gain_alpha.unwrap_or(*a.alphas.last().unwrap_or(&0.0));
    let mut summary = serde_json::Map::new();
    let figs = a.out.join("figures");
    std::fs::create_dir_all(&figs)?;
    let base = |task: &str| {
        cells
            .iter()
            .find(|c| c.source == "none" && c.task == task)
            .map(|c| c.value)
    };
    for spec in &specs {
        let task = spec.task.name();
        let (metric, higher) = headline(spec.task);
        let Some(b) = base(task) else { continue };
        // Figure 4: the metric against α, a line per (source, layer), α = 0 from the baseline;
        // beside it the perplexity, when measured.
        let alpha_panel = |task: &str, metric: &str, b: f64| -> LinePanel {
            let mut series = Vec::new();
            let pairs = sources
                .iter()
                .flat_map(|s| a.layers.iter().map(move |l| (s, l)));
            for (i, ((source, _), l)) in pairs.enumerate() {
                let mut pts: Vec<(f64, f64)> = cells
                    .iter()
                    .filter(|c| &c.source == source && c.layer == *l && c.task == task)
                    .map(|c| (c.alpha, c.value))
                    .collect();
                pts.push((0.0, b));
                pts.sort_by(|x, y| x.0.total_cmp(&y.0));
                pts.dedup_by(|x, y| x.0 == y.0);
                series.push(Series {
                    label: format!("{source} L{l}"),
                    points: pts,
                    color: palette(i),
                });
            }
            LinePanel {
                title: format!("{task}: {metric} against alpha"),
                x_label: "alpha".into(),
                y_label: metric.into(),
                series,
                x_log: false,
                reference: Some(b),
                x_integer: false,
            }
        };
        if spec.task != Task::Lambada {
            let mut panels = vec![alpha_panel(task, metric, b)];
            if let Some(pb) = base("lambada").filter(|_| a.ppl_data.is_some()) {
                panels.push(alpha_panel("lambada", "perplexity", pb));
            }
            render(
                &figs.join(format!("steer_alpha_{task}")),
                (560 * panels.len() as u32, 520),
                &Figure::Lines(panels),
            )?;
        }
        // Figure 5: the gain at gain_alpha against the source's probe accuracy, per layer.
        let mut per_layer = serde_json::Map::new();
        for (i, &l) in a.layers.iter().enumerate() {
            let pts: Vec<(f64, f64, String)> = cells
                .iter()
                .filter(|c| {
                    c.source != "none" && c.layer == l && c.task == task && c.alpha == gain_alpha
                })
                .filter_map(|c| {
                    let gain = if higher { c.value - b } else { b - c.value };
                    c.probe_accuracy.map(|p| (p, gain, c.source.clone()))
                })
                .collect();
            let r = pearson(
                &pts.iter().map(|p| p.0).collect::<Vec<_>>(),
                &pts.iter().map(|p| p.1).collect::<Vec<_>>(),
            );
            per_layer.insert(
                l.to_string(),
                serde_json::json!({"pearson_r": r, "points": pts.iter().map(|(p, g, s)| serde_json::json!({"source": s, "probe_accuracy": p, "gain": g})).collect::<Vec<_>>()}),
            );
            let series = vec![Series {
                label: format!(
                    "layer {l} (r = {})",
                    r.map_or("n/a".into(), |r| format!("{r:.3}"))
                ),
                points: {
                    let mut p: Vec<(f64, f64)> = pts.iter().map(|(x, y, _)| (*x, *y)).collect();
                    p.sort_by(|x, y| x.0.total_cmp(&y.0));
                    p
                },
                color: palette(i),
            }];
            render(
                &figs.join(format!("steer_gain_{task}_L{l}")),
                (700, 520),
                &Figure::Lines(vec![LinePanel {
                    title: format!("{task}: gain at alpha {gain_alpha} against the source's probe accuracy, layer {l}"),
                    x_label: "probe accuracy of the source checkpoint".into(),
                    y_label: format!("{metric} gain over unsteered"),
                    series,
                    x_log: false,
                    reference: Some(0.0),
                    x_integer: false,
                }]),
            )?;
        }
        summary.insert(task.into(), serde_json::json!({"metric": metric, "higher_is_better": higher, "baseline": b, "gain_alpha": gain_alpha, "layers": per_layer}));
    }
    let summary = serde_json::Value::Object(summary);
    write_table(&a.out, &cells, &settings, &summary)?;
    eprintln!(
        "wrote {} ({} cells) and figures/",
        a.out.join("sweep.csv").display(),
        cells.len()
    );
    for (task, s) in summary.as_object().into_iter().flatten() {
        for (l, v) in s["layers"].as_object().into_iter().flatten() {
            eprintln!(
                "{task} layer {l}: Pearson r(probe accuracy, gain at alpha {gain_alpha}) = {}",
                v["pearson_r"]
            );
        }
    }
    Ok(())
}
