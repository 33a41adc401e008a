//! `pretrace`: trace how a language model's representations of trustworthiness form across its
//! pre-training checkpoints. This binary is the only place that uses `anyhow`.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::{Args, Parser, Subcommand, ValueEnum};
use pretrace_model::{Batch, Capture, Checkpoint, Hook, LoadOptions, Logits, Model, Site};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod eval;
mod experiment;
mod extract;
mod hub;
mod infoplane;
mod lab;
mod probe;
mod progress;
mod report;
mod steer;
mod sweep_steer;

/// The version, and whether this build runs models on NVIDIA GPUs.
const VERSION: &str = if cfg!(feature = "cuda") {
    concat!(env!("CARGO_PKG_VERSION"), " (cuda)")
} else {
    concat!(env!("CARGO_PKG_VERSION"), " (cpu only)")
};

#[derive(Parser)]
#[command(
    name = "pretrace",
    version = VERSION,
    about = "Trace trustworthiness representations across pre-training checkpoints, and steer with them."
)]
struct Cli {
    /// Worker threads for the matrix kernels (default: all cores; at most 8 per core).
    #[arg(long, global = true, value_parser = threads_arg)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one sequence through a model and write every layer's residual stream and the logits.
    ///
    /// The output safetensors file holds `input_ids` (I64 [T]), `blocks.{l}.hook_resid_post`
    /// (F32 [T, d_model], the output of block l before the final norm) for every layer, and
    /// `logits` (F32 [T, vocab]).
    Forward(ForwardArgs),
    /// Greedy decoding with a KV cache; stops at the model's end-of-sequence token.
    Generate(GenerateArgs),
    /// Describe a checkpoint: architecture, sizes, weight dtype, parameters, tokenizer.
    Info(ModelArgs),
    /// Run every row of each data file through every checkpoint of a suite and keep the residual
    /// stream after each layer (last token by default) in a resumable activation store.
    Extract(extract::ExtractArgs),
    /// Build one of the paper's datasets from its public source as a statement,label CSV.
    BuildDataset(extract::BuildArgs),
    /// Fit a linear probe per (checkpoint, dataset, layer) of an activation store.
    Probe(probe::ProbeArgs),
    /// Estimate I(T;X) and I(T;Y) per (checkpoint, dataset, layer) of an activation store: the
    /// paper's normalized HSIC, biased HSIC, or KSG mutual information.
    Infoplane(infoplane::InfoplaneArgs),
    /// Figures (PNG and SVG) and a self-contained report.html from a store's probe and
    /// information-plane results, computing them if missing.
    Report(report::ReportArgs),
    /// Steering vectors: build them from an activation store, export them for llama.cpp.
    Steer(steer::SteerArgs),
    /// Evaluate a model (optionally steered) on a task: lm-evaluation-harness-style multiple choice
    /// (arc_easy, arc_challenge, mmlu, race, mathqa, truthfulqa_mc1/mc2), lambada, or the paper's
    /// trust evaluations (confaide, stereoset, sst2, toxigen).
    Eval(eval::EvalArgs),
    /// The mini pre-training lab: `lab corpus` (a generated world, its corpus, probe datasets and
    /// tokenizer), `lab pretrain`, `lab sft`, `lab eval`.
    Lab(lab::LabArgs),
    /// Run an experiment file (TOML): pre-training in the lab if asked, extraction, probes, the
    /// information plane, steering vectors, evaluations and the report, each step printed as the
    /// pretrace command it is. Reruns skip what is done.
    Run(experiment::RunArgs),
    /// The whole paper on a laptop: pre-train and instruction-tune the lab's model, then run the
    /// built-in experiment file experiments/lab.toml on it, ending in report/report.html.
    Demo(experiment::DemoArgs),
}

#[derive(Args)]
struct ModelArgs {
    /// A checkpoint directory (config.json, weights, tokenizer.json), a .gguf file, or a model on
    /// the Hugging Face hub, hf:ORG/NAME or hf:ORG/NAME@REVISION (read from the local cache).
    #[arg(long)]
    model: String,
    /// Compute dtype; weights are converted to it.
    #[arg(long, value_enum, default_value_t = ComputeDType::F32)]
    dtype: ComputeDType,
    /// Take the tokenizer from this folder or hub reference (hf:ORG/NAME[@REVISION]) instead of
    /// the checkpoint's own; a hub revision that ships none takes its repository's main.
    #[arg(long)]
    tokenizer: Option<String>,
    #[command(flatten)]
    device: DeviceArg,
}

