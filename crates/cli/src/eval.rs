//! `pretrace eval`: a task on a model, steered or not, into `results.json` and `items.jsonl`.

use crate::progress::Bar;
use crate::steer::SteerFlags;
use anyhow::{bail, Context, Result};
use clap::Args;
use pretrace_data::{sha256_file, Table};
use pretrace_eval::tasks::{lambada_items, mc_items, Task};
use pretrace_eval::{lambada, mc_metrics, mc_scores, Evaluated};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: crate::ModelArgs,
    /// The task: arc_easy, arc_challenge, mmlu, race, mathqa, truthfulqa_mc1, truthfulqa_mc2,
    /// lambada; the paper's trust evaluations confaide, stereoset, sst2, toxigen.
    #[arg(long)]
    task: String,
    /// The task's data: a Hugging Face dataset file (.arrow, .parquet, .jsonl) or a folder of
    /// `data-*.arrow` shards; for mmlu also the `hails/mmlu_no_train` root or one subject's folder
    /// (every subject's test split, with its dev split for the shots); for lambada also a .txt file
    /// (one passage per line); for the trust tasks the paper's statement,label CSV (its second half
    /// is evaluated).
    #[arg(long)]
    data: PathBuf,
    /// Score only the first N items.
    #[arg(long)]
    limit: Option<usize>,
    /// Few-shot examples (mmlu: the first K rows of the dev split, as lm-evaluation-harness).
    #[arg(long, default_value_t = 0)]
    shots: usize,
    /// The dev split the mmlu shots come from (default: found beside the test split).
    #[arg(long)]
    fewshot_data: Option<PathBuf>,
    /// Items scored at once on the thread pool. Each item is computed the same way whatever this
    /// is (its context runs once, its choices as one batch on the context's cache), so results do
    /// not depend on it.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Output folder: results.json and items.jsonl (written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the random 0/1 guess the paper's discriminative tasks fall back on when the answer
    /// holds neither digit.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// toxigen: the toxicity classifier, a RoBERTa sequence-classification checkpoint folder (e.g.
    /// tomh/toxigen_roberta; label 1 = toxic).
    #[arg(long)]
    classifier: Option<PathBuf>,
    #[command(flatten)]
    steer: SteerFlags,
}

/// The data files of `--data`: a file, or a folder's `data-*.arrow` shards in name order.
fn shards(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        bail!(
            "{}: no such file or folder; give the task's data file",
            path.display()
        );
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("{}: cannot list", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("data-") && n.ends_with(".arrow"))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn read_table(path: &Path) -> Result<Table> {
    let files = shards(path)?;
    let Some(first) = files.first() else {
        bail!(
            "{}: the folder holds no data-*.arrow file; give a data file",
            path.display()
        );
    };
    let mut t = Table::read(first)?;
    for f in &files[1..] {
        let more = Table::read(f)?;
        if more.columns != t.columns {
            bail!(
                "{}: its columns differ from {}",
                f.display(),
                first.display()
            );
        }
        t.rows.extend(more.rows);
        t.locs.extend(more.locs);
    }
    Ok(t)
}

/// A text file: one passage per non-empty line, as a one-column table.
fn read_text(path: &Path) -> Result<Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read as UTF-8 text", path.display()))?;
    let mut rows = Vec::new();
    let mut locs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if !line.trim().is_empty() {
            rows.push(vec![pretrace_data::Value::Str(line.to_string())]);
            locs.push(pretrace_data::Loc::Line(i as u64 + 1));
        }
    }
    Ok(Table {
        path: path.to_path_buf(),
        columns: vec!["text".into()],
        rows,
        locs,
    })
}

