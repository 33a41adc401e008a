//! `pretrace run FILE.toml` and `pretrace demo`: an experiment file written down as the sequence of
//! pretrace commands it stands for (pre-training in the lab if asked, extraction, probes, the
//! information plane, steering vectors, evaluations with and without them, the report). Each
//! command is printed before it runs; a rerun skips the commands already done with the same
//! arguments (and the ones that resume by themselves pick up where they stopped).

use anyhow::{bail, Context, Result};
use clap::Args;
use pretrace::experiment::{Datasets, ExperimentFile, TaskSpec};
use pretrace_lab::tasks::LabTask;
use pretrace_report::experiment::{EvalRow, Experiment, LossPoint};
use pretrace_store::Store;
use std::path::{Path, PathBuf};

/// The demo's experiment file.
pub const LAB_TOML: &str = include_str!("../../../experiments/lab.toml");
/// The same at the size CI runs.
pub const LAB_QUICK_TOML: &str = include_str!("../../../experiments/lab-quick.toml");

#[derive(Args)]
pub struct RunArgs {
    /// The experiment file (TOML; see experiments/ in the repository).
    pub file: PathBuf,
    /// Output folder: every step's results, and report/report.html.
    #[arg(long)]
    pub out: PathBuf,
    /// Print the commands without running them.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Output folder (default: pretrace-demo).
    #[arg(long, default_value = "pretrace-demo")]
    pub out: PathBuf,
    /// The shortened run CI uses (a smaller corpus, fewer steps; about a minute).
    #[arg(long)]
    pub quick: bool,
    /// Print the commands without running them.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs a pretrace command line (without the program name).
type Exec = dyn Fn(&[String]) -> Result<()>;

struct Runner<'a> {
    out: PathBuf,
    dry: bool,
    exec: &'a Exec,
    commands: Vec<String>,
}

fn quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

impl Runner<'_> {
    /// Runs `args` unless the same command already completed and `output` exists. `None`: the
    /// command resumes by itself and always runs.
    fn step(&mut self, args: Vec<String>, output: Option<&Path>) -> Result<()> {
        let line = format!(
            "pretrace {}",
            args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
        );
        self.commands.push(line.clone());
        let marker = self
            .out
            .join(".done")
            .join(&pretrace_data::sha256_hex(line.as_bytes())[..16]);
        if self.dry {
            println!("{line}");
            return Ok(());
        }
        if let Some(o) = output {
            if marker.is_file() && o.exists() {
                eprintln!("[done] {line}");
                return Ok(());
            }
        }
        eprintln!("\n$ {line}");
        (self.exec)(&args).with_context(|| format!("step failed: {line}"))?;
        if output.is_some() {
            std::fs::create_dir_all(self.out.join(".done"))?;
            pretrace_store::write_atomic(&marker, line.as_bytes())?;
        }
        Ok(())
    }
}

fn s(x: impl AsRef<str>) -> String {
    x.as_ref().to_string()
}
fn p(x: &Path) -> String {
    x.display().to_string()
}

/// A checkpoint of a store.
struct StoreCkpt {
    name: String,
    step: Option<u64>,
    layers: Option<usize>,
}

/// The checkpoints of a store, by step.
fn store_checkpoints(store: &Path) -> Result<Vec<StoreCkpt>> {
    let st = Store::open(store)?;
    let mut out: Vec<StoreCkpt> = Vec::new();
    for (c, d) in st.entries()? {
        if out.iter().any(|x| x.name == c) {
            continue;
        }
        if let Some(m) = st.manifest(&c, &d)? {
            let layers = m.checkpoint.config["n_layers"].as_u64().map(|v| v as usize);
            out.push(StoreCkpt {
                name: c,
                step: m.checkpoint.step,
                layers,
            });
        }
    }
    out.sort_by_key(|x| x.step);
    Ok(out)
}

/// One task's result read back from a results file.
struct Measured {
    task: String,
    metric: String,
    value: f64,
    stderr: f64,
    n: usize,
    higher: bool,
}

