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
                let unreadable = |e: String| {
                    ModelError::weights(path, format!("not a readable PyTorch checkpoint ({e}); the file is truncated or corrupt, re-download it"))
                };
                let mut archive = std::fs::File::open(path)
                    .map_err(|e| e.to_string())
                    .and_then(|f| zip::ZipArchive::new(f).map_err(|e| e.to_string()))
                    .map_err(unreadable)?;
                check_pickles(&mut archive).map_err(unreadable)?;
                let pth =
                    pretrace_core::contain(|| candle_core::pickle::PthTensors::new(path, None))
                        .map_err(|e| format!("the unpickler failed: {e}"))
                        .and_then(|r| r.map_err(|e| crate::error::one_line(&e)))
                        .map_err(unreadable)?;
                for (name, info) in pth.tensor_infos() {
                    check_pth_extent(path, &mut archive, info)?;
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
            Backing::Pth(p) => pretrace_core::contain(|| p.get(name))
                .map_err(|e| {
                    ModelError::weights(
                        path,
                        format!("cannot read tensor '{name}' (the reader failed: {e}); the file is truncated or corrupt"),
                    )
                })?
                .map_err(read_err)?
                .ok_or_else(|| {
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

/// A `.bin` tensor's declared shape, offset and dtype must fit in its storage record in the archive:
/// candle allocates the whole tensor from the pickle's numbers before reading a byte.
fn check_pth_extent<R: std::io::Read + std::io::Seek>(
    path: &Path,
    archive: &mut zip::ZipArchive<R>,
    info: &candle_core::pickle::TensorInfo,
) -> Result<()> {
    let name = pretrace_core::shown(&info.name, 80);
    let bad = |msg: String| {
        ModelError::weights(
            path,
            format!("tensor '{name}' {msg}; the file is truncated or corrupt, re-download it"),
        )
    };
    let elem = info.dtype.size_in_bytes() as u64;
    let elems = info
        .layout
        .dims()
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .ok_or_else(|| {
            bad(format!(
                "declares a shape {:?} too large to hold",
                info.layout.dims()
            ))
        })?;
    let need = elems
        .checked_add(info.layout.start_offset() as u64)
        .and_then(|n| n.checked_mul(elem))
        .ok_or_else(|| {
            bad(format!(
                "declares a shape {:?} too large to hold",
                info.layout.dims()
            ))
        })?;
    let have = archive
        .index_for_name(&info.path)
        .and_then(|i| archive.by_index_raw(i).ok().map(|f| f.size()));
    match have {
        None => Err(bad(format!(
            "is stored in '{}', which the archive does not hold",
            pretrace_core::shown(&info.path, 80)
        ))),
        Some(have) if need > have => Err(bad(format!(
            "needs {need} bytes of storage '{}' (shape {:?}), which holds {have}",
            pretrace_core::shown(&info.path, 80),
            info.layout.dims()
        ))),
        Some(_) => Ok(()),
    }
}

/// Walks each `data.pkl` of a PyTorch archive over the opcodes candle's unpickler reads, checking
/// that every length-prefixed string fits in the pickle: the unpickler allocates a string's
/// declared length before reading it.
fn check_pickles<R: std::io::Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
) -> std::result::Result<(), String> {
    use std::io::Read;
    const MAX_PICKLE: u64 = 1 << 30;
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).map_err(|e| e.to_string())?;
        if !f.name_raw().ends_with(b"data.pkl") {
            continue;
        }
        let name = pretrace_core::shown(&String::from_utf8_lossy(f.name_raw()), 80);
        if f.size() > MAX_PICKLE {
            return Err(format!("'{name}' declares {} bytes", f.size()));
        }
        let mut b = Vec::new();
        (&mut f)
            .take(MAX_PICKLE)
            .read_to_end(&mut b)
            .map_err(|e| format!("'{name}': {e}"))?;
        walk_pickle(&b).map_err(|e| format!("'{name}': {e}"))?;
    }
    Ok(())
}