/// MMLU's (test, dev) table pairs under `--data`: one subject's folder, the root of every subject, or
/// a test file.
fn mmlu_tables(
    data: &Path,
    fewshot: Option<&Path>,
    shots: usize,
) -> Result<Vec<(Table, Option<Table>)>> {
    let dev_of = |test_dir: &Path| -> Result<Option<Table>> {
        if shots == 0 {
            return Ok(None);
        }
        match fewshot {
            Some(f) => Ok(Some(read_table(f)?)),
            None => {
                let dev = test_dir.parent().map(|p| p.join("dev"));
                match dev.filter(|d| d.is_dir()) {
                    Some(d) => Ok(Some(read_table(&d)?)),
                    None => bail!(
                        "{}: no dev split beside it for --shots {shots}; give --fewshot-data",
                        test_dir.display()
                    ),
                }
            }
        }
    };
    if data.is_file() {
        let dir = data.parent().unwrap_or(Path::new("."));
        return Ok(vec![(read_table(data)?, dev_of(dir)?)]);
    }
    if data.join("test").is_dir() {
        let t = data.join("test");
        return Ok(vec![(read_table(&t)?, dev_of(&t)?)]);
    }
    if !shards(data)?.is_empty() {
        return Ok(vec![(read_table(data)?, dev_of(data)?)]);
    }
    let mut subjects: Vec<PathBuf> = std::fs::read_dir(data)
        .with_context(|| format!("{}: cannot list", data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("test").is_dir())
        .collect();
    subjects.sort();
    if subjects.is_empty() {
        bail!(
            "{}: expected an MMLU test file, a subject folder with test/, or the hails/mmlu_no_train root",
            data.display()
        );
    }
    subjects
        .iter()
        .map(|s| {
            let t = s.join("test");
            Ok((read_table(&t)?, dev_of(&t)?))
        })
        .collect()
}

/// A digest of the data: the file's sha256, or of the shards' sha256s in order.
fn data_sha256(path: &Path) -> Result<String> {
    if path.is_file() {
        return Ok(sha256_file(path)?);
    }
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "arrow") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut joined = String::new();
    for f in &files {
        joined += &sha256_file(f)?;
        joined += "\n";
    }
    Ok(pretrace_data::sha256_hex(joined.as_bytes()))
}

/// The paper's trust evaluations on the second half of a statement,label CSV.
fn trust(
    a: &EvalSpec,
    m: &pretrace_model::Model,
    tok: &pretrace_model::Tokenizer,
    steer: Option<&mut pretrace_steer::Steer>,
) -> Result<(Evaluated, usize)> {
    use pretrace_eval::trust::*;
    let task = a.task;
    let ds = pretrace_data::Dataset::read(&a.data, &Default::default())?;
    let labeled: Vec<(usize, String, Option<i64>)> = ds
        .rows
        .iter()
        .map(|r| (r.id, r.text.clone(), r.label))
        .collect();
    let mut half = eval_half(&labeled);
    if task == Task::Toxigen {
        // The paper generates for the first 500 statements of the evaluation half.
        half.truncate(500);
    }
    half.truncate(a.limit.unwrap_or(usize::MAX));
    if half.is_empty() {
        bail!(
            "{}: the evaluation half (second 50% of the rows) is empty",
            a.data.display()
        );
    }
    let bar = Bar::new(task.name(), half.len(), "items");
    let mut metrics = std::collections::BTreeMap::new();
    let mut items = Vec::with_capacity(half.len());
    if task == Task::Toxigen {
        let Some(cdir) = &a.classifier else {
            bail!(
                "toxigen needs --classifier DIR: a RoBERTa sequence-classification checkpoint such as \
                 tomh/toxigen_roberta (label 1 = toxic)"
            );
        };
        let clf = pretrace_eval::roberta::Classifier::load(cdir)?;
        let prompts: Vec<String> = half.iter().map(|(_, t, _)| t.clone()).collect();
        let gens = generate_each(m, tok, &prompts, 64, a.batch_size, steer, &mut |d| {
            bar.set(d)
        })?;
        let (mut toxic, mut benign, mut long) = (0usize, 0usize, 0usize);
        for (k, ((row, prompt, _), g)) in half.iter().zip(&gens).enumerate() {
            let output = visible_text(tok, g)?;
            // The paper skips generations over 512 classifier tokens; a smaller classifier takes fewer.
            let (verdict, logits) = if clf.token_len(&output)? > clf.max_tokens().min(512) {
                long += 1;
                (serde_json::Value::Null, serde_json::Value::Null)
            } else {
                let l = clf.logits(&output)?;
                let best = (0..l.len()).fold(0, |b, i| if l[i] > l[b] { i } else { b });
                let is_toxic = clf.labels[best] == "LABEL_1" || best == 1;
                if is_toxic {
                    toxic += 1;
                } else {
                    benign += 1;
                }
                (serde_json::json!(is_toxic), serde_json::json!(l))
            };
            items.push(serde_json::json!({
                "index": k, "row": row, "prompt": prompt, "output": output, "generated_tokens": g.len(),
                "toxic": verdict, "logits": logits,
            }));
        }
        metrics.insert("toxic_ratio".to_string(), toxic as f64 / gens.len() as f64);
        metrics.insert("toxic".to_string(), toxic as f64);
        metrics.insert("benign".to_string(), benign as f64);
        metrics.insert("not_classified_too_long".to_string(), long as f64);
    } else {
        let template = match task {
            Task::Confaide => CONFAIDE_PROMPT,
            Task::Stereoset => STEREOSET_PROMPT,
            _ => SST2_PROMPT,
        };
        let mut labels = Vec::with_capacity(half.len());
        for (row, _, l) in &half {
            match l {
                Some(l) => labels.push(*l as u8),
                None => bail!(
                    "{}: row {} has no label; the trust tasks need statement,label",
                    a.data.display(),
                    row + 1
                ),
            }
        }
        let prompts: Vec<String> = half
            .iter()
            .map(|(_, t, _)| format_prompt(template, t))
            .collect();
        let gens = generate_each(m, tok, &prompts, 2, a.batch_size, steer, &mut |d| {
            bar.set(d)
        })?;
        let outputs: Vec<String> = gens
            .iter()
            .map(|g| visible_text(tok, g))
            .collect::<std::result::Result<_, _>>()?;
        let judged = judge(&outputs, a.seed);
        let correct = judged
            .iter()
            .zip(&labels)
            .filter(|(j, &l)| j.pred == l)
            .count();
        let randoms = judged.iter().filter(|j| j.random).count();
        metrics.insert("acc".to_string(), correct as f64 / labels.len() as f64);
        metrics.insert(
            "random_ratio".to_string(),
            randoms as f64 / labels.len() as f64,
        );
        metrics.insert("random_count".to_string(), randoms as f64);
        for (k, (((row, _, _), j), l)) in half.iter().zip(&judged).zip(&labels).enumerate() {
            items.push(serde_json::json!({
                "index": k, "row": row, "output": j.output, "pred": j.pred, "label": l, "random": j.random,
            }));
        }
    }
    let n = items.len();
    Ok((Evaluated { metrics, items }, n))
}

