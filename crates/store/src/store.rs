//! The store directory: format marker, entries, atomic writes.

use crate::manifest::Manifest;
use safetensors::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The store layout version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_NAME: &str = "pretrace-activation-store";
const MARKER: &str = "store.json";
const ACTIVATIONS: &str = "activations.safetensors";
const MANIFEST: &str = "manifest.json";
/// Temporary entries start with this; they are never read and are cleared when a store is opened
/// for writing.
const TMP_PREFIX: &str = pretrace_core::TMP_PREFIX;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{}: {}",
        pretrace_core::shown_path(path),
        pretrace_core::one_line(msg)
    )]
    At { path: PathBuf, msg: String },
    /// A manifest that cannot be parsed (truncated, damaged): its entry is to be redone.
    #[error(
        "{}: {}",
        pretrace_core::shown_path(path),
        pretrace_core::one_line(msg)
    )]
    BadManifest { path: PathBuf, msg: String },
    /// A write was refused or failed (see [`pretrace_core::FsError`]).
    #[error(transparent)]
    Fs(#[from] pretrace_core::FsError),
}

impl StoreError {
    fn at(path: &Path, msg: impl Into<String>) -> StoreError {
        StoreError::At {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// How stored activations are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreDType {
    F32,
    F16,
}

impl StoreDType {
    pub fn name(self) -> &'static str {
        match self {
            StoreDType::F32 => "f32",
            StoreDType::F16 => "f16",
        }
    }
}

/// A dense row-major f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// One entry read back.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manifest: Manifest,
    /// Layer → `[rows, d_model]` activations (f16 entries are widened to f32).
    pub layers: BTreeMap<usize, Matrix>,
    /// `[rows]`, -1 where unlabeled.
    pub labels: Vec<i64>,
    /// `[rows]`: tokens each row was run with.
    pub tokens: Vec<i64>,
}

/// An activation store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    format: String,
    version: u32,
    tool: String,
}

fn io(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::at(path, format!("{what}: {e}"))
}

/// Writes `bytes` to `path` atomically; refuses a target that is not a regular file or a missing
/// path (see [`pretrace_core::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(pretrace_core::write_atomic(path, bytes)?)
}

fn sync_dir(dir: &Path) {
    // Make the rename durable; not all filesystems allow syncing a directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A tensor held as bytes, for the safetensors writer.
struct Raw<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Cow<'a, [u8]>,
}

impl View for Raw<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn f32_bytes(v: &[f32], dtype: StoreDType) -> Vec<u8> {
    match dtype {
        StoreDType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        StoreDType::F16 => v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
    }
}

impl Store {
    /// Opens a store for writing, creating it if needed. Fails if the directory holds something
    /// that is not a store, a store of another format version, or cannot be written. Clears
    /// temporary entries a killed run left.
    pub fn create(root: &Path, tool: &str) -> Result<Store> {
        std::fs::create_dir_all(root).map_err(|e| {
            io(
                root,
                "cannot create the store directory (choose a writable --out)",
                e,
            )
        })?;
        let marker = root.join(MARKER);
        if marker.is_file() {
            check_marker(&marker)?;
        } else {
            let nonempty = std::fs::read_dir(root)
                .map_err(|e| io(root, "cannot list", e))?
                .filter_map(|e| e.ok())
                .any(|e| !e.file_name().to_string_lossy().starts_with(TMP_PREFIX));
            if nonempty {
                return Err(StoreError::at(
                    root,
                    format!("not an activation store (no {MARKER}) and not empty; choose a new or empty --out directory"),
                ));
            }
            let m = Marker {
                format: FORMAT_NAME.into(),
                version: FORMAT_VERSION,
                tool: tool.into(),
            };
            let text = serde_json::to_string_pretty(&m).unwrap_or_default();
            write_atomic(&marker, text.as_bytes()).map_err(|e| {
                StoreError::at(
                    root,
                    format!("cannot write the store (choose a writable --out): {e}"),
                )
            })?;
        }
        let store = Store {
            root: root.to_path_buf(),
        };
        store.clear_tmp()?;
        Ok(store)
    }

