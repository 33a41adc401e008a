//! `pretrace steer`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use pretrace_model::{Model, Positions};
use pretrace_steer::{build, to_safetensors, Method, Rows, Steer, VectorFile};
use pretrace_store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct SteerArgs {
    #[command(subcommand)]
    command: SteerCommand,
}

#[derive(Subcommand)]
enum SteerCommand {
    /// Build a steering vector per layer from one (checkpoint, dataset) entry of an activation store.
    Build(BuildArgs),
    /// Write a vector file in another tool's format: `gguf` is a llama.cpp control vector
    /// (`llama-cli --control-vector FILE.gguf`), which llama.cpp adds at every position.
    Export(ExportArgs),
    /// Vectors from several source checkpoints × layers × alpha applied to a target model and
    /// evaluated: sweep.csv, sweep.json and the paper's Figures 4 (metric and perplexity against
    /// alpha) and 5 (steering gain against the source's probe accuracy, with Pearson r).
    Sweep(Box<crate::sweep_steer::SweepArgs>),
}

#[derive(Args)]
struct ExportArgs {
    /// The vector file (`pretrace steer build`, or any safetensors file of
    /// `blocks.{L}.hook_resid_post` vectors).
    #[arg(long, value_name = "VEC.safetensors")]
    vector: PathBuf,
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Output file (written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Layers to export (default: every layer in the file). llama.cpp cannot steer block 0.
    #[arg(long, value_delimiter = ',')]
    layers: Option<Vec<usize>>,
    /// Multiplies the vectors (llama.cpp's `--control-vector-scaled FILE STRENGTH` scales again).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true, value_parser = crate::finite_f32)]
    alpha: f32,
    /// llama.cpp architecture name for `controlvector.model_hint` (default: from the file's
    /// provenance).
    #[arg(long)]
    model_hint: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// llama.cpp control vector.
    Gguf,
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
        SteerCommand::Export(e) => run_export(e),
        SteerCommand::Sweep(s) => crate::sweep_steer::run_sweep(*s),
    }
}

fn run_export(a: ExportArgs) -> Result<()> {
    let file = VectorFile::read(&a.vector)?;
    for w in &file.warnings {
        eprintln!("warning: {w}");
    }
    if file.layers.is_empty() {
        bail!(
            "{}: the vector has no layer (tensor '{}'); name it blocks.{{L}}.hook_resid_post to export it",
            a.vector.display(),
            file.unnamed.as_ref().map_or("", |(n, _)| n.as_str())
        );
    }
    let layers: Vec<usize> = a
        .layers
        .clone()
        .unwrap_or_else(|| file.layers.keys().copied().collect());
    let mut vectors = BTreeMap::new();
    for l in layers {
        let Some(v) = file.layers.get(&l) else {
            bail!(
                "{}: no vector for layer {l}; the file holds layers {:?}",
                a.vector.display(),
                file.layers.keys().collect::<Vec<_>>()
            );
        };
        vectors.insert(l, v.clone());
    }
    let hint = match (&a.model_hint, file.provenance.as_ref().and_then(|m| m.get("architecture"))) {
        (Some(h), _) => h.clone(),
        (None, Some(arch)) if !arch.is_empty() => pretrace_steer::gguf::llama_cpp_arch(arch).to_string(),
        _ => bail!(
            "{}: the file does not say which architecture it was built on; give --model-hint (e.g. llama)",
            a.vector.display()
        ),
    };
    let bytes = match a.format {
        ExportFormat::Gguf => pretrace_steer::gguf::control_vector(&vectors, a.alpha, &hint)
            .with_context(|| a.vector.display().to_string())?,
    };
    create_parent(&a.out)?;
    pretrace_store::write_atomic(&a.out, &bytes)?;
    eprintln!(
        "wrote {} (llama.cpp control vector, directions {:?}, alpha {}, model_hint {hint}); \
         llama.cpp adds it at every position: the same as --steer-positions all",
        a.out.display(),
        vectors.keys().collect::<Vec<_>>(),
        a.alpha
    );
    Ok(())
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
    let mut meta: BTreeMap<String, String> = [
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
    if let Some(h) = &ck.hub {
        // The hub reference and commit fix the source's files wherever the cache lives.
        meta.insert(
            "source_model".into(),
            format!("{} (commit {})", h.reference, h.commit),
        );
        meta.insert("source_hub".into(), h.reference.clone());
        meta.insert("source_commit".into(), h.commit.clone());
        if let Some(t) = &h.tokenizer {
            meta.insert("source_tokenizer".into(), t.clone());
        }
    }
    let bytes = to_safetensors(&vectors, &meta)?;
    create_parent(&a.out)?;
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

/// `--steer` and its settings, shared by every command that runs a model.
#[derive(Args, Clone, Debug)]
pub struct SteerFlags {
    /// Add a steering vector: a file from `pretrace steer build` (or any safetensors file of 1-D
    /// vectors named `blocks.{L}.hook_resid_post`, or holding a single vector).
    #[arg(long, value_name = "VEC.safetensors")]
    pub steer: Option<PathBuf>,
    /// The block whose output (`blocks.{L}.hook_resid_post`) gets alpha·v; default: the file's only
    /// layer.
    #[arg(long, value_name = "L", requires = "steer")]
    pub steer_layer: Option<usize>,
    /// The multiplier of the vector.
    #[arg(
        long,
        default_value_t = 1.0,
        requires = "steer",
        allow_hyphen_values = true,
        value_parser = crate::finite_f64
    )]
    pub alpha: f64,
    /// Which positions get the vector in each forward call: the last (the last prompt token, then
    /// each generated token: the paper's rule) or all. Padding never does.
    #[arg(long, value_enum, default_value_t = PositionsArg::Last, requires = "steer")]
    pub steer_positions: PositionsArg,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum PositionsArg {
    Last,
    All,
}

impl PositionsArg {
    pub fn name(self) -> &'static str {
        match self {
            PositionsArg::Last => "last",
            PositionsArg::All => "all",
        }
    }
}

