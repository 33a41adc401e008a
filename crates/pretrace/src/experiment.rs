//! Experiment files (TOML): which checkpoints and datasets, the extraction, probe and
//! information-plane settings, the steering sources and α grid, and the trust and capability tasks.
//! [`ExperimentFile::parse`] reads one and checks every value before any work starts.

use pretrace_lab::tasks::{trust_sign, LabTask};
use serde::Deserialize;

/// Why an experiment file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The TOML does not parse into an experiment file.
    #[error(
        "{file}: not a valid experiment file{at}: {msg}; see experiments/lab.toml for the format"
    )]
    Parse {
        file: String,
        at: String,
        msg: String,
    },
    /// A value is out of range or names something unknown.
    #[error("{file}: not a usable experiment file: {msg}")]
    Invalid { file: String, msg: String },
}

impl ExperimentFile {
    /// Parses and validates `text` (read from `file`, named in messages).
    pub fn parse(text: &str, file: &str) -> Result<ExperimentFile, ExperimentError> {
        let f: ExperimentFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(String::new(), |sp| {
                let start = sp.start.min(text.len());
                let before = text.get(..start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line}, column {col}")
            });
            ExperimentError::Parse {
                file: file.to_string(),
                at,
                msg: pretrace_core::shown(e.message().trim(), 1000),
            }
        })?;
        validate(&f).map_err(|msg| ExperimentError::Invalid {
            file: file.to_string(),
            msg: pretrace_core::shown(&msg, 1000),
        })?;
        Ok(f)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    pub title: Option<String>,
    /// Where every step that runs a model runs it, as `--device` takes it: `cpu` (default),
    /// `cuda` or `cuda:N`.
    pub device: Option<String>,
    /// Pre-train and instruction-tune the lab's model; `models.suite = "lab"` and
    /// `models.chat = "lab"` then name its checkpoints.
    pub lab: Option<Lab>,
    pub models: Models,
    /// `"lab"` (the lab's five probe datasets) or a list of data files.
    pub datasets: Datasets,
    #[serde(default)]
    pub extract: Extract,
    #[serde(default)]
    pub probe: Probe,
    #[serde(default)]
    pub infoplane: Infoplane,
    pub steer: Option<Steer>,
    #[serde(default)]
    pub trust: Vec<TaskSpec>,
    #[serde(default)]
    pub capability: Vec<TaskSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lab {
    pub seed: Option<u64>,
    pub docs: Option<usize>,
    pub probe_rows: Option<usize>,
    pub vocab: Option<usize>,
    pub steps: Option<usize>,
    pub batch: Option<usize>,
    pub seq: Option<usize>,
    pub lr: Option<f64>,
    pub warmup: Option<usize>,
    pub d_model: Option<usize>,
    pub layers: Option<usize>,
    pub heads: Option<usize>,
    pub d_mlp: Option<usize>,
    pub sft_steps: Option<usize>,
    pub sft_examples: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Models {
    /// A folder of pre-training checkpoints, a hub repository `hf:ORG/NAME` (its revisions from
    /// `revisions`), or "lab".
    pub suite: String,
    /// The revisions of a hub suite, as `--revisions` takes them: names (`step0,step1000`), globs
    /// (`step*`) or `all`.
    pub revisions: Option<String>,
    /// The suite's tokenizer from this folder or hub reference, as `--tokenizer` (the chat model
    /// keeps its own).
    pub tokenizer: Option<String>,
    /// The fine-tuned model that is evaluated and steered (a folder, `hf:ORG/NAME[@REV]`), or
    /// "lab".
    pub chat: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Datasets {
    Keyword(String),
    Files(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extract {
    pub layers: Option<String>,
    pub token: Option<String>,
    pub template: Option<String>,
    pub batch_size: Option<usize>,
    /// Disk budget for the hub downloads of a sweep, as `--cache-budget` (`30G`, `512M`).
    pub cache_budget: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// paper or cv.
    pub protocol: Option<String>,
    pub folds: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Infoplane {
    pub estimators: Option<Vec<String>>,
    pub max_rows: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Steer {
    /// "mid" (the suite checkpoint nearest half its last step), "chat" (the chat model itself),
    /// or checkpoint names of the suite.
    pub sources: Vec<String>,
    /// "middle" (n_layers / 2) or a block index.
    pub layer: Option<toml::Value>,
    pub method: Option<String>,
    /// α magnitudes; each trust task's sign turns them toward trustworthy behaviour.
    pub alphas: Vec<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub task: String,
    /// The data file (`pretrace eval` tasks).
    pub data: Option<String>,
    /// The store dataset its vectors are built from (lab tasks: implied).
    pub dataset: Option<String>,
    /// +1 when adding the dataset's vector (label 1 positive) should improve the task, −1 when
    /// subtracting it should (lab tasks: implied).
    pub sign: Option<f64>,
    /// The metric to read, and whether higher is better (`pretrace eval` tasks; defaults: the
    /// task's headline metric).
    pub metric: Option<String>,
    pub higher_is_better: Option<bool>,
    pub classifier: Option<String>,
    pub limit: Option<usize>,
    pub shots: Option<usize>,
    /// Rows the vector is built from: "half" (the first half, the default) or "all".
    pub rows: Option<String>,
}

impl TaskSpec {
    pub fn lab(&self) -> Option<LabTask> {
        LabTask::parse(&self.task).ok()
    }
    pub fn dataset(&self) -> Result<String, String> {
        match (&self.dataset, self.lab().and_then(|t| t.concept())) {
            (Some(d), _) => Ok(d.clone()),
            (None, Some(c)) => Ok(c.to_string()),
            (None, None) => Err(format!(
                "trust task '{}': give `dataset`, the store dataset its steering vectors are built from",
                self.task
            )),
        }
    }
    pub fn sign(&self) -> Result<f64, String> {
        match (self.sign, self.lab()) {
            (Some(s), _) if s == 1.0 || s == -1.0 => Ok(s),
            (Some(s), _) => Err(format!("trust task '{}': sign must be 1 or -1, not {s}", self.task)),
            (None, Some(_)) => Ok(trust_sign(&self.dataset()?)),
            (None, None) => Err(format!(
                "trust task '{}': give `sign` (1: adding the label-1 direction improves it; -1: subtracting it does)",
                self.task
            )),
        }
    }
}

/// Checks every setting of an experiment file before anything runs, so that a bad value fails a
/// dry run and never surfaces after pre-training and extraction.
pub fn validate(f: &ExperimentFile) -> Result<(), String> {
    if let Some(lab) = &f.lab {
        let d = pretrace_lab::pretrain::Plan::default();
        pretrace_lab::pretrain::check_sizes(
            lab.docs.unwrap_or(d.docs),
            lab.probe_rows.unwrap_or(d.probe_rows),
            lab.vocab.unwrap_or(d.vocab),
        )
        .map_err(|e| format!("[lab] docs, probe_rows and vocab: {e}"))?;
        for (name, v) in [
            ("steps", lab.steps),
            ("batch", lab.batch),
            ("d_model", lab.d_model),
            ("layers", lab.layers),
            ("heads", lab.heads),
            ("d_mlp", lab.d_mlp),
            ("sft_steps", lab.sft_steps),
            ("sft_examples", lab.sft_examples),
        ] {
            if v == Some(0) {
                return Err(format!("[lab] {name} = 0: give at least 1"));
            }
        }
        if lab.seq.is_some_and(|s| s < 2) {
            return Err("[lab] seq must be at least 2".to_string());
        }
        if lab.lr.is_some_and(|x| !(x.is_finite() && x > 0.0)) {
            return Err("[lab] lr must be a positive number".to_string());
        }
    }
    if let Some(l) = &f.extract.layers {
        pretrace_sweep::LayerSpec::parse(l).map_err(|e| format!("[extract] layers: {e}"))?;
    }
    if let Some(t) = f
        .extract
        .token
        .as_deref()
        .filter(|t| !["last", "mean"].contains(t))
    {
        return Err(format!(
            "[extract] token = \"{t}\": give \"last\" or \"mean\""
        ));
    }
    if let Some(t) = f
        .extract
        .template
        .as_deref()
        .filter(|t| !t.contains("{text}"))
    {
        return Err(format!(
            "[extract] template = \"{t}\" does not contain {{text}}"
        ));
    }
    if let Some(d) = &f.device {
        pretrace_model::DeviceSpec::parse(d).map_err(|e| format!("device: {e}"))?;
    }
    let hub_suite = f.models.suite.starts_with("hf:");
    if let (Some(r), false) = (&f.models.revisions, hub_suite) {
        return Err(format!(
            "[models] revisions = \"{r}\" applies to a hub suite: set suite = \"hf:ORG/NAME\", or select a folder's checkpoints without it"
        ));
    }
    if hub_suite && f.models.suite.contains('@') && f.models.revisions.is_some() {
        return Err(format!(
            "[models] suite = \"{}\" names one revision and revisions names more: drop one of them",
            f.models.suite
        ));
    }
    if let Some(b) = &f.extract.cache_budget {
        if pretrace_sweep::parse_size(b).is_err() {
            return Err(format!(
                "[extract] cache_budget = \"{b}\": not a size; write e.g. \"30G\", \"512M\" or a number of bytes"
            ));
        }
    }
    if f.extract.batch_size == Some(0) {
        return Err("[extract] batch_size = 0: give at least 1".to_string());
    }
    if let Some(p) = f
        .probe
        .protocol
        .as_deref()
        .filter(|p| !["paper", "cv"].contains(p))
    {
        return Err(format!(
            "[probe] protocol = \"{p}\": give \"paper\" or \"cv\""
        ));
    }
    if let Some(k) = f.probe.folds.filter(|&k| k < 2) {
        return Err(format!(
            "[probe] folds = {k}: cross-validation needs at least 2"
        ));
    }
    for e in f.infoplane.estimators.iter().flatten() {
        if pretrace_info::Estimator::parse(e).is_none() {
            return Err(format!("[infoplane] estimator \"{e}\" is unknown; choose from nhsic-paper, hsic, hsic-normalized, ksg"));
        }
    }
    if f.infoplane.max_rows.is_some_and(|m| m < 2) {
        return Err("[infoplane] max_rows must be at least 2".to_string());
    }
    if let Some(st) = &f.steer {
        if st.sources.is_empty() {
            return Err(
                "[steer] sources is empty: give \"mid\", \"chat\" or checkpoint names".to_string(),
            );
        }
        if let Some(m) = st
            .method
            .as_deref()
            .filter(|m| !["paper", "mean-diff", "pca"].contains(m))
        {
            return Err(format!(
                "[steer] method = \"{m}\": give paper, mean-diff or pca"
            ));
        }
        if st.alphas.is_empty() {
            return Err("[steer] alphas is empty: give the α magnitudes to try".to_string());
        }
        if let Some(a) = st.alphas.iter().find(|a| !a.is_finite()) {
            return Err(format!("[steer] alpha {a} is not a finite number"));
        }
        match &st.layer {
            None => {}
            Some(toml::Value::String(m)) if m == "middle" => {}
            Some(toml::Value::Integer(i)) if *i >= 0 => {}
            Some(v) => {
                return Err(format!(
                    "[steer] layer = {v:?}: give \"middle\" or a block index"
                ))
            }
        }
    }
    for (section, tasks, trust) in [
        ("trust", &f.trust, true),
        ("capability", &f.capability, false),
    ] {
        for t in tasks {
            let lab = t.lab().is_some();
            if !lab {
                if pretrace_eval::tasks::Task::parse(&t.task).is_err() {
                    return Err(format!(
                        "[[{section}]] task \"{}\" is unknown; lab tasks: {}; eval tasks: see `pretrace eval --help`",
                        t.task,
                        pretrace_lab::tasks::LAB_TASKS.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
                    ));
                }
                if t.data.is_none() {
                    return Err(format!(
                        "[[{section}]] task \"{}\": give `data`, the file it is evaluated on",
                        t.task
                    ));
                }
            }
            if let Some(r) = t.rows.as_deref().filter(|r| !["half", "all"].contains(r)) {
                return Err(format!(
                    "[[{section}]] task \"{}\": rows = \"{r}\": give \"half\" or \"all\"",
                    t.task
                ));
            }
            if trust && f.steer.is_some() {
                t.dataset()?;
                t.sign()?;
            }
        }
    }
    Ok(())
}
