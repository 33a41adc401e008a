//! The fuzz targets: every file format pretrace reads, each handed in process to the real loader
//! (`Model::load` with a forward pass and the tokenizer, `Tokenizer::from_json`, `Dataset::read`,
//! the activation store, `VectorFile::read`, `ExperimentFile::parse`). Seeds are the project's
//! golden fixtures; inputs are written into a scratch checkpoint, store or data folder per target.

use crate::engine::{Outcome, Rng, Target};
use crate::gen;
use crate::gguf::{self, Doc};
use arbitrary::Unstructured;
use pretrace_model::{Batch, Checkpoint, LoadOptions, Logits, Model, Padding};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Every target's name, in the order `all` builds them.
pub const NAMES: &[&str] = &[
    "config",
    "safetensors",
    "index-safetensors",
    "index-bin",
    "bin",
    "gguf",
    "tokenizer",
    "csv",
    "jsonl",
    "arrow",
    "parquet",
    "manifest",
    "activations",
    "vectors",
    "experiment",
];

/// The golden fixtures: `PRETRACE_GOLDEN`, else the repository's `tests/golden`.
pub fn golden() -> PathBuf {
    std::env::var_os("PRETRACE_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden"))
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: cannot read the seed: {e}", p.display()))
}

fn copy_files(src: &Path, dst: &Path, names: &[&str]) -> Result<(), String> {
    std::fs::create_dir_all(dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    for n in names {
        std::fs::copy(src.join(n), dst.join(n))
            .map_err(|e| format!("{}: cannot copy: {e}", src.join(n).display()))?;
    }
    Ok(())
}

fn write(p: &Path, bytes: &[u8]) {
    // A failed write shows up as the loader's error on the old or missing file.
    let _ = std::fs::write(p, bytes);
}

fn refused(e: impl std::fmt::Display) -> Outcome {
    Outcome::Refused(e.to_string())
}

/// What a loaded checkpoint is asked to do: a padded two-row forward pass to the logits, and the
/// tokenizer's encode and decode.
fn exercise(ck: &Checkpoint) -> Outcome {
    let vocab = ck.model.config.vocab_size.max(1) as u32;
    let ids: Vec<u32> = [0u32, 1, 2, 3].iter().map(|i| i % vocab).collect();
    let rows = [ids.clone(), ids[..2].to_vec()];
    let batch = match Batch::pad(&rows, Padding::Left, 0) {
        Ok(b) => b,
        Err(e) => return refused(e),
    };
    if let Err(e) = ck.model.forward(&batch, &mut [], Logits::Last, None) {
        return refused(e);
    }
    if let Some(t) = &ck.tokenizer {
        for text in ["Hello wörld", "", "<s> 中文 🙂\n\t"] {
            if let Err(e) = t.encode(text) {
                return refused(e);
            }
        }
        if let Err(e) = t.decode(&ids) {
            return refused(e);
        }
    }
    Outcome::Ok
}

/// How a target makes structured inputs.
enum Gen {
    /// JSON documents: the parsed seeds, changed structurally; `toml` writes them as TOML.
    Json {
        docs: Vec<Value>,
        words: Vec<String>,
        toml: bool,
    },
    Safetensors,
    TorchZip,
    Gguf(Vec<Doc>),
    Table(&'static str),
}

impl Gen {
    fn json(seeds: &[Vec<u8>], toml: bool) -> Gen {
        let docs: Vec<Value> = seeds
            .iter()
            .filter_map(|s| {
                if toml {
                    toml::from_str(std::str::from_utf8(s).ok()?).ok()
                } else {
                    serde_json::from_slice(s).ok()
                }
            })
            .collect();
        let mut words = Vec::new();
        docs.iter().for_each(|d| gen::keys_of(d, &mut words));
        Gen::Json { docs, words, toml }
    }

    fn make(&self, rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
        let seed = &seeds[rng.below(seeds.len())];
        match self {
            Gen::Json { docs, words, toml } => {
                if docs.is_empty() {
                    return seed.clone();
                }
                let w: Vec<&str> = words.iter().map(String::as_str).collect();
                let doc = &docs[rng.below(docs.len())];
                let bytes = gen::json_variant(rng, doc, &w);
                if *toml {
                    match serde_json::from_slice::<Value>(&bytes) {
                        Ok(v) => gen::toml_text(&v).into_bytes(),
                        Err(_) => bytes,
                    }
                } else {
                    bytes
                }
            }
            Gen::Safetensors => gen::safetensors_variant(rng, seed),
            Gen::TorchZip => gen::torch_zip_variant(rng, seed),
            Gen::Gguf(docs) => {
                let mut d = docs[rng.below(docs.len())].clone();
                gguf::mutate_doc(rng, &mut d);
                d.encode()
            }
            Gen::Table(ext) => table(rng, ext),
        }
    }
}

/// A table of arbitrary columns and cells in format `ext`.
fn table(rng: &mut Rng, ext: &str) -> Vec<u8> {
    use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
    let raw = gen::entropy(rng, 8192);
    let mut u = Unstructured::new(&raw);
    let ncols = u.int_in_range(0usize..=3).unwrap_or(1);
    let nrows = u.int_in_range(0usize..=12).unwrap_or(1);
    let names: Vec<String> = (0..ncols)
        .map(|_| {
            if u.ratio(4u8, 5).unwrap_or(true) {
                gen::COLUMNS[u.choose_index(gen::COLUMNS.len()).unwrap_or(0)].to_string()
            } else {
                u.arbitrary::<String>().unwrap_or_default()
            }
        })
        .collect();
    match ext {
        "csv" => {
            let mut out = names.join(",");
            for _ in 0..nrows {
                out.push('\n');
                let cells: Vec<String> = (0..ncols)
                    .map(|c| {
                        let s = if names[c].starts_with("label") {
                            gen::label(&mut u)
                        } else {
                            gen::cell(&mut u)
                        };
                        if u.arbitrary::<bool>().unwrap_or(true) {
                            format!("\"{}\"", s.replace('"', "\"\""))
                        } else {
                            s
                        }
                    })
                    .collect();
                out.push_str(&cells.join(","));
            }
            out.into_bytes()
        }
        "jsonl" => {
            let mut out = String::new();
            for _ in 0..nrows {
                let mut m = serde_json::Map::new();
                for n in &names {
                    let v = if u.ratio(1u8, 2).unwrap_or(true) {
                        Value::String(gen::cell(&mut u))
                    } else {
                        gen::value(&mut u, gen::COLUMNS, 2)
                    };
                    m.insert(n.clone(), v);
                }
                out.push_str(&Value::Object(m).to_string());
                out.push('\n');
            }
            out.into_bytes()
        }
        _ => {
            let mut fields = Vec::new();
            let mut cols: Vec<ArrayRef> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for n in &names {
                if !seen.insert(n.clone()) {
                    continue;
                }
                let null = |u: &mut Unstructured| u.ratio(1u8, 6).unwrap_or(false);
                let (dt, col): (arrow_schema::DataType, ArrayRef) = match u
                    .int_in_range(0u8..=4)
                    .unwrap_or(0)
                {
                    0 | 1 => (
                        arrow_schema::DataType::Utf8,
                        std::sync::Arc::new(StringArray::from(
                            (0..nrows)
                                .map(|_| (!null(&mut u)).then(|| gen::cell(&mut u)))
                                .collect::<Vec<_>>(),
                        )),
                    ),
                    2 => (
                        arrow_schema::DataType::Int64,
                        std::sync::Arc::new(Int64Array::from(
                            (0..nrows)
                                .map(|_| (!null(&mut u)).then(|| u.arbitrary::<i64>().unwrap_or(2)))
                                .collect::<Vec<_>>(),
                        )),
                    ),
                    3 => (
                        arrow_schema::DataType::Float64,
                        std::sync::Arc::new(Float64Array::from(
                            (0..nrows)
                                .map(|_| {
                                    (!null(&mut u)).then(|| u.arbitrary::<f64>().unwrap_or(0.5))
                                })
                                .collect::<Vec<_>>(),
                        )),
                    ),
                    _ => (
                        arrow_schema::DataType::Boolean,
                        std::sync::Arc::new(BooleanArray::from(
                            (0..nrows)
                                .map(|_| {
                                    (!null(&mut u)).then(|| u.arbitrary::<bool>().unwrap_or(true))
                                })
                                .collect::<Vec<_>>(),
                        )),
                    ),
                };
                fields.push(arrow_schema::Field::new(n, dt, true));
                cols.push(col);
            }
            let schema = std::sync::Arc::new(arrow_schema::Schema::new(fields));
            let batch = if cols.is_empty() {
                RecordBatch::new_empty(schema.clone())
            } else {
                match RecordBatch::try_new(schema.clone(), cols) {
                    Ok(b) => b,
                    Err(_) => return Vec::new(),
                }
            };
            let mut out = Vec::new();
            let ok = if ext == "parquet" {
                parquet::arrow::ArrowWriter::try_new(&mut out, schema, None)
                    .and_then(|mut w| {
                        w.write(&batch)?;
                        w.close().map(|_| ())
                    })
                    .is_ok()
            } else if u.arbitrary::<bool>().unwrap_or(true) {
                arrow_ipc::writer::StreamWriter::try_new(&mut out, &schema)
                    .and_then(|mut w| {
                        w.write(&batch)?;
                        w.finish()
                    })
                    .is_ok()
            } else {
                arrow_ipc::writer::FileWriter::try_new(&mut out, &schema)
                    .and_then(|mut w| {
                        w.write(&batch)?;
                        w.finish()
                    })
                    .is_ok()
            };
            if ok {
                out
            } else {
                Vec::new()
            }
        }
    }
}

/// What a target does with an input once it is on disk.
enum Load {
    /// `Model::load` of the folder (or of the file, for GGUF), then [`exercise`].
    Model,
    Tokenizer,
    Dataset,
    /// Open the store, read the entry's manifest, check it with its checksum and read it back.
    Store {
        checkpoint: String,
        dataset: String,
    },
    Vectors,
    Experiment,
}

/// One target: where the input goes, how it is loaded, its seeds and generator.
pub struct FileTarget {
    name: &'static str,
    /// Scratch folders the input may be written into, with the model_type each holds (the config
    /// target picks the folder whose architecture the input names).
    dirs: Vec<(String, PathBuf)>,
    file: String,
    seeds: Vec<Vec<u8>>,
    text: bool,
    gen: Gen,
    load: Load,
}

fn model_type_of(input: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(input).ok()?;
    let at = s.find("\"model_type\"")? + "\"model_type\"".len();
    let rest = s[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

impl Target for FileTarget {
    fn name(&self) -> &'static str {
        self.name
    }
    fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }
    fn text(&self) -> bool {
        self.text
    }
    fn generate(&self, rng: &mut Rng) -> Vec<u8> {
        self.gen.make(rng, &self.seeds)
    }
    fn run(&self, input: &[u8]) -> Outcome {
        let dir = if self.dirs.len() > 1 {
            let mt = model_type_of(input);
            let fits: Vec<&PathBuf> = self
                .dirs
                .iter()
                .filter(|(t, _)| Some(t.as_str()) == mt)
                .map(|(_, d)| d)
                .collect();
            match fits.len() {
                0 => &self.dirs[input.len() % self.dirs.len()].1,
                n => fits[input.len() % n],
            }
        } else {
            &self.dirs[0].1
        };
        let path = dir.join(&self.file);
        write(&path, input);
        match &self.load {
            Load::Model => {
                let at = if self.file.ends_with(".gguf") {
                    path.as_path()
                } else {
                    dir.as_path()
                };
                match Model::load(at, &LoadOptions::default()) {
                    Ok(ck) => exercise(&ck),
                    Err(e) => refused(e),
                }
            }
            Load::Tokenizer => {
                let text = match std::str::from_utf8(input) {
                    Ok(t) => t,
                    Err(_) => return Outcome::Refused("not UTF-8".into()),
                };
                match pretrace_model::Tokenizer::from_json(&path, text) {
                    Ok(t) => {
                        for s in ["Hello wörld", "", "<s> 中文 🙂\n\t", &"ab ".repeat(300)] {
                            match t.encode(s) {
                                Ok(ids) => {
                                    if let Err(e) = t.decode(&ids) {
                                        return refused(e);
                                    }
                                }
                                Err(e) => return refused(e),
                            }
                        }
                        Outcome::Ok
                    }
                    Err(e) => refused(e),
                }
            }
            Load::Dataset => {
                match pretrace_data::Dataset::read(&path, &pretrace_data::ReadOptions::default()) {
                    Ok(_) => Outcome::Ok,
                    Err(e) => refused(e),
                }
            }
            Load::Store {
                checkpoint,
                dataset,
            } => {
                let store = match pretrace_store::Store::open(dir) {
                    Ok(s) => s,
                    Err(e) => return refused(e),
                };
                let m = match store.manifest(checkpoint, dataset) {
                    Ok(Some(m)) => m,
                    Ok(None) => return Outcome::Refused("no manifest".into()),
                    Err(e) => return refused(e),
                };
                if let Err(e) = store.check_entry(&m, true) {
                    return refused(e);
                }
                match store.read(checkpoint, dataset) {
                    Ok(_) => Outcome::Ok,
                    Err(e) => refused(e),
                }
            }
            Load::Vectors => match pretrace_steer::VectorFile::read(&path) {
                Ok(_) => Outcome::Ok,
                Err(e) => refused(e),
            },
            Load::Experiment => {
                let text = match std::str::from_utf8(input) {
                    Ok(t) => t,
                    Err(_) => return Outcome::Refused("not UTF-8".into()),
                };
                match pretrace::experiment::ExperimentFile::parse(text, "fuzz.toml") {
                    Ok(_) => Outcome::Ok,
                    Err(e) => refused(e),
                }
            }
        }
    }
}

/// Scratch space for all targets, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Result<Scratch, String> {
        // One folder per Scratch, so that tests in one process do not share (and remove) one.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("pretrace-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const CONFIG_ARCHS: &[&str] = &[
    "llama_gqa",
    "llama_tied_bias",
    "gpt2",
    "mistral_window",
    "neox_parallel",
    "olmo_clip",
    "olmo2",
    "qwen2",
];

fn model_type(dir: &Path) -> String {
    std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| model_type_of(&b).map(str::to_string))
        .unwrap_or_default()
}