/// A resolved steering setting: the hook to pass to the model, and what to record about it.
pub struct Steering {
    pub hook: Steer,
    pub settings: serde_json::Value,
}

impl SteerFlags {
    /// Reads the vector file and settles the layer, before any model is loaded, so that a missing
    /// `--steer-layer` or an unreadable file is reported at once. `None` without `--steer`.
    pub fn check(&self) -> Result<Option<(VectorFile, usize)>> {
        let Some(path) = &self.steer else {
            return Ok(None);
        };
        let file = VectorFile::read(path)?;
        let layer = match (self.steer_layer, file.default_layer()) {
            (Some(l), _) | (None, Some(l)) => l,
            (None, None) => bail!(
                "{}: {}; choose the layer with --steer-layer L",
                path.display(),
                if file.unnamed.is_some() {
                    "the file holds one vector and does not say which layer it is for".to_string()
                } else {
                    format!(
                        "the file holds vectors for layers {:?}",
                        file.layers.keys().collect::<Vec<_>>()
                    )
                }
            ),
        };
        Ok(Some((file, layer)))
    }

    /// The steering hook for `model`, after reading and checking the vector file (its warnings go to
    /// stderr). `None` without `--steer`.
    pub fn resolve(&self, model: &Model) -> Result<Option<Steering>> {
        let Some((file, layer)) = self.check()? else {
            return Ok(None);
        };
        let path = &file.path;
        for w in &file.warnings {
            eprintln!("warning: {w}");
        }
        let c = &model.config;
        let v = file.vector_for(layer, &c.arch, c.d_model, c.n_layers)?;
        let positions = match self.steer_positions {
            PositionsArg::Last => Positions::Last,
            PositionsArg::All => Positions::All,
        };
        let hook = Steer::new(layer, v, self.alpha, positions)?;
        let prov = file.provenance.as_ref();
        let settings = serde_json::json!({
            "vector": path.display().to_string(),
            "layer": layer,
            "site": format!("blocks.{layer}.hook_resid_post"),
            "alpha": self.alpha,
            "positions": self.steer_positions.name(),
            "vector_norm": hook.vector_norm(),
            "source_checkpoint": prov.and_then(|m| m.get("checkpoint")),
            "source_model": prov.and_then(|m| m.get("source_model")),
            "method": prov.and_then(|m| m.get("method")),
        });
        Ok(Some(Steering { hook, settings }))
    }
}

impl Steering {
    /// Prints how the vector's size compares with the layer's residual stream, once a call has run.
    pub fn report(&self) {
        if let Some(line) = self.hook.norm_report() {
            eprintln!("{line}");
        }
    }
}

/// Creates the folder a file is written into.
pub fn create_parent(path: &Path) -> Result<()> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("{}: cannot create", d.display()))?;
    }
    Ok(())
}
