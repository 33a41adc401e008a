//! Figures and a single self-contained `report.html` from a store's probe and information-plane
//! results: probe accuracy against training step for chosen layers (the paper's Figure 2) and
//! against layer, a checkpoint × layer accuracy heatmap per dataset, the information plane (I(T;X)
//! against I(T;Y), trajectories coloured by step: the paper's Figure 7) and I(T;X), I(T;Y) against
//! step, with the tables and what produced them.

pub mod experiment;
pub mod plots;

use plots::{palette, render, viridis, Figure, Heatmap, LinePanel, Series, TrajectoryPanel};
use pretrace_store::{Manifest, Store};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Invalid(String),
}

/// A row of `probes.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ProbeRow {
    pub checkpoint: String,
    pub step: Option<u64>,
    pub dataset: String,
    pub layer: usize,
    pub accuracy: Option<f64>,
    #[serde(default)]
    pub accuracy_std: Option<f64>,
    #[serde(default)]
    pub control_accuracy: Option<f64>,
    pub n_train: usize,
    pub n_test: usize,
    #[serde(default)]
    pub note: String,
}

/// A row of `infoplane.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct InfoRow {
    pub checkpoint: String,
    pub step: Option<u64>,
    pub dataset: String,
    pub layer: usize,
    pub estimator: String,
    pub i_tx: f64,
    pub i_ty: f64,
    pub m: usize,
}

/// The results a report is made from.
pub struct Inputs {
    /// `probes.json` as written by `pretrace probe`.
    pub probes: serde_json::Value,
    /// `infoplane.json` as written by `pretrace infoplane`.
    pub infoplane: serde_json::Value,
    /// The store's entries' manifests (provenance).
    pub manifests: Vec<Manifest>,
    /// The store's path, as given.
    pub store: String,
    /// What an experiment run measured besides (training, evaluations, steering), if any.
    pub experiment: Option<experiment::Experiment>,
}

/// Report settings.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Layers drawn in the per-step figures; empty: five spread over the stored layers.
    pub layers: Vec<usize>,
    pub title: Option<String>,
}

/// Reads a results file written by `pretrace probe` or `pretrace infoplane`.
pub fn read_json(path: &Path) -> Result<serde_json::Value, ReportError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ReportError::Invalid(format!("{}: cannot read ({e})", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        ReportError::Invalid(format!(
            "{}: not a pretrace results file ({e}); delete it to recompute it",
            path.display()
        ))
    })
}

/// Reads the manifests of every entry of `store`.
pub fn manifests(store: &Store) -> Result<Vec<Manifest>, ReportError> {
    let err = |m: String| ReportError::Invalid(m);
    let mut out = Vec::new();
    for (c, d) in store.entries().map_err(|e| err(e.to_string()))? {
        if let Some(m) = store.manifest(&c, &d).map_err(|e| err(e.to_string()))? {
            out.push(m);
        }
    }
    Ok(out)
}

fn rows<T: for<'de> Deserialize<'de>>(
    v: &serde_json::Value,
    key: &str,
    file: &str,
) -> Result<Vec<T>, ReportError> {
    serde_json::from_value(v.get(key).cloned().unwrap_or_default()).map_err(|e| {
        ReportError::Invalid(format!(
            "{file}: field '{key}' is not a list of result rows ({e}); recompute it"
        ))
    })
}

/// Checkpoints in step order, with the x value each is drawn at and whether the axis is
/// logarithmic (steps spanning more than two decades).
struct Axis {
    order: Vec<(Option<u64>, String)>,
    x: BTreeMap<String, f64>,
    log: bool,
    label: String,
    /// Colour value in [0, 1] of each checkpoint (its position in step order).
    t: BTreeMap<String, f64>,
}

impl Axis {
    fn new(ckpts: BTreeSet<(Option<u64>, String)>) -> Axis {
        let order: Vec<_> = ckpts.into_iter().collect();
        let all_steps = order.iter().all(|c| c.0.is_some());
        let steps: Vec<u64> = order.iter().filter_map(|c| c.0).collect();
        let pos_min = steps.iter().copied().filter(|&s| s > 0).min();
        let max = steps.iter().copied().max().unwrap_or(0);
        let log = all_steps && pos_min.is_some_and(|lo| max as f64 / lo as f64 > 100.0);
        let n = order.len();
        let mut x = BTreeMap::new();
        let mut t = BTreeMap::new();
        for (i, (s, c)) in order.iter().enumerate() {
            let v = match (all_steps, s) {
                (true, Some(s)) if log => *s as f64 + 1.0,
                (true, Some(s)) => *s as f64,
                _ => i as f64,
            };
            x.insert(c.clone(), v);
            t.insert(
                c.clone(),
                if n > 1 {
                    i as f64 / (n - 1) as f64
                } else {
                    0.5
                },
            );
        }
        let label = if !all_steps {
            "checkpoint (in order)".to_string()
        } else if log {
            "training step + 1 (log)".to_string()
        } else {
            "training step".to_string()
        };
        Axis {
            order,
            x,
            log,
            label,
            t,
        }
    }
}

