//! Probes over a whole activation store: every (checkpoint, dataset, layer) cell, in parallel, into
//! `probes.csv` and `probes.json`.

use crate::{cv_probe, paper_probe, CvOptions, LogRegOptions, ProbeError};
use pretrace_store::Store;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Which cells to probe; empty lists mean all.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub checkpoints: Vec<String>,
    pub datasets: Vec<String>,
    pub layers: Vec<usize>,
}

/// How each cell is probed.
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// The paper's code: z-score over all rows, first 80% train, test accuracy.
    Paper,
    /// Stratified k-fold with training-fold standardization and a shuffled-label control.
    Cv(CvOptions),
}

impl Protocol {
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Paper => "paper",
            Protocol::Cv(_) => "cv",
        }
    }
}

/// One cell's result, a row of `probes.csv`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub checkpoint: String,
    pub step: Option<u64>,
    pub dataset: String,
    pub layer: usize,
    /// Test accuracy (empty when there are no test rows); for cv, the mean over folds.
    pub accuracy: Option<f64>,
    /// cv: the standard deviation of the folds' accuracies.
    pub accuracy_std: Option<f64>,
    /// cv: the accuracy of the same protocol on shuffled labels (the control task).
    pub control_accuracy: Option<f64>,
    pub n_train: usize,
    pub n_test: usize,
    pub n_iter: usize,
    pub converged: bool,
    pub constant_features: usize,
    /// What was unusual: a single-class training set, constant features.
    pub note: String,
}