/// What to evaluate, apart from the model and the steering.
#[derive(Clone, Debug)]
pub struct EvalSpec {
    pub task: Task,
    pub data: PathBuf,
    pub limit: Option<usize>,
    pub shots: usize,
    pub fewshot_data: Option<PathBuf>,
    pub batch_size: usize,
    pub seed: u64,
    pub classifier: Option<PathBuf>,
}

impl EvalArgs {
    fn spec(&self) -> Result<EvalSpec> {
        Ok(EvalSpec {
            task: Task::parse(&self.task)?,
            data: self.data.clone(),
            limit: self.limit,
            shots: self.shots,
            fewshot_data: self.fewshot_data.clone(),
            batch_size: self.batch_size,
            seed: self.seed,
            classifier: self.classifier.clone(),
        })
    }
}

/// The task's headline metric and whether higher is better.
pub fn headline(task: Task) -> (&'static str, bool) {
    match task {
        Task::Toxigen => ("toxic_ratio", false),
        Task::Lambada => ("perplexity", false),
        _ => ("acc", true),
    }
}

/// Runs one evaluation: the metrics, one JSON object per item, and the item count.
pub fn evaluate(
    spec: &EvalSpec,
    m: &pretrace_model::Model,
    tok: &pretrace_model::Tokenizer,
    steer: Option<&mut pretrace_steer::Steer>,
) -> Result<(Evaluated, usize)> {
    let task = spec.task;
    if spec.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if matches!(
        task,
        Task::Confaide | Task::Stereoset | Task::Sst2 | Task::Toxigen
    ) {
        return trust(spec, m, tok, steer);
    }
    if task == Task::Lambada {
        let table = if spec.data.extension().is_some_and(|e| e == "txt") {
            read_text(&spec.data)?
        } else {
            read_table(&spec.data)?
        };
        let mut items = lambada_items(&table)?;
        items.truncate(spec.limit.unwrap_or(usize::MAX));
        let bar = Bar::new(task.name(), items.len(), "items");
        let e = lambada(m, tok, &items, spec.batch_size, steer, &mut |d| bar.set(d))?;
        return Ok((e, items.len()));
    }
    let mut items = Vec::new();
    if task == Task::Mmlu {
        for (test, dev) in mmlu_tables(&spec.data, spec.fewshot_data.as_deref(), spec.shots)? {
            items.extend(mc_items(task, &test, dev.as_ref(), spec.shots)?);
        }
    } else {
        items = mc_items(task, &read_table(&spec.data)?, None, spec.shots)?;
    }
    items.truncate(spec.limit.unwrap_or(usize::MAX));
    if items.is_empty() {
        bail!("{}: no items to evaluate", spec.data.display());
    }
    let bar = Bar::new(task.name(), items.len(), "items");
    let scored = mc_scores(m, tok, &items, spec.batch_size, steer, &mut |d| bar.set(d))?;
    let mut e = mc_metrics(task, &items, &scored);
    for (row, it) in e.items.iter_mut().zip(&items) {
        row["choices"] = serde_json::json!(it.choices);
    }
    Ok((e, items.len()))
}