fn spread(layers: &BTreeSet<usize>, k: usize) -> Vec<usize> {
    let v: Vec<usize> = layers.iter().copied().collect();
    if v.len() <= k {
        return v;
    }
    let mut out: Vec<usize> = (0..k)
        .map(|i| v[(i * (v.len() - 1) + (k - 1) / 2) / (k - 1)])
        .collect();
    out.dedup();
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= c.len() {
                s.push(T[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Figures written for the report, with captions.
struct Figures {
    dir: PathBuf,
    made: Vec<(String, String, PathBuf)>, // (section, caption, png)
}

impl Figures {
    fn add(
        &mut self,
        section: &str,
        name: &str,
        caption: String,
        size: (u32, u32),
        f: &Figure,
    ) -> Result<(), ReportError> {
        let [png, _] = render(&self.dir.join(name), size, f)?;
        self.made.push((section.to_string(), caption, png));
        Ok(())
    }
}

fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Draws every figure into `out/figures/` and writes `out/report.html`. Returns the figure paths
/// (PNG; an SVG sits beside each).
pub fn write_report(
    out: &Path,
    inputs: &Inputs,
    opts: &Options,
) -> Result<Vec<PathBuf>, ReportError> {
    let probes: Vec<ProbeRow> = rows(&inputs.probes, "probes", "probes.json")?;
    let info: Vec<InfoRow> = rows(&inputs.infoplane, "rows", "infoplane.json")?;
    let fig_dir = out.join("figures");
    std::fs::create_dir_all(&fig_dir).map_err(|e| {
        ReportError::Invalid(format!(
            "{}: cannot create ({e}); choose a writable --out",
            fig_dir.display()
        ))
    })?;
    let axis = Axis::new(
        probes
            .iter()
            .map(|r| (r.step, r.checkpoint.clone()))
            .chain(info.iter().map(|r| (r.step, r.checkpoint.clone())))
            .collect(),
    );
    let datasets: BTreeSet<String> = probes
        .iter()
        .map(|r| r.dataset.clone())
        .chain(info.iter().map(|r| r.dataset.clone()))
        .collect();
    let all_layers: BTreeSet<usize> = probes
        .iter()
        .map(|r| r.layer)
        .chain(info.iter().map(|r| r.layer))
        .collect();
    if let Some(l) = opts.layers.iter().find(|l| !all_layers.contains(l)) {
        return Err(ReportError::Invalid(format!(
            "--layers {l}: not among the results' layers {:?}; choose from those",
            all_layers
        )));
    }
    let chosen: Vec<usize> = if opts.layers.is_empty() {
        spread(&all_layers, 5)
    } else {
        opts.layers.clone()
    };
    let estimators: BTreeSet<String> = info.iter().map(|r| r.estimator.clone()).collect();
    let multi = axis.order.len() > 1;
    let mut figs = Figures {
        dir: fig_dir,
        made: Vec::new(),
    };
    let protocol = inputs.probes["protocol"]["name"]
        .as_str()
        .or(inputs.probes["protocol"].as_str())
        .unwrap_or("paper")
        .to_string();

    for ds in &datasets {
        let pr: Vec<&ProbeRow> = probes.iter().filter(|r| &r.dataset == ds).collect();
        let acc = |c: &str, l: usize| {
            pr.iter()
                .find(|r| r.checkpoint == c && r.layer == l)
                .and_then(|r| r.accuracy)
        };
        let tag = safe(ds);
        if !pr.is_empty() {
            if multi {
                let series = chosen
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| Series {
                        label: format!("layer {l}"),
                        points: axis
                            .order
                            .iter()
                            .filter_map(|(_, c)| acc(c, l).map(|a| (axis.x[c], a)))
                            .collect(),
                        color: palette(i),
                    })
                    .collect();
                figs.add(
                    ds,
                    &format!("accuracy_steps_{tag}"),
                    format!("{ds}: probe accuracy ({protocol} protocol) against training step, for layers {chosen:?} (the paper's Figure 2)."),
                    (900, 520),
                    &Figure::Lines(vec![LinePanel {
                        title: format!("{ds}: probe accuracy over training"),
                        x_label: axis.label.clone(),
                        y_label: "test accuracy".into(),
                        series,
                        x_log: axis.log,
                        reference: Some(0.5),
                        x_integer: false,
                    }]),
                )?;
            }
            // Accuracy against layer, one line per checkpoint coloured by step.
            let series = axis
                .order
                .iter()
                .map(|(s, c)| Series {
                    label: match s {
                        Some(s) if multi => format!("step {s}"),
                        _ => c.clone(),
                    },
                    points: all_layers
                        .iter()
                        .filter_map(|&l| acc(c, l).map(|a| (l as f64, a)))
                        .collect(),
                    color: if multi {
                        viridis(axis.t[c])
                    } else {
                        palette(0)
                    },
                })
                .filter(|s| !s.points.is_empty())
                .collect::<Vec<_>>();
            let mut series = series;
            if series.len() > 12 {
                // Too many checkpoints for a legend: the colours say the step.
                series.iter_mut().for_each(|s| s.label.clear());
            }
            figs.add(
                ds,
                &format!("accuracy_layers_{tag}"),
                format!(
                    "{ds}: probe accuracy against layer{}.",
                    if multi {
                        ", one line per checkpoint (dark: early, yellow: late)"
                    } else {
                        ""
                    }
                ),
                (900, 520),
                &Figure::Lines(vec![LinePanel {
                    title: format!("{ds}: probe accuracy by layer"),
                    x_label: "layer".into(),
                    y_label: "test accuracy".into(),
                    series,
                    x_log: false,
                    reference: Some(0.5),
                    x_integer: true,
                }]),
            )?;
            let layers: Vec<usize> = all_layers.iter().copied().collect();
            // With one checkpoint or one layer the line figures already show every number.
            if multi && layers.len() > 1 {
                let values: Vec<Vec<Option<f64>>> = axis
                    .order
                    .iter()
                    .map(|(_, c)| layers.iter().map(|&l| acc(c, l)).collect())
                    .collect();
                let vals = values.iter().flatten().flatten().copied();
                let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(v), b.max(v))
                });
                figs.add(
                ds,
                &format!("accuracy_heatmap_{tag}"),
                format!("{ds}: probe accuracy per checkpoint (rows, by step) and layer (columns); colour from {lo:.3} to {hi:.3}."),
                (900, 160 + 14 * axis.order.len().clamp(6, 40) as u32),
                &Figure::Heatmap(Heatmap {
                    title: format!("{ds}: probe accuracy"),
                    row_label: "checkpoint".into(),
                    col_label: "layer".into(),
                    rows: axis
                        .order
                        .iter()
                        .map(|(s, c)| s.map_or(c.clone(), |s| s.to_string()))
                        .collect(),
                    cols: layers.iter().map(|l| l.to_string()).collect(),
                    values,
                    range: if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) },
                }),
            )?;
            }
        }
        for est in &estimators {
            let ir: Vec<&InfoRow> = info
                .iter()
                .filter(|r| &r.dataset == ds && &r.estimator == est)
                .collect();
            if ir.is_empty() {
                continue;
            }
            let get = |c: &str, l: usize| {
                ir.iter()
                    .find(|r| r.checkpoint == c && r.layer == l)
                    .map(|r| (r.i_tx, r.i_ty))
            };
            let etag = safe(est);
            let trajectories: Vec<plots::Trajectory> = if multi {
                chosen
                    .iter()
                    .map(|&l| {
                        (
                            format!("layer {l}"),
                            axis.order
                                .iter()
                                .filter_map(|(_, c)| get(c, l).map(|(x, y)| (x, y, axis.t[c])))
                                .collect(),
                        )
                    })
                    .collect()
            } else {
                let c = &axis.order[0].1;
                let n = all_layers.len().max(2) - 1;
                vec![(
                    "layers".to_string(),
                    all_layers
                        .iter()
                        .enumerate()
                        .filter_map(|(i, &l)| get(c, l).map(|(x, y)| (x, y, i as f64 / n as f64)))
                        .collect(),
                )]
            };
            figs.add(
                ds,
                &format!("infoplane_{tag}_{etag}"),
                if multi {
                    format!("{ds}: the information plane ({est}), I(T;X) against I(T;Y) for layers {chosen:?}, each a trajectory over training, points coloured by step (the paper's Figure 7).")
                } else {
                    format!("{ds}: the information plane ({est}) over layers, points coloured by depth.")
                },
                (900, 620),
                &Figure::Trajectories(TrajectoryPanel {
                    title: format!("{ds}: information plane ({est})"),
                    x_label: "I(T;X)".into(),
                    y_label: "I(T;Y)".into(),
                    trajectories,
                    color_label: if multi { "early → late".into() } else { "shallow → deep".into() },
                }),
            )?;
            let panel = |which: usize, name: &str| -> LinePanel {
                let pick = |v: (f64, f64)| if which == 0 { v.0 } else { v.1 };
                LinePanel {
                    title: format!("{ds}: {name} ({est})"),
                    x_label: if multi {
                        axis.label.clone()
                    } else {
                        "layer".into()
                    },
                    y_label: name.into(),
                    series: if multi {
                        chosen
                            .iter()
                            .enumerate()
                            .map(|(i, &l)| Series {
                                label: format!("layer {l}"),
                                points: axis
                                    .order
                                    .iter()
                                    .filter_map(|(_, c)| get(c, l).map(|v| (axis.x[c], pick(v))))
                                    .collect(),
                                color: palette(i),
                            })
                            .collect()
                    } else {
                        let c = &axis.order[0].1;
                        vec![Series {
                            label: c.clone(),
                            points: all_layers
                                .iter()
                                .filter_map(|&l| get(c, l).map(|v| (l as f64, pick(v))))
                                .collect(),
                            color: palette(0),
                        }]
                    },
                    x_log: multi && axis.log,
                    reference: None,
                    x_integer: !multi,
                }
            };
            figs.add(
                ds,
                &format!("mi_{tag}_{etag}"),
                format!(
                    "{ds}: I(T;X) and I(T;Y) ({est}) against {}.",
                    if multi {
                        "training step per layer"
                    } else {
                        "layer"
                    }
                ),
                (1200, 480),
                &Figure::Lines(vec![panel(0, "I(T;X)"), panel(1, "I(T;Y)")]),
            )?;
        }
    }
    let (top, bottom) = experiment_sections(inputs, &probes, &info, &mut figs)?;
    let html = html(inputs, opts, &probes, &info, &axis, &figs.made, &protocol)?;
    let html = html
        .replacen("</h1>\n", &format!("</h1>\n{top}"), 1)
        .replacen("</body>", &format!("{bottom}</body>"), 1);
    pretrace_store::write_atomic(&out.join("report.html"), html.as_bytes())
        .map_err(|e| ReportError::Invalid(e.to_string()))?;
    Ok(figs.made.into_iter().map(|f| f.2).collect())
}