/// Reads a results file of `pretrace lab eval` or `pretrace eval` into rows.
fn read_results(
    path: &Path,
    spec_of: &dyn Fn(&str) -> Option<(String, bool)>,
) -> Result<Vec<Measured>> {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?,
    )
    .with_context(|| format!("{}: not JSON", path.display()))?;
    let mut rows = Vec::new();
    if let Some(list) = v["results"].as_array() {
        for r in list {
            let task = r["task"].as_str().unwrap_or_default().to_string();
            let higher = LabTask::parse(&task)
                .map(|t| t.higher_is_better())
                .unwrap_or(true);
            rows.push(Measured {
                task,
                metric: r["metric"].as_str().unwrap_or_default().to_string(),
                value: r["value"].as_f64().unwrap_or(f64::NAN),
                stderr: r["stderr"].as_f64().unwrap_or(f64::NAN),
                n: r["n"].as_u64().unwrap_or(0) as usize,
                higher,
            });
        }
    } else {
        let task = v["task"].as_str().unwrap_or_default().to_string();
        let (metric, higher) = spec_of(&task).unwrap_or_else(|| {
            let (m, h) = pretrace_eval::tasks::Task::parse(&task)
                .map(crate::eval::headline)
                .unwrap_or(("acc", true));
            (m.to_string(), h)
        });
        let Some(value) = v["metrics"][&metric].as_f64() else {
            bail!(
                "{}: has no metric '{metric}' (it has {}); set `metric` of task '{task}' to one of those",
                path.display(),
                v["metrics"]
                    .as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            );
        };
        rows.push(Measured {
            task,
            metric: metric.clone(),
            value,
            stderr: v["metrics"][format!("{metric}_stderr")]
                .as_f64()
                .unwrap_or(f64::NAN),
            n: v["n"].as_u64().unwrap_or(0) as usize,
            higher,
        });
    }
    Ok(rows)
}