    /// Opens an existing store for reading.
    pub fn open(root: &Path) -> Result<Store> {
        let marker = root.join(MARKER);
        if !marker.is_file() {
            return Err(StoreError::at(
                root,
                format!("not an activation store: {MARKER} is missing; give the --out directory of `pretrace extract`"),
            ));
        }
        check_marker(&marker)?;
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    fn clear_tmp(&self) -> Result<()> {
        let walk = |dir: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(dir)
                .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default()
        };
        for p in walk(&self.root) {
            let is_tmp = |p: &Path| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(TMP_PREFIX))
            };
            if is_tmp(&p) {
                remove_any(&p)?;
            } else if p.is_dir() {
                for q in walk(&p).into_iter().filter(|q| is_tmp(q)) {
                    remove_any(&q)?;
                }
            }
        }
        Ok(())
    }

    /// The directory of one entry.
    pub fn entry_dir(&self, checkpoint: &str, dataset: &str) -> PathBuf {
        self.root.join(checkpoint).join(dataset)
    }

    /// The manifest of a complete entry, if there is one.
    pub fn manifest(&self, checkpoint: &str, dataset: &str) -> Result<Option<Manifest>> {
        let path = self.entry_dir(checkpoint, dataset).join(MANIFEST);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, "cannot read", e))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| StoreError::BadManifest {
            path: path.clone(),
            msg: format!("not a manifest this version reads ({e}); delete the entry to redo it"),
        })?;
        if m.store_format != FORMAT_VERSION {
            return Err(StoreError::at(
                &path,
                format!(
                    "written in store format {} by {}; this pretrace reads format {FORMAT_VERSION}; use a new --out directory",
                    m.store_format, m.tool
                ),
            ));
        }
        Ok(Some(m))
    }

    /// Whether the entry exists, was produced from the same inputs as `want`, and is whole (see
    /// [`Store::check_entry`]; without its checksum).
    pub fn is_current(&self, want: &Manifest) -> Result<bool> {
        let Some(m) = self.manifest(&want.checkpoint.name, &want.dataset.name)? else {
            return Ok(false);
        };
        Ok(m.same_inputs(want) && self.check_entry(&m, false)? == EntryState::Whole)
    }

    /// Whether the entry `m` describes is whole on disk: its activations file exists, is a regular
    /// file of the size the manifest records, and its safetensors header lists exactly the
    /// tensors and shapes of the manifest; with `checksum`, its sha256 is the recorded one too.
    /// Entries written before sizes were recorded are checked by their header alone.
    pub fn check_entry(&self, m: &Manifest, checksum: bool) -> Result<EntryState> {
        let dir = self.entry_dir(&m.checkpoint.name, &m.dataset.name);
        let path = dir.join(ACTIVATIONS);
        let broken = |why: String| Ok(EntryState::Broken(format!("{ACTIVATIONS} {why}")));
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return broken("is missing".into())
            }
            Err(e) => return Err(io(&path, "cannot inspect", e)),
        };
        if !meta.file_type().is_file() {
            return broken("is not a regular file".into());
        }
        let recorded = m.files.get(ACTIVATIONS);
        if let Some(f) = recorded {
            if meta.len() != f.bytes {
                return broken(format!(
                    "is {} bytes, the manifest records {}",
                    meta.len(),
                    f.bytes
                ));
            }
        }
        match read_header(&path, meta.len()) {
            Ok(tensors) if tensors == m.tensors => {}
            Ok(tensors) => {
                return broken(format!(
                    "holds {} tensors that differ from the manifest's {}",
                    tensors.len(),
                    m.tensors.len()
                ))
            }
            Err(why) => return broken(why),
        }
        if checksum {
            if let Some(f) = recorded {
                let got = pretrace_core::sha256_file(&path)?;
                if got != f.sha256 {
                    return broken(format!(
                        "has sha256 {got}, the manifest records {}",
                        f.sha256
                    ));
                }
            }
        }
        Ok(EntryState::Whole)
    }

    /// Writes an entry: `layers` maps each layer to its `[rows, d_model]` activations (row-major).
    /// The entry appears whole (activations and manifest together) or not at all.
    pub fn write(
        &self,
        manifest: &Manifest,
        layers: &BTreeMap<usize, Vec<f32>>,
        d_model: usize,
        labels: &[i64],
        tokens: &[i64],
        dtype: StoreDType,
    ) -> Result<()> {
        let ckpt_dir = pretrace_core::create_subdir(&self.root, &manifest.checkpoint.name)?;
        let final_dir = ckpt_dir.join(&manifest.dataset.name);
        let tmp = ckpt_dir.join(format!(
            "{TMP_PREFIX}{}-{}",
            std::process::id(),
            manifest.dataset.name
        ));
        remove_any(&tmp)?;
        std::fs::create_dir(&tmp).map_err(|e| io(&tmp, "cannot create", e))?;
        let rows = labels.len();
        let mut tensors: Vec<(String, Raw)> = Vec::new();
        let st_dtype = match dtype {
            StoreDType::F32 => Dtype::F32,
            StoreDType::F16 => Dtype::F16,
        };
        for (l, v) in layers {
            if v.len() != rows * d_model {
                return Err(StoreError::at(
                    &final_dir,
                    format!(
                        "layer {l} holds {} values, expected {rows}×{d_model}",
                        v.len()
                    ),
                ));
            }
            tensors.push((
                format!("blocks.{l}.hook_resid_post"),
                Raw {
                    dtype: st_dtype,
                    shape: vec![rows, d_model],
                    data: Cow::Owned(f32_bytes(v, dtype)),
                },
            ));
        }
        for (name, v) in [("labels", labels), ("tokens", tokens)] {
            tensors.push((
                name.to_string(),
                Raw {
                    dtype: Dtype::I64,
                    shape: vec![v.len()],
                    data: Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                },
            ));
        }
        // One key: the header is serialized from a hash map, and one key keeps the file bytes the
        // same run to run. The tool version is in the manifest.
        let meta: std::collections::HashMap<String, String> =
            [("format".to_string(), FORMAT_NAME.to_string())].into();
        let act = tmp.join(ACTIVATIONS);
        let bytes = safetensors::serialize(tensors, Some(meta)).map_err(|e| {
            StoreError::at(&final_dir.join(ACTIVATIONS), format!("cannot encode: {e}"))
        })?;
        let mut manifest = manifest.clone();
        manifest.files.insert(
            ACTIVATIONS.to_string(),
            crate::FileCheck {
                bytes: bytes.len() as u64,
                sha256: pretrace_core::sha256_hex(&bytes),
            },
        );
        pretrace_core::write_atomic(&act, &bytes)?;
        drop(bytes);
        let text = serde_json::to_string_pretty(&manifest)
            .map_err(|e| StoreError::at(&final_dir, format!("cannot encode the manifest: {e}")))?;
        write_atomic(&tmp.join(MANIFEST), text.as_bytes())?;
        sync_dir(&tmp);
        // Swap the whole directory into place: the old entry (inputs changed) goes first.
        if final_dir.exists() {
            let old = ckpt_dir.join(format!(
                "{TMP_PREFIX}{}-old-{}",
                std::process::id(),
                manifest.dataset.name
            ));
            std::fs::rename(&final_dir, &old).map_err(|e| io(&final_dir, "cannot replace", e))?;
            remove_any(&old)?;
        }
        std::fs::rename(&tmp, &final_dir)
            .map_err(|e| io(&final_dir, "cannot rename into place", e))?;
        sync_dir(&ckpt_dir);
        Ok(())
    }

    /// Every complete entry, as `(checkpoint, dataset)`, sorted.
    pub fn entries(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let rd = std::fs::read_dir(&self.root).map_err(|e| io(&self.root, "cannot list", e))?;
        for c in rd.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
            let cname = c.file_name().to_string_lossy().to_string();
            if cname.starts_with(TMP_PREFIX) {
                continue;
            }
            let Ok(rd2) = std::fs::read_dir(c.path()) else {
                continue;
            };
            for d in rd2.filter_map(|e| e.ok()) {
                let dname = d.file_name().to_string_lossy().to_string();
                if !dname.starts_with(TMP_PREFIX) && d.path().join(MANIFEST).is_file() {
                    out.push((cname.clone(), dname));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Reads an entry back.
    pub fn read(&self, checkpoint: &str, dataset: &str) -> Result<Entry> {
        let dir = self.entry_dir(checkpoint, dataset);
        let manifest = self.manifest(checkpoint, dataset)?.ok_or_else(|| {
            StoreError::at(
                &dir,
                "no such entry (no manifest.json); run `pretrace extract` for it",
            )
        })?;
        let path = dir.join(ACTIVATIONS);
        let file = std::fs::File::open(&path).map_err(|e| io(&path, "cannot read", e))?;
        // SAFETY: entries are written into a temporary directory and renamed into place, never
        // modified in place, so the mapped file does not change while it is read.
        let bytes =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io(&path, "cannot read", e))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| {
            StoreError::at(
                &path,
                format!("not a valid safetensors file ({e}); delete the entry to redo it"),
            )
        })?;
        let ints = |name: &str| -> Result<Vec<i64>> {
            let t = st
                .tensor(name)
                .map_err(|e| StoreError::at(&path, format!("tensor '{name}': {e}")))?;
            if t.dtype() != Dtype::I64 {
                return Err(StoreError::at(
                    &path,
                    format!("tensor '{name}' should be I64, found {:?}", t.dtype()),
                ));
            }
            Ok(t.data()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect())
        };
        let labels = ints("labels")?;
        let tokens = ints("tokens")?;
        let mut layers = BTreeMap::new();
        for &l in &manifest.extraction.layers {
            let name = format!("blocks.{l}.hook_resid_post");
            let t = st
                .tensor(&name)
                .map_err(|e| StoreError::at(&path, format!("tensor '{name}': {e}")))?;
            let shape = t.shape();
            if shape.len() != 2 || shape[0] != labels.len() {
                return Err(StoreError::at(
                    &path,
                    format!(
                        "tensor '{name}' has shape {shape:?}, expected [{}, d_model]",
                        labels.len()
                    ),
                ));
            }
            let data: Vec<f32> = match t.dtype() {
                Dtype::F32 => t
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Dtype::F16 => t
                    .data()
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                other => {
                    return Err(StoreError::at(
                        &path,
                        format!("tensor '{name}' should be F32 or F16, found {other:?}"),
                    ))
                }
            };
            layers.insert(
                l,
                Matrix {
                    rows: shape[0],
                    cols: shape[1],
                    data,
                },
            );
        }
        Ok(Entry {
            manifest,
            layers,
            labels,
            tokens,
        })
    }
}