/// Figure sections the experiment part of the report owns.
const EXPERIMENT: &str = "experiment:";

fn figure_html(h: &mut String, caption: &str, png: &Path) -> Result<(), ReportError> {
    let bytes = std::fs::read(png)
        .map_err(|e| ReportError::Invalid(format!("{}: cannot read back ({e})", png.display())))?;
    let _ = writeln!(
        h,
        "<figure><img alt=\"{}\" src=\"data:image/png;base64,{}\"><figcaption>{} <small>(<code>figures/{}</code>, SVG beside it)</small></figcaption></figure>",
        esc(caption),
        base64(&bytes),
        esc(caption),
        esc(&png.file_name().unwrap_or_default().to_string_lossy())
    );
    Ok(())
}

/// The observations (top of the report) and the experiment's training and evaluation sections
/// (bottom), with their figures.
fn experiment_sections(
    inputs: &Inputs,
    probes: &[ProbeRow],
    info: &[InfoRow],
    figs: &mut Figures,
) -> Result<(String, String), ReportError> {
    use experiment::{fit_compress, separability, steering, Verdict};
    let exp = inputs.experiment.clone().unwrap_or_default();
    let obs = [
        separability(probes),
        fit_compress(info, exp.steer_layer),
        steering(&exp.results),
    ];
    let mut top = String::from("<h2 id=\"observations\">The paper's three observations in this run</h2>\n<p>Each verdict follows from the numbers below by a fixed rule (see <em>How the verdicts are decided</em>); nothing is chosen by hand.</p>\n<table><tr><th class=\"l\">observation</th><th class=\"l\">verdict</th><th class=\"l\">summary</th></tr>\n");
    for o in &obs {
        let colour = match o.verdict {
            Verdict::Appears => "#1a7f37",
            Verdict::Partly => "#9a6700",
            Verdict::DoesNotAppear => "#cf222e",
            Verdict::NotMeasured => "#57606a",
        };
        let _ = writeln!(
            top,
            "<tr><td class=\"l\">{}</td><td class=\"l\" style=\"color:{colour}\"><b>{}</b></td><td class=\"l\">{}</td></tr>",
            esc(&o.title),
            o.verdict.text(),
            esc(&o.summary)
        );
    }
    top.push_str("</table>\n");
    for o in &obs {
        let _ = writeln!(
            top,
            "<h3>{}: {}</h3>\n<ul>",
            esc(&o.title),
            o.verdict.text()
        );
        for d in &o.details {
            let _ = writeln!(top, "<li>{}</li>", esc(d));
        }
        top.push_str("</ul>\n");
    }
    let _ = writeln!(
        top,
        "<details><summary>How the verdicts are decided</summary><pre>{}</pre></details>",
        esc(experiment::RULES)
    );
    let mut bottom = String::new();
    if inputs.experiment.is_none() {
        return Ok((top, bottom));
    }
    let first = figs.made.len();
    if !exp.training.is_empty() {
        let mut series = vec![Series {
            label: "training loss".into(),
            points: exp
                .training
                .iter()
                .map(|p| (p.step as f64, p.loss))
                .collect(),
            color: palette(0),
        }];
        if !exp.heldout.is_empty() {
            series.push(Series {
                label: "held-out loss (checkpoints)".into(),
                points: exp
                    .heldout
                    .iter()
                    .map(|p| (p.step as f64, p.loss))
                    .collect(),
                color: palette(1),
            });
        }
        let mut panels = vec![LinePanel {
            title: "pre-training".into(),
            x_label: "step".into(),
            y_label: "cross-entropy (nats/token)".into(),
            series,
            x_log: false,
            reference: None,
            x_integer: false,
        }];
        if !exp.sft.is_empty() {
            panels.push(LinePanel {
                title: "instruction tuning (answer tokens)".into(),
                x_label: "step".into(),
                y_label: "cross-entropy (nats/token)".into(),
                series: vec![Series {
                    label: "training loss".into(),
                    points: exp.sft.iter().map(|p| (p.step as f64, p.loss)).collect(),
                    color: palette(2),
                }],
                x_log: false,
                reference: None,
                x_integer: false,
            });
        }
        figs.add(
            &format!("{EXPERIMENT}training"),
            "training_loss",
            "Training loss per step; held-out loss at each saved checkpoint.".into(),
            (1200, 460),
            &Figure::Lines(panels),
        )?;
    }
    let trust: BTreeSet<&str> = exp
        .results
        .iter()
        .filter(|r| r.role == "trust")
        .map(|r| r.task.as_str())
        .collect();
    for t in &trust {
        let base = exp
            .results
            .iter()
            .find(|r| r.source.is_none() && r.task == *t);
        let roles: BTreeSet<&str> = exp
            .results
            .iter()
            .filter(|r| r.task == *t && r.source.is_some())
            .filter_map(|r| r.source_role.as_deref())
            .collect();
        let line = |role: &str, task: &str, i: usize| -> Series {
            let mut pts: Vec<(f64, f64)> = exp
                .results
                .iter()
                .filter(|r| {
                    r.source_role.as_deref() == Some(role)
                        && r.task == task
                        && (task == *t || r.target.as_deref() == Some(*t))
                })
                .map(|r| (r.alpha, r.value))
                .collect();
            if let Some(b) = exp
                .results
                .iter()
                .find(|r| r.source.is_none() && r.task == task)
            {
                pts.push((0.0, b.value));
            }
            pts.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
            let src = exp
                .results
                .iter()
                .find(|r| r.source_role.as_deref() == Some(role) && r.task == *t)
                .and_then(|r| r.source.clone())
                .unwrap_or_default();
            Series {
                label: format!("vector from {src} ({role})"),
                points: pts,
                color: palette(i),
            }
        };
        // One panel per task under this steering: the trust task, then each capability task.
        let panel = |task: &str, title: String, x_label: &str| -> LinePanel {
            let b = exp
                .results
                .iter()
                .find(|r| r.source.is_none() && r.task == task);
            LinePanel {
                title,
                x_label: x_label.into(),
                y_label: b.map_or("metric".into(), |b| b.metric.clone()),
                series: roles
                    .iter()
                    .enumerate()
                    .map(|(i, r)| line(r, task, i))
                    .collect(),
                x_log: false,
                reference: b.map(|b| b.value),
                x_integer: false,
            }
        };
        let mut panels = vec![panel(
            t,
            format!(
                "{t}: {} ({} is better)",
                base.map_or("", |b| b.metric.as_str()),
                if base.is_none_or(|b| b.higher_is_better) {
                    "higher"
                } else {
                    "lower"
                }
            ),
            "α (signed toward trustworthy)",
        )];
        let caps: BTreeSet<&str> = exp
            .results
            .iter()
            .filter(|r| r.role == "capability" && r.target.as_deref() == Some(*t))
            .map(|r| r.task.as_str())
            .collect();
        for c in caps {
            panels.push(panel(
                c,
                format!("capability: {c} under the same steering"),
                "α",
            ));
        }
        figs.add(
            &format!("{EXPERIMENT}steering"),
            &format!("steering_{}", safe(t)),
            format!("{t} of the chat model against α, for each vector source (α = 0: unsteered; the grey line marks it), and the capability task under the same steering (the paper's Figure 4)."),
            (1200, 460),
            &Figure::Lines(panels),
        )?;
    }
    let made: Vec<(String, String, PathBuf)> = figs.made[first..].to_vec();
    if !exp.training.is_empty() || exp.sft_heldout.is_some() {
        bottom.push_str("<h2 id=\"training\">Training</h2>\n");
        if let Some((b, a)) = exp.sft_heldout {
            let _ = writeln!(
                bottom,
                "<p>Instruction tuning: held-out answer loss {b:.3} → {a:.3}.</p>"
            );
        }
        for (_, c, p) in made.iter().filter(|m| m.0.ends_with("training")) {
            figure_html(&mut bottom, c, p)?;
        }
    }
    if !exp.results.is_empty() {
        bottom.push_str("<h2 id=\"steering\">Evaluation and steering</h2>\n");
        if let Some(l) = exp.steer_layer {
            let _ = writeln!(bottom, "<p>Vectors are built at, and added to the output of, block {l} (<code>blocks.{l}.hook_resid_post</code>).</p>");
        }
        for (_, c, p) in made.iter().filter(|m| m.0.ends_with("steering")) {
            figure_html(&mut bottom, c, p)?;
        }
        bottom.push_str("<table><tr><th class=\"l\">task</th><th class=\"l\">metric</th><th class=\"l\">vector source</th><th class=\"l\">dataset</th><th>α</th><th>value</th><th>± s.e.</th><th>n</th></tr>\n");
        for r in &exp.results {
            let _ = writeln!(
                bottom,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{:+}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
                esc(&r.task),
                esc(&r.metric),
                esc(&r.source.clone().map_or("(unsteered)".into(), |s| format!("{s} ({})", r.source_role.clone().unwrap_or_default()))),
                esc(r.dataset.as_deref().unwrap_or("")),
                r.alpha,
                r.value,
                r.stderr,
                r.n
            );
        }
        bottom.push_str("</table>\n");
    }
    if !exp.commands.is_empty() {
        let _ = writeln!(
            bottom,
            "<h2 id=\"commands\">Commands</h2>\n<p>From <code>{}</code>; each step is this pretrace command, and running them in order reproduces the run.</p><pre>{}</pre>",
            esc(&exp.file),
            esc(&exp.commands.join("\n"))
        );
    }
    Ok((top, bottom))
}