/// Follows a pickle over the opcodes candle's unpickler knows, keeping for each stack slot and memo
/// entry the number of objects it holds. A string longer than the rest of the pickle, or a pickle
/// whose memo copies would build far more objects than it has bytes (candle clones a memo entry
/// on every get, so a few bytes can build an exponential tree), is refused before it is run.
fn walk_pickle(b: &[u8]) -> std::result::Result<(), String> {
    const MARK: u64 = u64::MAX;
    let limit = 4 * b.len() as u64 + 100_000;
    let mut stack: Vec<u64> = Vec::new();
    let mut memo: HashMap<u32, u64> = HashMap::new();
    let mut built: u64 = 0;
    let mut at = 0usize;
    let arg = |at: usize, n: usize| -> u32 {
        let mut v = [0u8; 4];
        if let Some(s) = b.get(at..at + n) {
            v[..n].copy_from_slice(s);
        }
        u32::from_le_bytes(v)
    };
    // Pops down to the last MARK (or everything), returning the objects popped.
    fn to_mark(stack: &mut Vec<u64>) -> u64 {
        let mut sum = 0u64;
        while let Some(x) = stack.pop() {
            if x == MARK {
                break;
            }
            sum = sum.saturating_add(x);
        }
        sum
    }
    fn pop(stack: &mut Vec<u64>, n: usize) -> u64 {
        (0..n)
            .map(|_| stack.pop().filter(|&x| x != MARK).unwrap_or(0))
            .fold(0u64, u64::saturating_add)
    }
    fn add_to_top(stack: &mut [u64], n: u64) {
        if let Some(t) = stack.last_mut().filter(|t| **t != MARK) {
            *t = t.saturating_add(n);
        }
    }
    while at < b.len() {
        let op = b[at];
        at += 1;
        let mut push = None;
        match op {
            0x80 => at += 1,
            b'K' => (at, push) = (at + 1, Some(1)),
            b'M' => (at, push) = (at + 2, Some(1)),
            b'J' => (at, push) = (at + 4, Some(1)),
            b'G' => (at, push) = (at + 8, Some(1)),
            0x8a => {
                at += 1 + b.get(at).copied().unwrap_or(0) as usize;
                push = Some(1);
            }
            b'c' => {
                for _ in 0..2 {
                    match b.get(at..).and_then(|r| r.iter().position(|&c| c == b'\n')) {
                        Some(n) => at += n + 1,
                        None => {
                            return Err(format!("a GLOBAL opcode at byte {} has no name", at - 1))
                        }
                    }
                }
                push = Some(1);
            }
            b'X' => {
                let len = arg(at, 4) as usize;
                at += 4;
                if len > b.len().saturating_sub(at) {
                    return Err(format!(
                        "a string at byte {} declares {len} bytes, past the end of the pickle",
                        at - 5
                    ));
                }
                at += len;
                push = Some(1);
            }
            b'N' | 0x88 | 0x89 | b'}' | b']' | b')' => push = Some(1),
            b'(' => stack.push(MARK),
            b't' | b'd' => push = Some(to_mark(&mut stack).saturating_add(1)),
            0x85 => push = Some(pop(&mut stack, 1).saturating_add(1)),
            0x86 => push = Some(pop(&mut stack, 2).saturating_add(1)),
            0x87 => push = Some(pop(&mut stack, 3).saturating_add(1)),
            b'Q' => push = Some(pop(&mut stack, 1).saturating_add(1)),
            b'R' | 0x81 => push = Some(pop(&mut stack, 2).saturating_add(1)),
            b'b' => push = Some(pop(&mut stack, 2)),
            b'a' => {
                let n = pop(&mut stack, 1);
                add_to_top(&mut stack, n);
            }
            b's' => {
                let n = pop(&mut stack, 2);
                add_to_top(&mut stack, n);
            }
            b'e' | b'u' => {
                let n = to_mark(&mut stack);
                add_to_top(&mut stack, n);
            }
            b'h' | b'j' => {
                let (key, n) = if op == b'h' {
                    (arg(at, 1), 1)
                } else {
                    (arg(at, 4), 4)
                };
                at += n;
                let n = memo.get(&key).copied().unwrap_or(1);
                // A get clones the entry: all of its objects are built again.
                built = built.saturating_add(n.saturating_sub(1));
                push = Some(n);
            }
            b'q' | b'r' => {
                let (key, n) = if op == b'q' {
                    (arg(at, 1), 1)
                } else {
                    (arg(at, 4), 4)
                };
                at += n;
                if let Some(&t) = stack.last().filter(|t| **t != MARK) {
                    memo.insert(key, t);
                }
            }
            b'.' => break,
            // An opcode candle does not know: it reports it.
            _ => break,
        }
        if let Some(n) = push {
            built = built.saturating_add(1);
            if built > limit {
                return Err(format!(
                    "the pickle builds more than {limit} objects by byte {at} (memo copies of copies); it is not a checkpoint's"
                ));
            }
            stack.push(n);
        }
    }
    Ok(())
}