/// `--device`, on every command that runs a model.
#[derive(Args, Clone)]
pub struct DeviceArg {
    /// Where the model runs: cpu, cuda (the first GPU) or cuda:N. GPUs need a build with
    /// `--features cuda`; there `--dtype bf16` is the natural choice (f32 accumulation), and f32
    /// runs without TF32, for parity.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArg {
    /// The device, opened: a one-line error when this build or this machine has no such device.
    pub fn open(&self) -> Result<Device> {
        Ok(pretrace_model::DeviceSpec::parse(&self.device)?.open()?)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ComputeDType {
    F32,
    Bf16,
}

#[derive(Args)]
struct ForwardArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Text to tokenize with the checkpoint's tokenizer (taken byte-exact).
    #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
    text: Option<String>,
    /// Token ids, comma-separated.
    #[arg(long, value_delimiter = ',')]
    ids: Option<Vec<u32>>,
    /// Output .safetensors file (written atomically).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    steer: steer::SteerFlags,
}

#[derive(Args)]
struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt (taken byte-exact).
    #[arg(long)]
    text: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 32)]
    max_new_tokens: usize,
    /// Print one JSON object {"ids": [...], "text": "...", "steering": ..., "seconds": ...} (seconds
    /// of generation, loading excluded) instead of the text.
    #[arg(long)]
    json: bool,
    /// Recompute the whole sequence at every step instead of using the KV cache (with
    /// `--steer-positions last`, earlier generated tokens are then not steered again).
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    steer: steer::SteerFlags,
}

/// `--threads`: 1 to 8 per core; more only contend for the cores.
fn threads_arg(s: &str) -> std::result::Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of threads"))?;
    let max = pretrace_core::max_threads();
    if n == 0 || n > max {
        return Err(format!(
            "{n} threads: give 1 to {max} (8 per core on this machine's {} cores)",
            max / 8
        ));
    }
    Ok(n)
}

/// Parses a finite number (negative ones and `-inf` are taken as values, then refused when not
/// finite, so `--alpha -inf` is an error about the value rather than an unknown flag).
pub fn finite_f64(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() {
        return Err(format!(
            "'{s}' is not a finite number; give e.g. -2, 0.5 or 4"
        ));
    }
    Ok(v)
}

/// [`finite_f64`] for an f32 setting: also refuses values beyond f32's range.
pub fn finite_f32(s: &str) -> std::result::Result<f32, String> {
    let v = finite_f64(s)?;
    if v.abs() > f32::MAX as f64 {
        return Err(format!("'{s}' is beyond the range of f32"));
    }
    Ok(v as f32)
}

fn main() {
    pretrace_core::quiet_contained_panics();
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Forward(a) => forward(a),
        Command::Generate(a) => generate(a),
        Command::Info(a) => info(a),
        Command::Extract(a) => extract::run_extract(a),
        Command::BuildDataset(a) => extract::run_build(a),
        Command::Probe(a) => probe::run_probe(a),
        Command::Infoplane(a) => infoplane::run_infoplane(a),
        Command::Report(a) => report::run_report(a),
        Command::Steer(a) => steer::run_steer(a),
        Command::Eval(a) => eval::run_eval(a),
        Command::Lab(a) => lab::run_lab(a),
        Command::Run(a) => experiment::run_file(&a, &run_args),
        Command::Demo(a) => experiment::run_demo(&a, &run_args),
    }
}

/// Runs one pretrace command line (without the program name), as the binary would.
fn run_args(args: &[String]) -> Result<()> {
    let cli =
        Cli::try_parse_from(std::iter::once("pretrace".to_string()).chain(args.iter().cloned()))?;
    run(cli)
}

/// Resolves `--model` and loads it; also returns where it came from, for the record.
fn load(a: &ModelArgs) -> Result<(Checkpoint, pretrace_hub::ResolvedModel)> {
    let dtype = match a.dtype {
        ComputeDType::F32 => DType::F32,
        ComputeDType::Bf16 => DType::BF16,
    };
    let device = a.device.open()?;
    let mut origin = hub::resolve_model(&a.model)?;
    let tokenizer = hub::tokenizer_for(&mut origin, a.tokenizer.as_deref())?;
    let ckpt = Model::load(
        &origin.path,
        &LoadOptions {
            dtype,
            device,
            tokenizer,
        },
    )?;
    Ok((ckpt, origin))
}

fn tokenize(ckpt: &Checkpoint, text: &str) -> Result<Vec<u32>> {
    let tok = ckpt.tokenizer.as_ref().with_context(|| {
        format!("{}: no tokenizer found (tokenizer.json or GGUF tokenizer metadata); pass --ids instead of --text", ckpt.model.source.display())
    })?;
    let ids = tok.encode(text)?;
    if ids.is_empty() {
        bail!("the text {text:?} tokenizes to no tokens; give a non-empty text");
    }
    Ok(ids)
}