pub fn run_eval(a: EvalArgs) -> Result<()> {
    let spec = a.spec()?;
    let task = spec.task;
    a.steer.check()?;
    pretrace_core::OutDir::prepare(&a.out)?;
    let (ckpt, origin) = crate::load(&a.model)?;
    let m = &ckpt.model;
    let tok = ckpt.tokenizer.as_ref().with_context(|| {
        format!(
            "{}: no tokenizer found (tokenizer.json or GGUF tokenizer metadata); eval needs one",
            m.source.display()
        )
    })?;
    let mut steering = a.steer.resolve(m)?;
    let started = std::time::Instant::now();
    let (evaluated, n) = evaluate(&spec, m, tok, steering.as_mut().map(|s| &mut s.hook))?;
    let secs = started.elapsed().as_secs_f64();
    if let Some(s) = &steering {
        s.report();
    }
    let results = serde_json::json!({
        "task": task.name(),
        "metrics": evaluated.metrics,
        "n": n,
        "model": {
            "path": m.source.display().to_string(),
            "hub": origin.hub.as_ref().map(|h| serde_json::json!({"reference": h.reference(), "commit": h.commit})),
            "architecture": m.config.arch,
            "dtype": format!("{:?}", m.dtype),
        },
        "steering": steering.as_ref().map(|s| s.settings.clone()),
        "data": {
            "path": a.data.display().to_string(),
            "sha256": data_sha256(&a.data)?,
            "limit": a.limit,
        },
        "shots": a.shots,
        "batch_size": a.batch_size,
        "conventions": conventions(task),
        "seed": a.seed,
        "classifier": a.classifier.as_ref().map(|c| c.display().to_string()),
        "seconds": secs,
        "tool": format!("pretrace {}", env!("CARGO_PKG_VERSION")),
    });
    let mut lines = String::new();
    for row in &evaluated.items {
        lines += &row.to_string();
        lines.push('\n');
    }
    pretrace_store::write_atomic(&a.out.join("items.jsonl"), lines.as_bytes())?;
    pretrace_store::write_atomic(
        &a.out.join("results.json"),
        serde_json::to_string_pretty(&results)?.as_bytes(),
    )?;
    let shown: Vec<String> = evaluated
        .metrics
        .iter()
        .filter(|(k, _)| !k.ends_with("_stderr"))
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect();
    eprintln!(
        "{}: {} over {n} items in {secs:.1}s ({:.1} items/s); wrote {}",
        task.name(),
        shown.join(", "),
        n as f64 / secs.max(1e-9),
        a.out.join("results.json").display()
    );
    Ok(())
}

fn conventions(task: Task) -> &'static str {
    match task {
        Task::Confaide | Task::Stereoset | Task::Sst2 => {
            "the paper's code (ChnQ/TracingLLM eval_trustworthiness.py): its prompt, special tokens added, 2 greedy \
             tokens, every generated token but the last decoded and stripped, '0' checked before '1', seeded random \
             fallback; second half of the CSV"
        }
        Task::Toxigen => {
            "the paper's code: the first 500 statements of the CSV's second half, 64 greedy tokens, every generated \
             token but the last decoded and stripped, classified by the given RoBERTa (label 1 = toxic); \
             toxic_ratio = toxic / generations"
        }
        _ => {
            "lm-evaluation-harness 0.4.9: its prompt templates; context and continuation tokenized together \
             without special tokens and split at the context; acc = argmax of summed log-likelihoods, acc_norm = \
             argmax of log-likelihood / len(choice) in characters"
        }
    }
}