/// Builds target `name` in `scratch` from the fixtures under `golden`.
pub fn build(name: &str, golden: &Path, scratch: &Path) -> Result<FileTarget, String> {
    let at = scratch.join(name);
    let weights = |dir: &Path| -> Vec<&'static str> {
        if dir.join("model.safetensors").is_file() {
            vec!["config.json", "model.safetensors"]
        } else {
            vec!["config.json", "pytorch_model.bin"]
        }
    };
    let model_file = |src: &str,
                      file: &str,
                      extra: &[&str],
                      text: bool,
                      gen: fn(&[Vec<u8>]) -> Gen|
     -> Result<FileTarget, String> {
        let src = golden.join(src);
        let mut files: Vec<&str> = extra.to_vec();
        files.retain(|f| *f != file);
        copy_files(&src, &at, &files)?;
        let seeds = vec![read(&src.join(file))?];
        Ok(FileTarget {
            name: NAMES.iter().find(|n| **n == name).copied().unwrap_or("?"),
            dirs: vec![(String::new(), at.clone())],
            file: file.to_string(),
            gen: gen(&seeds),
            seeds,
            text,
            load: Load::Model,
        })
    };
    let static_name = NAMES.iter().find(|n| **n == name).copied().ok_or_else(|| {
        format!(
            "no fuzz target '{name}'; the targets are: {}",
            NAMES.join(", ")
        )
    })?;
    let data_file = |ext: &'static str| -> Result<FileTarget, String> {
        std::fs::create_dir_all(&at).map_err(|e| format!("{}: {e}", at.display()))?;
        let seeds = vec![read(&golden.join(format!("data/mini.{ext}")))?];
        Ok(FileTarget {
            name: static_name,
            dirs: vec![(String::new(), at.clone())],
            file: format!("rows.{ext}"),
            seeds,
            text: matches!(ext, "csv" | "jsonl"),
            gen: Gen::Table(ext),
            load: Load::Dataset,
        })
    };
    match name {
        "config" => {
            let mut dirs = Vec::new();
            let mut seeds = Vec::new();
            for a in CONFIG_ARCHS {
                let src = golden.join(a);
                let dst = at.join(a);
                let mut files = weights(&src);
                if src.join("tokenizer.json").is_file() {
                    files.push("tokenizer.json");
                }
                copy_files(&src, &dst, &files)?;
                seeds.push(read(&src.join("config.json"))?);
                dirs.push((model_type(&src), dst));
            }
            Ok(FileTarget {
                name: static_name,
                dirs,
                file: "config.json".into(),
                gen: Gen::json(&seeds, false),
                seeds,
                text: true,
                load: Load::Model,
            })
        }
        "safetensors" => model_file(
            "llama_gqa",
            "model.safetensors",
            &["config.json"],
            false,
            |_| Gen::Safetensors,
        ),
        "index-safetensors" => {
            let mut files = vec!["config.json".to_string()];
            files.extend((1..=5).map(|i| format!("model-0000{i}-of-00005.safetensors")));
            let files: Vec<&str> = files.iter().map(String::as_str).collect();
            model_file(
                "llama_gqa/sharded_safetensors",
                "model.safetensors.index.json",
                &files,
                true,
                |s| Gen::json(s, false),
            )
        }
        "index-bin" => {
            let files = [
                "config.json",
                "pytorch_model-00001-of-00003.bin",
                "pytorch_model-00002-of-00003.bin",
                "pytorch_model-00003-of-00003.bin",
            ];
            model_file(
                "llama_gqa/sharded_bin",
                "pytorch_model.bin.index.json",
                &files,
                true,
                |s| Gen::json(s, false),
            )
        }
        "bin" => model_file(
            "llama_gqa/bin",
            "pytorch_model.bin",
            &["config.json"],
            false,
            |_| Gen::TorchZip,
        ),
        "gguf" => {
            let src = golden.join("llama_gqa");
            let cfg: Value = serde_json::from_slice(&read(&src.join("config.json"))?)
                .map_err(|e| format!("llama_gqa/config.json: {e}"))?;
            let tok = String::from_utf8(read(&src.join("tokenizer.json"))?)
                .map_err(|e| format!("llama_gqa/tokenizer.json: {e}"))?;
            let model = gguf::llama_seed(&read(&src.join("model.safetensors"))?, &tok, &cfg)
                .ok_or("cannot build the GGUF seed from llama_gqa")?;
            let cvec = read(&golden.join("cvec/ref.gguf"))?;
            let seeds = vec![model, cvec];
            let docs: Vec<Doc> = seeds.iter().filter_map(|s| Doc::parse(s)).collect();
            if docs.len() != 2 {
                return Err("the GGUF seeds do not parse".into());
            }
            std::fs::create_dir_all(&at).map_err(|e| format!("{}: {e}", at.display()))?;
            Ok(FileTarget {
                name: static_name,
                dirs: vec![(String::new(), at.clone())],
                file: "model.gguf".into(),
                seeds,
                text: false,
                gen: Gen::Gguf(docs),
                load: Load::Model,
            })
        }
        "tokenizer" => {
            std::fs::create_dir_all(&at).map_err(|e| format!("{}: {e}", at.display()))?;
            let seeds = vec![
                read(&golden.join("llama_gqa/tokenizer.json"))?,
                read(&golden.join("gpt2/tokenizer.json"))?,
            ];
            Ok(FileTarget {
                name: static_name,
                dirs: vec![(String::new(), at.clone())],
                file: "tokenizer.json".into(),
                gen: Gen::json(&seeds, false),
                seeds,
                text: true,
                load: Load::Tokenizer,
            })
        }
        "csv" => data_file("csv"),
        "jsonl" => data_file("jsonl"),
        "arrow" => data_file("arrow"),
        "parquet" => data_file("parquet"),
        "manifest" | "activations" => {
            let root = at.join("store");
            let (checkpoint, dataset) = build_store(golden, &at, &root)?;
            let file = if name == "manifest" {
                "manifest.json"
            } else {
                "activations.safetensors"
            };
            let rel = format!("{checkpoint}/{dataset}/{file}");
            let seeds = vec![read(&root.join(&rel))?];
            Ok(FileTarget {
                name: static_name,
                dirs: vec![(String::new(), root)],
                file: rel,
                gen: if name == "manifest" {
                    Gen::json(&seeds, false)
                } else {
                    Gen::Safetensors
                },
                seeds,
                text: name == "manifest",
                load: Load::Store {
                    checkpoint,
                    dataset,
                },
            })
        }
        "vectors" => {
            std::fs::create_dir_all(&at).map_err(|e| format!("{}: {e}", at.display()))?;
            let seeds = vec![
                read(&golden.join("cvec/vectors.safetensors"))?,
                read(&golden.join("llama_gqa/steer.safetensors"))?,
            ];
            Ok(FileTarget {
                name: static_name,
                dirs: vec![(String::new(), at.clone())],
                file: "vectors.safetensors".into(),
                seeds,
                text: false,
                gen: Gen::Safetensors,
                load: Load::Vectors,
            })
        }
        "experiment" => {
            let dir = golden.join("../../experiments");
            let mut seeds = Vec::new();
            for f in ["lab-quick.toml", "lab.toml", "paper-amber.toml"] {
                seeds.push(read(&dir.join(f))?);
            }
            std::fs::create_dir_all(&at).map_err(|e| format!("{}: {e}", at.display()))?;
            Ok(FileTarget {
                name: static_name,
                dirs: vec![(String::new(), at.clone())],
                file: "experiment.toml".into(),
                gen: Gen::json(&seeds, true),
                seeds,
                text: true,
                load: Load::Experiment,
            })
        }
        _ => Err(format!(
            "no fuzz target '{name}'; the targets are: {}",
            NAMES.join(", ")
        )),
    }
}