/// The (checkpoint, dataset) entries of `store` that `sel` picks, after checking that they form a
/// grid: at least one entry, every dataset in every checkpoint, and each dataset with the same
/// layers in every checkpoint.
pub fn select_entries(store: &Store, sel: &Selection) -> Result<Vec<(String, String)>, ProbeError> {
    let err = |m: String| ProbeError::Invalid(m);
    let entries = store.entries().map_err(|e| err(e.to_string()))?;
    if entries.is_empty() {
        return Err(err(format!(
            "{}: the store has no entries; run `pretrace extract` into it first",
            store.root.display()
        )));
    }
    let keep = |list: &Vec<String>, v: &str| list.is_empty() || list.iter().any(|x| x == v);
    // The selected checkpoints: every one of them must hold every selected dataset.
    let all_checkpoints: BTreeSet<String> = entries
        .iter()
        .map(|(c, _)| c.clone())
        .filter(|c| keep(&sel.checkpoints, c))
        .collect();
    let entries: Vec<(String, String)> = entries
        .into_iter()
        .filter(|(c, d)| keep(&sel.checkpoints, c) && keep(&sel.datasets, d))
        .collect();
    if entries.is_empty() {
        return Err(err(
            "no entry of the store matches the selected checkpoints and datasets".into(),
        ));
    }
    // Every dataset must be in every checkpoint, with the same layers.
    let checkpoints: BTreeSet<&String> = all_checkpoints.iter().collect();
    let mut by_dataset: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (c, d) in &entries {
        by_dataset.entry(d).or_default().push(c);
    }
    for (d, cs) in &by_dataset {
        if let Some(missing) = checkpoints.iter().find(|c| !cs.contains(c)) {
            return Err(err(format!(
                "{}: dataset '{d}' is missing from checkpoint '{missing}' (it is in {} of {} checkpoints); run `pretrace extract` for it or select checkpoints with --checkpoints",
                store.root.display(),
                cs.len(),
                checkpoints.len()
            )));
        }
    }
    // Every name asked for must exist: a misspelt checkpoint or dataset is an error, not a
    // smaller table.
    let all = store.entries().map_err(|e| err(e.to_string()))?;
    for (asked, what, pick) in [
        (&sel.checkpoints, "checkpoint", 0usize),
        (&sel.datasets, "dataset", 1),
    ] {
        let have: BTreeSet<&String> = all
            .iter()
            .map(|(c, d)| if pick == 0 { c } else { d })
            .collect();
        if let Some(bad) = asked.iter().find(|n| !have.contains(n)) {
            return Err(err(format!(
                "{}: no {what} '{bad}' in the store; it holds {}",
                store.root.display(),
                have.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut layers_of: BTreeMap<&String, (&String, Vec<usize>)> = BTreeMap::new();
    for (c, d) in &entries {
        let m = store
            .manifest(c, d)
            .map_err(|e| err(e.to_string()))?
            .ok_or_else(|| err(format!("{c}/{d}: manifest.json vanished")))?;
        let layers = m.extraction.layers.clone();
        match layers_of.get(d) {
            None => {
                layers_of.insert(d, (c, layers));
            }
            Some((c0, l0)) if *l0 != layers => {
                return Err(err(format!(
                    "{}: dataset '{d}' holds layers {l0:?} in checkpoint '{c0}' but {layers:?} in '{c}'; extract the same --layers for every checkpoint",
                    store.root.display()
                )));
            }
            _ => {}
        }
    }
    // Every layer asked for must be stored for every selected dataset.
    for (d, (c, layers)) in &layers_of {
        if let Some(bad) = sel.layers.iter().find(|l| !layers.contains(l)) {
            return Err(err(format!(
                "{}: layer {bad} is not in the store: dataset '{d}' of checkpoint '{c}' holds layers {}; choose layers from those",
                store.root.display(),
                layer_ranges(layers)
            )));
        }
    }
    Ok(entries)
}

/// `0-29` or `0,4,8` for messages.
fn layer_ranges(layers: &[usize]) -> String {
    match (layers.first(), layers.last()) {
        (Some(a), Some(b)) if layers.len() == b - a + 1 && layers.len() > 2 => format!("{a}-{b}"),
        _ => layers
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Calls `f(k, checkpoint, dataset, entry)` on each entry in order, reading the next entry on another
/// thread while `f` runs, so that reading the store overlaps the work on the previous entry. At most
/// two entries are in memory at once. Stops at the first error `f` returns.
pub fn for_each_entry<E>(
    store: &Store,
    entries: &[(String, String)],
    mut f: impl FnMut(usize, &str, &str, Result<pretrace_store::Entry, String>) -> Result<(), E>,
) -> Result<(), E> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        s.spawn(move || {
            for (c, d) in entries {
                if tx
                    .send(store.read(c, d).map_err(|e| e.to_string()))
                    .is_err()
                {
                    break;
                }
            }
        });
        for (k, ((c, d), e)) in entries.iter().zip(rx.iter()).enumerate() {
            f(k, c, d, e)?;
        }
        Ok(())
    })
}

/// Probes every selected cell of `store` with `protocol`. `progress(done, total, what)` is
/// called as entries finish.
pub fn probe_store(
    store: &Store,
    sel: &Selection,
    protocol: Protocol,
    opts: &LogRegOptions,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<Vec<Row>, ProbeError> {
    let err = |m: String| ProbeError::Invalid(m);
    let entries = select_entries(store, sel)?;
    let total = entries.len();
    let mut rows = Vec::new();
    for_each_entry(store, &entries, |k, c, d, e| {
        let e = e.map_err(err)?;
        if e.labels.iter().any(|&l| l < 0) {
            progress(k + 1, total, &format!("skip {c}/{d}: unlabeled"));
            return Ok(());
        }
        let layers: Vec<usize> = e
            .layers
            .keys()
            .copied()
            .filter(|l| sel.layers.is_empty() || sel.layers.contains(l))
            .collect();
        let step = e.manifest.checkpoint.step;
        let cells: Vec<Result<Row, ProbeError>> = layers
            .par_iter()
            .map(|&l| {
                let m = &e.layers[&l];
                let at = |er: ProbeError| {
                    ProbeError::Invalid(format!("checkpoint '{c}', dataset '{d}', layer {l}: {er}"))
                };
                let mut row = Row {
                    checkpoint: c.to_string(),
                    step,
                    dataset: d.to_string(),
                    layer: l,
                    accuracy: None,
                    accuracy_std: None,
                    control_accuracy: None,
                    n_train: 0,
                    n_test: 0,
                    n_iter: 0,
                    converged: false,
                    constant_features: 0,
                    note: String::new(),
                };
                let mut notes = Vec::new();
                match protocol {
                    Protocol::Paper => {
                        let r = paper_probe(&m.data, m.cols, &e.labels, opts).map_err(at)?;
                        if let Some(class) = r.single_class {
                            notes.push(format!(
                                "training rows hold class {class} only; the probe predicts it"
                            ));
                        }
                        row.accuracy = r.accuracy;
                        row.n_train = r.n_train;
                        row.n_test = r.n_test;
                        row.n_iter = r.model.as_ref().map_or(0, |m| m.n_iter);
                        row.converged = r.model.as_ref().is_some_and(|m| m.converged);
                        row.constant_features = r.constant_features;
                    }
                    Protocol::Cv(cv) => {
                        let r = cv_probe(&m.data, m.cols, &e.labels, &cv, opts).map_err(at)?;
                        if r.single_class_folds > 0 {
                            notes.push(format!(
                                "{} of {} folds trained on one class only and predict it",
                                r.single_class_folds, cv.folds
                            ));
                        }
                        row.accuracy = Some(r.accuracy);
                        row.accuracy_std = Some(r.accuracy_std);
                        row.control_accuracy = Some(r.control_accuracy);
                        row.n_train = r.n_train;
                        row.n_test = r.n_test;
                        row.n_iter = r.n_iter;
                        row.converged = r.n_iter > 0 && r.converged;
                        row.constant_features = r.constant_features;
                    }
                }
                if row.constant_features > 0 {
                    notes.push(format!(
                        "{} constant features set to 0",
                        row.constant_features
                    ));
                }
                row.note = notes.join("; ");
                Ok(row)
            })
            .collect();
        for cell in cells {
            rows.push(cell?);
        }
        progress(k + 1, total, &format!("{c}/{d}"));
        Ok(())
    })?;
    rows.sort_by(|a, b| {
        (a.step, &a.checkpoint, &a.dataset, a.layer).cmp(&(
            b.step,
            &b.checkpoint,
            &b.dataset,
            b.layer,
        ))
    });
    Ok(rows)
}

/// One CSV field, quoted when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes a results table as `dir/{stem}.csv` and `dir/{stem}.json` (pretty-printed), each
/// atomically, creating `dir` if needed.
pub fn write_table(
    dir: &Path,
    stem: &str,
    csv: &str,
    json: &serde_json::Value,
) -> Result<(), ProbeError> {
    let err = |m: String| ProbeError::Invalid(m);
    std::fs::create_dir_all(dir).map_err(|e| {
        err(format!(
            "{}: cannot create ({e}); choose a writable --out",
            dir.display()
        ))
    })?;
    pretrace_store::write_atomic(&dir.join(format!("{stem}.csv")), csv.as_bytes())
        .map_err(|e| err(e.to_string()))?;
    let text = serde_json::to_string_pretty(json).map_err(|e| err(e.to_string()))?;
    pretrace_store::write_atomic(&dir.join(format!("{stem}.json")), text.as_bytes())
        .map_err(|e| err(e.to_string()))
}

/// `probes.csv` (header `checkpoint,step,dataset,layer,accuracy,accuracy_std,control_accuracy,
/// n_train,n_test,n_iter,converged,constant_features,note`; the cv columns are empty for the paper
/// protocol) and `probes.json` in `dir`, each written atomically.
pub fn write_results(
    dir: &Path,
    rows: &[Row],
    protocol: &serde_json::Value,
) -> Result<(), ProbeError> {
    let mut csv = String::from(
        "checkpoint,step,dataset,layer,accuracy,accuracy_std,control_accuracy,n_train,n_test,n_iter,converged,constant_features,note\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |a| format!("{a}"));
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&r.checkpoint),
            r.step.map_or(String::new(), |s| s.to_string()),
            csv_field(&r.dataset),
            r.layer,
            opt(r.accuracy),
            opt(r.accuracy_std),
            opt(r.control_accuracy),
            r.n_train,
            r.n_test,
            r.n_iter,
            r.converged,
            r.constant_features,
            csv_field(&r.note)
        ));
    }
    let json = serde_json::json!({ "protocol": protocol, "probes": rows });
    write_table(dir, "probes", &csv, &json)
}
