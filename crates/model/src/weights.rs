//! Weight files: safetensors (single or sharded), PyTorch `.bin` (single or sharded) and GGUF
//! (through [`crate::gguf`]). Every tensor is used or explicitly ignored; a missing or mis-shaped one
//! is an error naming the tensor, the expected and found shapes and the file.

use crate::error::{ModelError, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

enum Backing {
    Safetensors(candle_core::safetensors::MmapedSafetensors),
    Pth(candle_core::pickle::PthTensors),
    /// Tensors already in memory (GGUF, dequantized and renamed to Hugging Face names).
    Memory(HashMap<String, Tensor>),
}

struct Entry {
    file: usize,
    shape: Vec<usize>,
    dtype: DType,
}

/// The tensors of one checkpoint, by name, loaded on demand and converted to the compute dtype.
pub struct Weights {
    files: Vec<(PathBuf, Backing)>,
    index: BTreeMap<String, Entry>,
    used: Mutex<BTreeSet<String>>,
    /// Compute dtype every tensor is converted to.
    pub dtype: DType,
    pub device: Device,
    /// What to name in error messages (the checkpoint directory or GGUF file).
    pub origin: PathBuf,
}

/// Weight file formats recognised in a checkpoint directory, in order of preference.
pub fn find_weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single_st = dir.join("model.safetensors");
    if single_st.is_file() {
        return Ok(vec![single_st]);
    }
    for index in [
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
    ] {
        let p = dir.join(index);
        if p.is_file() {
            return shards_from_index(&p);
        }
    }
    let single_bin = dir.join("pytorch_model.bin");
    if single_bin.is_file() {
        return Ok(vec![single_bin]);
    }
    Err(ModelError::weights(
        dir,
        "no weights found: expected model.safetensors, model.safetensors.index.json, pytorch_model.bin or \
         pytorch_model.bin.index.json in this directory",
    ))
}

fn shards_from_index(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index)
        .map_err(|e| ModelError::weights(index, format!("cannot read: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        ModelError::weights(
            index,
            format!("not valid JSON ({e}); re-download the index file"),
        )
    })?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| {
            ModelError::weights(
                index,
                "field 'weight_map' is missing or not an object; re-download the index file",
            )
        })?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files = BTreeSet::new();
    for (name, f) in map {
        let f = f.as_str().ok_or_else(|| {
            ModelError::weights(
                index,
                format!(
                    "weight_map['{}'] is not a file name",
                    pretrace_core::shown(name, 80)
                ),
            )
        })?;
        files.insert(f.to_string());
    }
    let mut out = Vec::new();
    for f in files {
        let p = inside_checkpoint(index, dir, &f)?;
        if !p.is_file() {
            return Err(ModelError::weights(
                &p,
                format!("shard named in {} is missing; download it", index.display()),
            ));
        }
        out.push(p);
    }
    Ok(out)
}

/// `dir/name` for a file an index names, refused unless it stays inside the checkpoint: `name` is a
/// relative path of plain components (no `..`, no root), and the file it resolves to, symlinks
/// followed, lies inside the checkpoint directory or — for a Hugging Face cache snapshot
/// (`…/snapshots/COMMIT/`), whose files are links into `…/blobs/` — inside that repository's blobs.
pub fn inside_checkpoint(index: &Path, dir: &Path, name: &str) -> Result<PathBuf> {
    use std::path::Component;
    let shown = pretrace_core::shown(name, 120);
    let plain = !name.is_empty()
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(ModelError::weights(
            index,
            format!("names the weight file '{shown}', which is not a file inside the checkpoint directory; an index may name only files beside it"),
        ));
    }
    let p = dir.join(name);
    let Ok(real) = p.canonicalize() else {
        // Missing: reported by the caller, with what to download.
        return Ok(p);
    };
    let mut roots = Vec::new();
    if let Ok(d) = dir.canonicalize() {
        roots.push(d);
    }
    // A Hugging Face cache snapshot: models--ORG--NAME/snapshots/COMMIT/ → models--ORG--NAME/blobs.
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if let Some(repo) = abs
        .parent()
        .filter(|s| s.file_name().is_some_and(|n| n == "snapshots"))
        .and_then(Path::parent)
    {
        if let Ok(b) = repo.join("blobs").canonicalize() {
            roots.push(b);
        }
    }
    if roots.iter().any(|r| real.starts_with(r)) {
        Ok(p)
    } else {
        Err(ModelError::weights(
            index,
            format!(
                "the weight file '{shown}' resolves to {}, outside the checkpoint; refusing to read it",
                real.display()
            ),
        ))
    }
}