fn forward(a: ForwardArgs) -> Result<()> {
    a.steer.check()?;
    pretrace_core::check_target(&a.out)?;
    let (ckpt, origin) = load(&a.model)?;
    let ids = match (&a.text, &a.ids) {
        (Some(t), _) => tokenize(&ckpt, t)?,
        (None, Some(ids)) if !ids.is_empty() => ids.clone(),
        _ => bail!("give --text TEXT or --ids 1,2,3"),
    };
    let m = &ckpt.model;
    let n = m.config.n_layers;
    let mut steering = a.steer.resolve(m)?;
    let mut cap = Capture::new((0..n).map(Site::ResidPost));
    // The steering hook runs first, so the captured stream is the one the model continues with.
    let mut hooks: Vec<&mut dyn Hook> = Vec::new();
    if let Some(s) = steering.as_mut() {
        hooks.push(&mut s.hook);
    }
    hooks.push(&mut cap);
    let logits = m
        .forward(&Batch::single(&ids)?, &mut hooks, Logits::All, None)?
        .context("the model returned no logits")?;
    if let Some(s) = &steering {
        s.report();
    }
    let t = ids.len();
    let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(n + 2);
    tensors.push((
        "input_ids".into(),
        Tensor::new(
            ids.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            &Device::Cpu,
        )?,
    ));
    for l in 0..n {
        let site = Site::ResidPost(l);
        tensors.push((
            site.to_string(),
            cap.get(site)?
                .reshape((t, m.config.d_model))?
                .to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?,
        ));
    }
    tensors.push((
        "logits".into(),
        logits
            .reshape((t, m.config.vocab_size))?
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?,
    ));
    let mut meta = HashMap::from([
        ("model".to_string(), origin.describe()),
        ("arch".to_string(), m.config.arch.clone()),
        (
            "device".to_string(),
            pretrace_model::device::name_of(&m.device),
        ),
        (
            "dtype".to_string(),
            pretrace_model::finite::dtype_name(m.dtype).to_string(),
        ),
    ]);
    if let Some(s) = &steering {
        meta.insert("steering".to_string(), s.settings.to_string());
    }
    write_safetensors_atomic(&a.out, &tensors, meta)?;
    eprintln!("wrote {} ({} tokens, {} layers)", a.out.display(), t, n);
    Ok(())
}

/// Writes a safetensors file atomically (see [`pretrace_core::write_atomic`]).
fn write_safetensors_atomic(
    path: &Path,
    tensors: &[(String, Tensor)],
    meta: HashMap<String, String>,
) -> Result<()> {
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let bytes = safetensors::serialize(refs, Some(meta))?;
    pretrace_core::write_atomic(path, &bytes)?;
    Ok(())
}

fn generate(a: GenerateArgs) -> Result<()> {
    a.steer.check()?;
    let (ckpt, _) = load(&a.model)?;
    let ids = tokenize(&ckpt, &a.text)?;
    let m = &ckpt.model;
    let mut steering = a.steer.resolve(m)?;
    let mut hooks: Vec<&mut dyn Hook> = Vec::new();
    if let Some(s) = steering.as_mut() {
        hooks.push(&mut s.hook);
    }
    let started = std::time::Instant::now();
    let mut max_new = a.max_new_tokens;
    if let Some(room) = m.generation_room(ids.len()) {
        if max_new > room {
            eprintln!(
                "note: the model has {} positions and the prompt takes {}: generating at most {room} tokens",
                m.config.max_positions.unwrap_or(0),
                ids.len()
            );
            max_new = room;
        }
    }
    let out = m.generate_with(
        &[ids],
        max_new,
        &m.config.eos_token_ids,
        !a.no_cache,
        &mut hooks,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(s) = &steering {
        s.report();
    }
    let new = &out[0];
    let text = match &ckpt.tokenizer {
        Some(t) => t.decode(new)?,
        None => String::new(),
    };
    if a.json {
        let steering = steering.map(|s| s.settings);
        println!(
            "{}",
            serde_json::json!({"ids": new, "text": text, "steering": steering, "seconds": seconds})
        );
    } else {
        println!("{text}");
    }
    Ok(())
}

fn info(a: ModelArgs) -> Result<()> {
    let (ckpt, origin) = load(&a)?;
    let m = &ckpt.model;
    let c = &m.config;
    println!("model:        {}", origin.describe());
    if origin.hub.is_some() {
        println!("files:        {}", m.source.display());
    }
    println!("architecture: {}", c.arch);
    println!("layers:       {}", c.n_layers);
    println!("d_model:      {}", c.d_model);
    println!("heads:        {} (head_dim {})", c.n_heads, c.head_dim);
    println!("kv heads:     {}", c.n_kv_heads);
    println!("d_mlp:        {}", c.d_mlp);
    println!("vocab:        {}", c.vocab_size);
    println!("weight dtype: {:?} (compute {:?})", m.weight_dtype, m.dtype);
    let dev = pretrace_model::device::name_of(&m.device);
    match pretrace_model::device::memory_info(&m.device) {
        Some((free, total)) => println!(
            "device:       {dev} ({} of {} MiB free)",
            free >> 20,
            total >> 20
        ),
        None => println!("device:       {dev}"),
    }
    println!(
        "parameters:   {} ({:.1}M)",
        m.parameters,
        m.parameters as f64 / 1e6
    );
    match &ckpt.tokenizer {
        Some(t) => println!("tokenizer:    {}", t.summary()),
        None => println!("tokenizer:    none (use --ids)"),
    }
    Ok(())
}