/// Whether an entry on disk is whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryState {
    Whole,
    /// Truncated, missing or damaged, with what is wrong.
    Broken(String),
}

/// Tensor names and shapes from a safetensors header, reading only the header; an error says what
/// is wrong with it.
fn read_header(path: &Path, len: u64) -> std::result::Result<BTreeMap<String, Vec<usize>>, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot be read ({e})"))?;
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| "is shorter than a safetensors header".to_string())?;
    let n = u64::from_le_bytes(n);
    if n > 100_000_000 || n + 8 > len {
        return Err(format!(
            "has a header of {n} bytes in a file of {len}: it is truncated"
        ));
    }
    let mut h = vec![0u8; n as usize];
    f.read_exact(&mut h)
        .map_err(|_| "is truncated inside its header".to_string())?;
    let v: serde_json::Value =
        serde_json::from_slice(&h).map_err(|e| format!("has an unreadable header ({e})"))?;
    let obj = v
        .as_object()
        .ok_or("has a header that is not a JSON object")?;
    let mut out = BTreeMap::new();
    let mut end = 0u64;
    for (name, t) in obj.iter().filter(|(k, _)| k.as_str() != "__metadata__") {
        let shape: Vec<usize> = t
            .get("shape")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .ok_or_else(|| {
                format!(
                    "has no readable shape for tensor '{}'",
                    pretrace_core::shown(name, 80)
                )
            })?;
        let stop = t
            .get("data_offsets")
            .and_then(|o| o.get(1))
            .and_then(|o| o.as_u64())
            .ok_or_else(|| {
                format!(
                    "has no data offsets for tensor '{}'",
                    pretrace_core::shown(name, 80)
                )
            })?;
        end = end.max(stop);
        out.insert(name.clone(), shape);
    }
    let described = (8 + n).checked_add(end);
    if described != Some(len) {
        return Err(match described {
            Some(d) => {
                format!("is {len} bytes, its header describes {d}: it is truncated or padded")
            }
            None => format!("is {len} bytes, its header describes more than 2^64"),
        });
    }
    Ok(out)
}

fn check_marker(marker: &Path) -> Result<()> {
    let text = std::fs::read_to_string(marker).map_err(|e| io(marker, "cannot read", e))?;
    let m: Marker = serde_json::from_str(&text).map_err(|e| {
        StoreError::at(
            marker,
            format!("not a store marker ({e}); this directory was not written by pretrace extract"),
        )
    })?;
    if m.format != FORMAT_NAME {
        return Err(StoreError::at(
            marker,
            format!(
                "format '{}' is not '{FORMAT_NAME}'; choose another --out directory",
                m.format
            ),
        ));
    }
    if m.version != FORMAT_VERSION {
        return Err(StoreError::at(
            marker,
            format!(
                "store format {} (written by {}) is incompatible with this pretrace, which reads format {FORMAT_VERSION}; use a new --out directory or the pretrace that wrote it",
                m.version, m.tool
            ),
        ));
    }
    Ok(())
}

fn remove_any(p: &Path) -> Result<()> {
    let r = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else if p.exists() {
        std::fs::remove_file(p)
    } else {
        Ok(())
    };
    r.map_err(|e| io(p, "cannot remove", e))
}