/// A one-entry store made by the real extraction: llama_gqa over the mini CSV.
fn build_store(golden: &Path, at: &Path, root: &Path) -> Result<(String, String), String> {
    let model = at.join("step0");
    copy_files(
        &golden.join("llama_gqa"),
        &model,
        &["config.json", "model.safetensors", "tokenizer.json"],
    )?;
    let data = at.join("mini.csv");
    std::fs::copy(golden.join("data/mini.csv"), &data).map_err(|e| e.to_string())?;
    let ds = pretrace_data::Dataset::read(&data, &pretrace_data::ReadOptions::default())
        .map_err(|e| e.to_string())?;
    let store = pretrace_store::Store::create(root, "pretrace-fuzz").map_err(|e| e.to_string())?;
    let ck = pretrace_sweep::CheckpointRef {
        name: "step0".into(),
        path: model,
        step: Some(0),
        tokens: None,
        hub: None,
        tokenizer: None,
    };
    let opts = pretrace_sweep::ExtractOptions {
        layers: pretrace_sweep::LayerSpec::parse("0,2").map_err(|e| e.to_string())?,
        ..Default::default()
    };
    pretrace_sweep::extract(
        &[ck],
        std::slice::from_ref(&ds),
        &store,
        &opts,
        &mut pretrace_sweep::Quiet,
    )
    .map_err(|e| e.to_string())?;
    Ok(("step0".into(), ds.name.clone()))
}