/// Runs the experiment in `text` (from `file`) into `out`.
pub fn run_experiment(text: &str, file: &str, out: &Path, dry: bool, exec: &Exec) -> Result<()> {
    let f = ExperimentFile::parse(text, file)?;
    let title = f
        .title
        .clone()
        .unwrap_or_else(|| format!("pretrace experiment {file}"));
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let mut r = Runner {
        out: out.to_path_buf(),
        dry,
        exec,
        commands: Vec::new(),
    };
    let lab_dir = out.join("lab");
    let lab_chat = out.join("chat");
    let is_lab = |x: &str| x == "lab";
    let mut exp = Experiment {
        title: title.clone(),
        file: file.to_string(),
        ..Experiment::default()
    };

    // 1. The lab's pre-training and instruction tuning.
    if let Some(lab) = &f.lab {
        let mut a = vec![s("lab"), s("pretrain"), s("--out"), p(&lab_dir)];
        let mut flag = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(format!("--{name}"));
                a.push(v);
            }
        };
        flag("seed", lab.seed.map(|v| v.to_string()));
        flag("docs", lab.docs.map(|v| v.to_string()));
        flag("probe-rows", lab.probe_rows.map(|v| v.to_string()));
        flag("vocab", lab.vocab.map(|v| v.to_string()));
        flag("steps", lab.steps.map(|v| v.to_string()));
        flag("batch", lab.batch.map(|v| v.to_string()));
        flag("seq", lab.seq.map(|v| v.to_string()));
        flag("lr", lab.lr.map(|v| v.to_string()));
        flag("warmup", lab.warmup.map(|v| v.to_string()));
        flag("d-model", lab.d_model.map(|v| v.to_string()));
        flag("layers", lab.layers.map(|v| v.to_string()));
        flag("heads", lab.heads.map(|v| v.to_string()));
        flag("d-mlp", lab.d_mlp.map(|v| v.to_string()));
        flag("device", f.device.clone());
        r.step(a, None)?;
        let steps = lab
            .steps
            .unwrap_or(pretrace_lab::pretrain::Plan::default().settings.steps);
        let mut a = vec![
            s("lab"),
            s("sft"),
            s("--base"),
            p(&lab_dir.join(format!("step{steps}"))),
            s("--out"),
            p(&lab_chat),
        ];
        if let Some(v) = lab.sft_steps {
            a.extend([s("--steps"), v.to_string()]);
        }
        if let Some(v) = lab.sft_examples {
            a.extend([s("--examples"), v.to_string()]);
        }
        if let Some(v) = lab.seed {
            a.extend([s("--seed"), v.to_string()]);
        }
        if let Some(d) = &f.device {
            a.extend([s("--device"), d.clone()]);
        }
        r.step(a, None)?;
    }
    let resolve = |x: &str, lab_path: &Path| -> Result<PathBuf> {
        if is_lab(x) {
            if f.lab.is_none() {
                bail!("{file}: \"lab\" names the lab's models, but the file has no [lab] section");
            }
            Ok(lab_path.to_path_buf())
        } else {
            Ok(PathBuf::from(x))
        }
    };
    let suite = resolve(&f.models.suite, &lab_dir)?;
    let chat = f
        .models
        .chat
        .as_deref()
        .map(|c| resolve(c, &lab_chat))
        .transpose()?;
    let data: Vec<PathBuf> = match &f.datasets {
        Datasets::Keyword(k) if is_lab(k) => pretrace_lab::corpus::CONCEPTS
            .iter()
            .map(|c| lab_dir.join("probes").join(format!("{c}.csv")))
            .collect(),
        Datasets::Keyword(k) => {
            bail!("{file}: datasets = \"{k}\": give \"lab\" or a list of files")
        }
        Datasets::Files(v) => v.iter().map(PathBuf::from).collect(),
    };

    // 2. Activations of every checkpoint (and of the chat model, for its own vectors).
    let extract = |ckpts: &Path, store: &Path, suite: bool| -> Vec<String> {
        let mut a = vec![s("extract"), s("--checkpoints"), p(ckpts)];
        if let (true, Some(r)) = (suite, &f.models.revisions) {
            a.extend([s("--revisions"), r.clone()]);
        }
        for d in &data {
            a.extend([s("--data"), p(d)]);
        }
        a.extend([s("--out"), p(store)]);
        if let Some(l) = &f.extract.layers {
            a.extend([s("--layers"), l.clone()]);
        }
        if let Some(t) = &f.extract.token {
            a.extend([s("--token"), t.clone()]);
        }
        if let Some(t) = &f.extract.template {
            a.extend([s("--template"), t.clone()]);
        }
        if let Some(b) = f.extract.batch_size {
            a.extend([s("--batch-size"), b.to_string()]);
        }
        if let Some(d) = &f.device {
            a.extend([s("--device"), d.clone()]);
        }
        if let (true, Some(t)) = (suite, &f.models.tokenizer) {
            a.extend([s("--tokenizer"), t.clone()]);
        }
        if let Some(b) = &f.extract.cache_budget {
            a.extend([s("--cache-budget"), b.clone()]);
        }
        a
    };
    let store = out.join("store");
    r.step(extract(&suite, &store, true), None)?;
    let steer = f.steer.as_ref();
    let chat_store = out.join("store-chat");
    let wants_chat_vector = steer.is_some_and(|st| st.sources.iter().any(|x| x == "chat"));
    if wants_chat_vector {
        let Some(c) = &chat else {
            bail!("{file}: steer.sources names \"chat\" but models.chat is not set");
        };
        r.step(extract(c, &chat_store, false), None)?;
    }

    // 3. Probes and the information plane.
    let report = out.join("report");
    let mut a = vec![
        s("probe"),
        s("--store"),
        p(&store),
        s("--out"),
        p(&report),
        s("--protocol"),
        f.probe.protocol.clone().unwrap_or_else(|| s("paper")),
    ];
    if let Some(k) = f.probe.folds {
        a.extend([s("--folds"), k.to_string()]);
    }
    r.step(a, Some(&report.join("probes.json")))?;
    let mut a = vec![
        s("infoplane"),
        s("--store"),
        p(&store),
        s("--out"),
        p(&report),
        s("--estimator"),
        f.infoplane
            .estimators
            .clone()
            .unwrap_or_else(|| vec![s("nhsic-paper")])
            .join(","),
    ];
    if let Some(m) = f.infoplane.max_rows {
        a.extend([s("--max-rows"), m.to_string()]);
    }
    r.step(a, Some(&report.join("infoplane.json")))?;

    // 4. Steering vectors and evaluations.
    let spec_of = |task: &str| -> Option<(String, bool)> {
        f.trust
            .iter()
            .chain(&f.capability)
            .find(|t| t.task == task)
            .map(|t| {
                let (m, h) = pretrace_eval::tasks::Task::parse(task)
                    .map(crate::eval::headline)
                    .unwrap_or(("acc", true));
                (
                    t.metric.clone().unwrap_or(m.to_string()),
                    t.higher_is_better.unwrap_or(h),
                )
            })
    };
    if let (Some(st), Some(chat)) = (steer, &chat) {
        let ckpts = if dry && !store.join("store.json").is_file() {
            Vec::new()
        } else {
            store_checkpoints(&store)?
        };
        let n_layers = ckpts.iter().find_map(|c| c.layers);
        let layer: Option<usize> = match &st.layer {
            None => n_layers.map(|n| n / 2),
            Some(toml::Value::String(m)) if m == "middle" => n_layers.map(|n| n / 2),
            Some(toml::Value::Integer(i)) if *i >= 0 => Some(*i as usize),
            Some(v) => bail!("{file}: steer.layer = {v:?}: give \"middle\" or a block index"),
        };
        exp.steer_layer = layer;
        let layer_s = layer.map_or(s("<middle layer>"), |l| l.to_string());
        let last = ckpts.iter().filter_map(|c| c.step).max();
        let mut sources: Vec<(String, String, Option<u64>, PathBuf)> = Vec::new(); // (role, name, step, store)
        for src in &st.sources {
            match src.as_str() {
                "mid" => {
                    let mid = last.and_then(|l| {
                        ckpts
                            .iter()
                            .filter(|c| c.step.is_some())
                            .min_by_key(|c| c.step.unwrap_or(0).abs_diff(l / 2))
                    });
                    match mid {
                        Some(c) => sources.push((s("mid"), c.name.clone(), c.step, store.clone())),
                        None if dry => {
                            sources.push((s("mid"), s("<mid checkpoint>"), None, store.clone()))
                        }
                        None => bail!(
                            "{}: no checkpoint with a step to take the mid one from",
                            store.display()
                        ),
                    }
                }
                "chat" => {
                    let name = if dry && !chat_store.join("store.json").is_file() {
                        s("<chat>")
                    } else {
                        store_checkpoints(&chat_store)?
                            .first()
                            .map(|c| c.name.clone())
                            .context("the chat model's store is empty")?
                    };
                    sources.push((s("chat"), name, None, chat_store.clone()));
                }
                name => {
                    let c = ckpts.iter().find(|c| c.name == name);
                    if c.is_none() && !dry {
                        bail!(
                            "{file}: steer source '{name}' is not a checkpoint of {}",
                            store.display()
                        );
                    }
                    sources.push((
                        s("checkpoint"),
                        s(name),
                        c.and_then(|c| c.step),
                        store.clone(),
                    ));
                }
            }
        }
        let lab_run = lab_dir.clone();
        let eval_cmd =
            |tasks: &[&TaskSpec], extra: &[String], out_file: &Path| -> Vec<Vec<String>> {
                // Lab tasks share one `lab eval`; others run one `eval` each.
                let mut cmds = Vec::new();
                let labs: Vec<&str> = tasks
                    .iter()
                    .filter(|t| t.lab().is_some())
                    .map(|t| t.task.as_str())
                    .collect();
                if !labs.is_empty() {
                    let mut a = vec![
                        s("lab"),
                        s("eval"),
                        s("--model"),
                        p(chat),
                        s("--run"),
                        p(&lab_run),
                        s("--task"),
                        labs.join(","),
                        s("--out"),
                        p(out_file),
                    ];
                    if let Some(d) = &f.device {
                        a.extend([s("--device"), d.clone()]);
                    }
                    a.extend(extra.iter().cloned());
                    cmds.push(a);
                }
                for t in tasks.iter().filter(|t| t.lab().is_none()) {
                    let dir = out_file.with_extension("").join(&t.task);
                    let mut a = vec![
                        s("eval"),
                        s("--model"),
                        p(chat),
                        s("--task"),
                        t.task.clone(),
                        s("--out"),
                        p(&dir),
                    ];
                    if let Some(d) = &t.data {
                        a.extend([s("--data"), d.clone()]);
                    }
                    if let Some(c) = &t.classifier {
                        a.extend([s("--classifier"), c.clone()]);
                    }
                    if let Some(l) = t.limit {
                        a.extend([s("--limit"), l.to_string()]);
                    }
                    if let Some(k) = t.shots {
                        a.extend([s("--shots"), k.to_string()]);
                    }
                    if let Some(d) = &f.device {
                        a.extend([s("--device"), d.clone()]);
                    }
                    a.extend(extra.iter().cloned());
                    cmds.push(a);
                }
                cmds
            };
        let outputs_of = |tasks: &[&TaskSpec], out_file: &Path| -> Vec<PathBuf> {
            let mut v = Vec::new();
            if tasks.iter().any(|t| t.lab().is_some()) {
                v.push(out_file.to_path_buf());
            }
            for t in tasks.iter().filter(|t| t.lab().is_none()) {
                v.push(
                    out_file
                        .with_extension("")
                        .join(&t.task)
                        .join("results.json"),
                );
            }
            v
        };
        let eval_dir = out.join("eval");
        // Unsteered.
        let all: Vec<&TaskSpec> = f.trust.iter().chain(&f.capability).collect();
        let base_file = eval_dir.join("unsteered.json");
        for (a, o) in eval_cmd(&all, &[], &base_file)
            .into_iter()
            .zip(outputs_of(&all, &base_file))
        {
            r.step(a, Some(&o))?;
            if !dry {
                for Measured {
                    task,
                    metric,
                    value,
                    stderr,
                    n,
                    higher,
                } in read_results(&o, &spec_of)?
                {
                    let role = if f.capability.iter().any(|c| c.task == task) {
                        "capability"
                    } else {
                        "trust"
                    };
                    exp.results.push(EvalRow {
                        source: None,
                        source_role: None,
                        source_step: None,
                        dataset: None,
                        layer: None,
                        alpha: 0.0,
                        task,
                        metric,
                        value,
                        stderr,
                        n,
                        higher_is_better: higher,
                        role: s(role),
                        target: None,
                    });
                }
            }
        }
        for (role, name, step, src_store) in &sources {
            for t in &f.trust {
                let ds = t.dataset().map_err(anyhow::Error::msg)?;
                let vec = out.join("steer").join(format!("{name}-{ds}.safetensors"));
                let mut a = vec![
                    s("steer"),
                    s("build"),
                    s("--store"),
                    p(src_store),
                    s("--checkpoint"),
                    name.clone(),
                    s("--dataset"),
                    ds.clone(),
                    s("--layers"),
                    layer_s.clone(),
                    s("--out"),
                    p(&vec),
                ];
                if let Some(m) = &st.method {
                    a.extend([s("--method"), m.clone()]);
                }
                if let Some(rows) = &t.rows {
                    a.extend([s("--rows"), rows.clone()]);
                }
                r.step(a, Some(&vec))?;
                let sign = t.sign().map_err(anyhow::Error::msg)?;
                for &mag in &st.alphas {
                    let alpha = sign * mag;
                    let tasks: Vec<&TaskSpec> = std::iter::once(t).chain(&f.capability).collect();
                    let of = eval_dir.join(format!("{name}-{}-a{alpha:+}.json", t.task));
                    let extra = vec![
                        s("--steer"),
                        p(&vec),
                        s("--steer-layer"),
                        layer_s.clone(),
                        format!("--alpha={alpha}"),
                    ];
                    for (a, o) in eval_cmd(&tasks, &extra, &of)
                        .into_iter()
                        .zip(outputs_of(&tasks, &of))
                    {
                        r.step(a, Some(&o))?;
                        if !dry {
                            for Measured {
                                task,
                                metric,
                                value,
                                stderr,
                                n,
                                higher,
                            } in read_results(&o, &spec_of)?
                            {
                                let cap = task != t.task;
                                exp.results.push(EvalRow {
                                    source: Some(name.clone()),
                                    source_role: Some(role.clone()),
                                    source_step: *step,
                                    dataset: Some(ds.clone()),
                                    layer,
                                    alpha,
                                    task,
                                    metric,
                                    value,
                                    stderr,
                                    n,
                                    higher_is_better: higher,
                                    role: s(if cap { "capability" } else { "trust" }),
                                    target: Some(t.task.clone()),
                                });
                            }
                        }
                    }
                }
            }
        }
    }

    // 5. Training records and the report.
    if !dry && f.lab.is_some() {
        if let Ok(text) = std::fs::read_to_string(lab_dir.join("train.json")) {
            let rec: pretrace_lab::pretrain::Record =
                serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{}: not a training record",
                        lab_dir.join("train.json").display()
                    )
                })?;
            exp.training = losses(&rec.log);
            exp.heldout = rec
                .checkpoints
                .iter()
                .map(|c| LossPoint {
                    step: c.step,
                    loss: c.heldout_loss,
                })
                .collect();
        }
        if let Ok(text) = std::fs::read_to_string(lab_chat.join("sft.json")) {
            let rec: pretrace_lab::sft::SftRecord =
                serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{}: not an instruction-tuning record",
                        lab_chat.join("sft.json").display()
                    )
                })?;
            exp.sft = losses(&rec.log);
            exp.sft_heldout = Some((rec.heldout_loss_before, rec.heldout_loss_after));
        }
    }
    let exp_path = out.join("experiment.json");
    let report_cmd = vec![
        s("report"),
        s("--store"),
        p(&store),
        s("--out"),
        p(&report),
        s("--experiment"),
        p(&exp_path),
        s("--title"),
        title,
    ];
    exp.commands = r.commands.clone();
    exp.commands.push(format!(
        "pretrace {}",
        report_cmd
            .iter()
            .map(|a| quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    if !dry {
        pretrace_store::write_atomic(&exp_path, serde_json::to_string_pretty(&exp)?.as_bytes())?;
    }
    r.step(report_cmd, None)?;
    if !dry {
        eprintln!("\nreport: {}", report.join("report.html").display());
    }
    Ok(())
}

/// A training log as loss points.
fn losses(log: &[pretrace_lab::train::StepLog]) -> Vec<LossPoint> {
    log.iter()
        .map(|l| LossPoint {
            step: l.step,
            loss: l.loss,
        })
        .collect()
}

/// `pretrace run`.
pub fn run_file(a: &RunArgs, exec: &Exec) -> Result<()> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("{}: cannot read the experiment file", a.file.display()))?;
    run_experiment(
        &text,
        &a.file.display().to_string(),
        &a.out,
        a.dry_run,
        exec,
    )
}

/// `pretrace demo`.
pub fn run_demo(a: &DemoArgs, exec: &Exec) -> Result<()> {
    let (text, name) = if a.quick {
        (LAB_QUICK_TOML, "experiments/lab-quick.toml (built in)")
    } else {
        (LAB_TOML, "experiments/lab.toml (built in)")
    };
    let started = std::time::Instant::now();
    run_experiment(text, name, &a.out, a.dry_run, exec)?;
    if !a.dry_run {
        eprintln!("demo finished in {:.0} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}