impl Weights {
    /// Opens weight files (safetensors or `.bin`, told apart by extension) without reading tensor data.
    pub fn open(
        origin: &Path,
        files: &[PathBuf],
        dtype: DType,
        device: &Device,
    ) -> Result<Weights> {
        let mut w = Weights::empty(origin, dtype, device);
        for path in files {
            let is_st = path.extension().is_some_and(|e| e == "safetensors");
            let backing = if is_st {
                // SAFETY: the file is mapped read-only; it must not be modified while the model is loaded.
                let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }
                    .map_err(|e| ModelError::weights(path, format!("not a valid safetensors file ({}); the file is truncated or corrupt, re-download it", crate::error::one_line(&e))))?;
                for (name, view) in st.tensors() {
                    let dt = st_dtype(view.dtype()).ok_or_else(|| {
                        ModelError::weights(
                            path,
                            format!(
                                "tensor '{}' has unsupported dtype {:?}; expected F32, F16 or BF16",
                                pretrace_core::shown(&name, 80),
                                view.dtype()
                            ),
                        )
                    })?;
                    w.insert(name, w.files.len(), view.shape().to_vec(), dt, path)?;
                }
                Backing::Safetensors(st)
            } else {
                let pth = candle_core::pickle::PthTensors::new(path, None)
                    .map_err(|e| ModelError::weights(path, format!("not a readable PyTorch checkpoint ({}); the file is truncated or corrupt, re-download it", crate::error::one_line(&e))))?;
                for (name, info) in pth.tensor_infos() {
                    w.insert(
                        name.clone(),
                        w.files.len(),
                        info.layout.shape().dims().to_vec(),
                        info.dtype,
                        path,
                    )?;
                }
                Backing::Pth(pth)
            };
            w.files.push((path.clone(), backing));
        }
        Ok(w)
    }

    /// Tensors already in memory, e.g. from a GGUF file.
    pub fn from_memory(
        origin: &Path,
        tensors: HashMap<String, Tensor>,
        dtype: DType,
        device: &Device,
    ) -> Result<Weights> {
        let mut w = Weights::empty(origin, dtype, device);
        for (name, t) in &tensors {
            w.insert(name.clone(), 0, t.dims().to_vec(), t.dtype(), origin)?;
        }
        w.files
            .push((origin.to_path_buf(), Backing::Memory(tensors)));
        Ok(w)
    }

    fn empty(origin: &Path, dtype: DType, device: &Device) -> Weights {
        Weights {
            files: Vec::new(),
            index: BTreeMap::new(),
            used: Mutex::new(BTreeSet::new()),
            dtype,
            device: device.clone(),
            origin: origin.to_path_buf(),
        }
    }

    fn insert(
        &mut self,
        name: String,
        file: usize,
        shape: Vec<usize>,
        dtype: DType,
        path: &Path,
    ) -> Result<()> {
        if self.index.contains_key(&name) {
            return Err(ModelError::weights(
                path,
                format!(
                    "tensor '{}' appears in more than one weight file",
                    pretrace_core::shown(&name, 80)
                ),
            ));
        }
        self.index.insert(name, Entry { file, shape, dtype });
        Ok(())
    }

    /// Whether a tensor exists.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The stored dtype of the largest tensor (what `info` reports as the weight dtype).
    pub fn stored_dtype(&self) -> Option<DType> {
        self.index
            .values()
            .max_by_key(|e| e.shape.iter().product::<usize>())
            .map(|e| e.dtype)
    }

    /// The file holding a tensor, for messages.
    pub fn file_of(&self, name: &str) -> PathBuf {
        self.index
            .get(name)
            .map_or_else(|| self.origin.clone(), |e| self.files[e.file].0.clone())
    }

    /// Loads a tensor, checks its shape and converts it to the compute dtype.
    pub fn get(&self, name: &str, shape: &[usize], arch: &str) -> Result<Tensor> {
        match self.get_opt(name, shape)? {
            Some(t) => Ok(t),
            None => Err(ModelError::MissingTensor {
                path: self.origin.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                arch: arch.to_string(),
            }),
        }
    }

    /// Like [`Weights::get`], `None` if the tensor is absent.
    pub fn get_opt(&self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        let Some(entry) = self.index.get(name) else {
            return Ok(None);
        };
        let (path, backing) = &self.files[entry.file];
        if entry.shape != shape {
            return Err(ModelError::ShapeMismatch {
                path: path.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                found: entry.shape.clone(),
            });
        }
        let read_err = |e: candle_core::Error| {
            ModelError::weights(
                path,
                format!(
                    "cannot read tensor '{name}' ({}); the file is truncated or corrupt",
                    crate::error::one_line(&e)
                ),
            )
        };
        let t = match backing {
            Backing::Safetensors(st) => st.load(name, &Device::Cpu).map_err(read_err)?,
            Backing::Pth(p) => p.get(name).map_err(read_err)?.ok_or_else(|| {
                ModelError::weights(path, format!("tensor '{name}' vanished from the file"))
            })?,
            Backing::Memory(m) => m[name].clone(),
        };
        if t.dims() != shape {
            return Err(ModelError::ShapeMismatch {
                path: path.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                found: t.dims().to_vec(),
            });
        }
        self.used
            .lock()
            .map_err(|_| ModelError::Invalid("weight bookkeeping poisoned".into()))?
            .insert(name.to_string());
        let t = t.to_dtype(self.dtype)?;
        if let Some((i, v)) = crate::finite::first_non_finite(&t)? {
            return Err(ModelError::weights(
                path,
                format!(
                    "tensor '{name}' holds {v} at element {i} (in {}); the weights are corrupt or overflowed when saved",
                    crate::finite::dtype_name(self.dtype)
                ),
            ));
        }
        Ok(Some(t.to_device(&self.device)?))
    }

    /// Marks tensors as deliberately unused (buffers such as `rotary_emb.inv_freq`).
    pub fn ignore(&self, pred: impl Fn(&str) -> bool) {
        if let Ok(mut used) = self.used.lock() {
            for name in self.index.keys().filter(|n| pred(n)) {
                used.insert(name.clone());
            }
        }
    }

    /// Names of the tensors used or ignored so far.
    pub fn used_names(&self) -> BTreeSet<String> {
        self.used.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// Records tensors as used (by an earlier reader of the same files).
    pub fn mark_used(&self, names: impl IntoIterator<Item = String>) {
        if let Ok(mut used) = self.used.lock() {
            used.extend(names);
        }
    }

    /// Fails if any tensor was neither used nor ignored.
    pub fn finish(&self, arch: &str) -> Result<()> {
        let used = self
            .used
            .lock()
            .map_err(|_| ModelError::Invalid("weight bookkeeping poisoned".into()))?;
        let unused: Vec<&String> = self.index.keys().filter(|n| !used.contains(*n)).collect();
        match unused.first() {
            None => Ok(()),
            Some(first) => Err(ModelError::UnusedTensors {
                path: self.file_of(first),
                arch: arch.to_string(),
                count: unused.len(),
                first: pretrace_core::shown(first, 80),
            }),
        }
    }

    /// Total number of stored parameters.
    pub fn parameter_count(&self) -> usize {
        self.index
            .values()
            .map(|e| e.shape.iter().product::<usize>())
            .sum()
    }

    /// The first of `prefixes` under which `probe` exists (e.g. `model.` vs a bare base model).
    pub fn detect_prefix<'a>(&self, prefixes: &[&'a str], probe: &str) -> Option<&'a str> {
        prefixes
            .iter()
            .copied()
            .find(|p| self.contains(&format!("{p}{probe}")))
    }
}

fn st_dtype(d: safetensors::Dtype) -> Option<DType> {
    use safetensors::Dtype as S;
    match d {
        S::F32 => Some(DType::F32),
        S::F16 => Some(DType::F16),
        S::BF16 => Some(DType::BF16),
        S::F64 => Some(DType::F64),
        _ => None,
    }
}