fn html(
    inputs: &Inputs,
    opts: &Options,
    probes: &[ProbeRow],
    info: &[InfoRow],
    axis: &Axis,
    figs: &[(String, String, PathBuf)],
    protocol: &str,
) -> Result<String, ReportError> {
    let mut h = String::new();
    let title = opts
        .title
        .clone()
        .unwrap_or_else(|| "pretrace report".to_string());
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\
body{{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;color:#222}}\
h1{{font-size:1.6em}}h2{{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}}\
table{{border-collapse:collapse;font-size:.8em;margin:.5em 0}}td,th{{border:1px solid #ddd;padding:2px 6px;text-align:right}}\
th{{background:#f3f3f3}}td.l,th.l{{text-align:left}}figure{{margin:1em 0}}img{{max-width:100%;border:1px solid #eee}}\
figcaption{{font-size:.9em;color:#444}}pre{{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}}\
</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    // Provenance.
    let _ = write!(h, "<h2 id=\"provenance\">What produced this</h2>\n<p>Activation store <code>{}</code>; {} checkpoint(s), {} dataset(s); probes: the <b>{}</b> protocol; information plane: {}.</p>\n",
        esc(&inputs.store),
        axis.order.len(),
        probes.iter().map(|r| &r.dataset).chain(info.iter().map(|r| &r.dataset)).collect::<BTreeSet<_>>().len(),
        esc(protocol),
        esc(&info.iter().map(|r| r.estimator.as_str()).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", ")));
    h.push_str("<h3>Checkpoints</h3>\n<table><tr><th class=\"l\">checkpoint</th><th>step</th><th>tokens</th><th class=\"l\">architecture</th><th>layers</th><th>d_model</th><th class=\"l\">source</th></tr>\n");
    let mut seen = BTreeSet::new();
    let mut by_ckpt: BTreeMap<(Option<u64>, String), &Manifest> = BTreeMap::new();
    for m in &inputs.manifests {
        by_ckpt
            .entry((m.checkpoint.step, m.checkpoint.name.clone()))
            .or_insert(m);
    }
    for ((step, name), m) in &by_ckpt {
        let cfg = &m.checkpoint.config;
        let field = |k: &[&str]| {
            k.iter()
                .find_map(|k| cfg.get(*k))
                .map(|v| v.to_string().trim_matches('"').to_string())
                .unwrap_or_default()
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            esc(name),
            step.map_or(String::new(), |s| s.to_string()),
            m.checkpoint.tokens.map_or(String::new(), |t| t.to_string()),
            esc(&field(&["arch", "model_type"])),
            esc(&field(&["n_layers", "num_hidden_layers"])),
            esc(&field(&["d_model", "hidden_size"])),
            esc(&match &m.checkpoint.hub {
                // The hub reference and commit, which fix the files wherever the cache lives.
                Some(hub) => {
                    let mut s = format!("{} (commit {})", hub.reference, hub.commit);
                    if let Some(t) = &hub.tokenizer {
                        s.push_str(&format!("; tokenizer from {t}"));
                    }
                    s
                }
                None => m.checkpoint.path.clone(),
            })
        );
    }
    h.push_str("</table>\n<h3>Datasets</h3>\n<table><tr><th class=\"l\">dataset</th><th>rows</th><th class=\"l\">text, label columns</th><th class=\"l\">sha256</th><th class=\"l\">path</th></tr>\n");
    for m in &inputs.manifests {
        if seen.insert(m.dataset.name.clone()) {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}, {}</td><td class=\"l\"><code>{}</code></td><td class=\"l\">{}</td></tr>",
                esc(&m.dataset.name),
                m.dataset.rows,
                esc(&m.dataset.text_column),
                esc(m.dataset.label_column.as_deref().unwrap_or("-")),
                esc(&m.dataset.sha256),
                esc(&m.dataset.path)
            );
        }
    }
    h.push_str("</table>\n");
    if let Some(m) = inputs.manifests.first() {
        let x = &m.extraction;
        let _ = writeln!(
            h,
            "<p>Extraction: site <code>{}</code>, token rule <code>{}</code>, template {}, compute {}, stored {}; tool <code>{}</code>.</p>",
            esc(&x.site),
            esc(&x.token),
            x.template.as_deref().map_or("none".to_string(), |t| format!("<code>{}</code>", esc(t))),
            esc(&x.compute_dtype),
            esc(&x.store_dtype),
            esc(&m.tool)
        );
    }
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let mut info_settings = inputs.infoplane.clone();
    if let Some(o) = info_settings.as_object_mut() {
        o.remove("rows");
    }
    let _ = writeln!(
        h,
        "<details><summary>Probe protocol and estimator settings</summary><pre>{}</pre><pre>{}</pre></details>",
        esc(&pretty(&inputs.probes["protocol"])),
        esc(&pretty(&info_settings))
    );
    // Figures and tables per dataset.
    let sections: Vec<&String> = figs
        .iter()
        .map(|f| &f.0)
        .filter(|s| !s.starts_with(EXPERIMENT))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for ds in sections {
        let _ = writeln!(h, "<h2 id=\"{}\">{}</h2>", esc(&safe(ds)), esc(ds));
        for (_, caption, png) in figs.iter().filter(|f| &f.0 == ds) {
            let bytes = std::fs::read(png).map_err(|e| {
                ReportError::Invalid(format!("{}: cannot read back ({e})", png.display()))
            })?;
            let _ = writeln!(
                h,
                "<figure><img alt=\"{}\" src=\"data:image/png;base64,{}\"><figcaption>{} <small>(<code>figures/{}</code>, SVG beside it)</small></figcaption></figure>",
                esc(caption),
                base64(&bytes),
                esc(caption),
                esc(&png.file_name().unwrap_or_default().to_string_lossy())
            );
        }
        let pr: Vec<&ProbeRow> = probes.iter().filter(|r| &r.dataset == ds).collect();
        if !pr.is_empty() {
            let layers: BTreeSet<usize> = pr.iter().map(|r| r.layer).collect();
            let cv = pr.iter().any(|r| r.control_accuracy.is_some());
            let _ = write!(h, "<details open><summary>Probe accuracy ({}{})</summary><table><tr><th class=\"l\">checkpoint</th><th>step</th>",
                esc(protocol), if cv { "; mean over folds, control in brackets" } else { "" });
            for l in &layers {
                let _ = write!(h, "<th>L{l}</th>");
            }
            h.push_str("</tr>\n");
            for (s, c) in &axis.order {
                let _ = write!(
                    h,
                    "<tr><td class=\"l\">{}</td><td>{}</td>",
                    esc(c),
                    s.map_or(String::new(), |s| s.to_string())
                );
                for l in &layers {
                    let r = pr.iter().find(|r| &r.checkpoint == c && r.layer == *l);
                    let cell = match r {
                        Some(r) => {
                            let a = r.accuracy.map_or("–".to_string(), |a| format!("{a:.3}"));
                            match r.control_accuracy {
                                Some(k) => format!("{a} ({k:.2})"),
                                None => a,
                            }
                        }
                        None => String::new(),
                    };
                    let _ = write!(h, "<td>{cell}</td>");
                }
                h.push_str("</tr>\n");
            }
            h.push_str("</table>");
            let notes: BTreeSet<&str> = pr
                .iter()
                .map(|r| r.note.as_str())
                .filter(|n| !n.is_empty())
                .collect();
            for n in notes {
                let _ = write!(h, "<p><small>Note: {}</small></p>", esc(n));
            }
            let (ntr, nte) = (pr[0].n_train, pr[0].n_test);
            let _ = writeln!(
                h,
                "<p><small>{ntr} training and {nte} test rows per probe.</small></p></details>"
            );
        }
        let ir: Vec<&InfoRow> = info.iter().filter(|r| &r.dataset == ds).collect();
        if !ir.is_empty() {
            let _ = writeln!(h, "<details><summary>Information-plane estimates (m = {} rows)</summary><table><tr><th class=\"l\">estimator</th><th class=\"l\">checkpoint</th><th>step</th><th>layer</th><th>I(T;X)</th><th>I(T;Y)</th></tr>", ir[0].m);
            for r in ir {
                let _ = writeln!(
                    h,
                    "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{:.6}</td><td>{:.6}</td></tr>",
                    esc(&r.estimator),
                    esc(&r.checkpoint),
                    r.step.map_or(String::new(), |s| s.to_string()),
                    r.layer,
                    r.i_tx,
                    r.i_ty
                );
            }
            h.push_str("</table></details>\n");
        }
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn spread_picks_first_middle_and_last() {
        let l: BTreeSet<usize> = (0..30).collect();
        assert_eq!(spread(&l, 5), vec![0, 7, 15, 22, 29]);
        let l: BTreeSet<usize> = [0, 8, 12].into_iter().collect();
        assert_eq!(spread(&l, 5), vec![0, 8, 12]);
    }

    #[test]
    fn log_axis_for_steps_over_two_decades() {
        let a = Axis::new(
            [
                (Some(0), "step0".into()),
                (Some(1000), "step1000".into()),
                (Some(143000), "step143000".into()),
            ]
            .into_iter()
            .collect(),
        );
        assert!(a.log);
        assert_eq!(a.x["step0"], 1.0);
        let a = Axis::new(
            [(Some(10), "a".into()), (Some(20), "b".into())]
                .into_iter()
                .collect(),
        );
        assert!(!a.log);
        assert_eq!(a.x["b"], 20.0);
    }
}
