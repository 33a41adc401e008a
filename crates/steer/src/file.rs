//! Reading steering-vector files: pretrace's own (with provenance) or any safetensors file of 1-D
//! float tensors made elsewhere (e.g. with NumPy), which is accepted with a warning.

use crate::SteerError;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The metadata `format` value of files `pretrace steer build` writes.
pub const FORMAT: &str = "pretrace-steering-vector";

/// A steering-vector file.
#[derive(Debug, Clone)]
pub struct VectorFile {
    pub path: PathBuf,
    /// Vectors of tensors named `blocks.{l}.hook_resid_post`, by layer.
    pub layers: BTreeMap<usize, Vec<f32>>,
    /// A file's only tensor when it has another name: it applies at whatever layer is asked for.
    pub unnamed: Option<(String, Vec<f32>)>,
    /// The provenance metadata, when the file is pretrace's own.
    pub provenance: Option<BTreeMap<String, String>>,
    /// What the user should know about the file (printed by the CLI).
    pub warnings: Vec<String>,
}

fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blocks.")?
        .strip_suffix(".hook_resid_post")?
        .parse()
        .ok()
}

fn to_f32(
    path: &Path,
    name: &str,
    t: &safetensors::tensor::TensorView,
) -> Result<Vec<f32>, SteerError> {
    let name = &pretrace_core::shown(name, 80);
    let b = t.data();
    let v: Vec<f32> = match t.dtype() {
        Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(SteerError::Invalid(format!(
                "{}: tensor '{name}' has dtype {other:?}; a steering vector must be F32, F64, F16 or BF16",
                path.display()
            )))
        }
    };
    if t.shape().len() != 1 {
        return Err(SteerError::Invalid(format!(
            "{}: tensor '{name}' has shape {:?}; a steering vector is 1-D [d_model]",
            path.display(),
            t.shape()
        )));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(SteerError::Invalid(format!(
            "{}: tensor '{name}' holds a non-finite value at index {i}",
            path.display()
        )));
    }
    Ok(v)
}

impl VectorFile {
    /// Reads a safetensors file of steering vectors.
    pub fn read(path: &Path) -> Result<VectorFile, SteerError> {
        let bytes = std::fs::read(path).map_err(|e| {
            SteerError::Invalid(format!(
                "{}: cannot read the steering vector file: {e}",
                path.display()
            ))
        })?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| {
            SteerError::Invalid(format!(
                "{}: not a safetensors file ({e}); give the .safetensors file `pretrace steer build` wrote",
                path.display()
            ))
        })?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| {
            SteerError::Invalid(format!(
                "{}: unreadable safetensors header: {e}",
                path.display()
            ))
        })?;
        let meta: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        names.sort();
        if names.is_empty() {
            return Err(SteerError::Invalid(format!(
                "{}: the file holds no tensors",
                path.display()
            )));
        }
        let mut layers = BTreeMap::new();
        let mut unnamed = None;
        for name in &names {
            let t = st.tensor(name).map_err(|e| {
                SteerError::Invalid(format!(
                    "{}: tensor '{}': {e}",
                    path.display(),
                    pretrace_core::shown(name, 80)
                ))
            })?;
            let v = to_f32(path, name, &t)?;
            match layer_of(name) {
                Some(l) => {
                    layers.insert(l, v);
                }
                None if names.len() == 1 => unnamed = Some((pretrace_core::shown(name, 80), v)),
                None => {
                    let listed: Vec<String> = names
                        .iter()
                        .take(8)
                        .map(|n| pretrace_core::shown(n, 60))
                        .collect();
                    return Err(SteerError::Invalid(format!(
                        "{}: tensor '{}' is not named blocks.{{layer}}.hook_resid_post; a file with several \
                         tensors must name each by its layer (it holds {} tensors: {}{})",
                        path.display(),
                        pretrace_core::shown(name, 80),
                        names.len(),
                        listed.join(", "),
                        if names.len() > 8 { ", …" } else { "" }
                    )));
                }
            }
        }
        let mut warnings = Vec::new();
        let provenance = if meta.get("format").map(String::as_str) == Some(FORMAT) {
            Some(meta)
        } else {
            warnings.push(format!(
                "{}: no pretrace provenance metadata (a vector made elsewhere?): its source model, \
                 architecture and layer cannot be checked, only its width",
                path.display()
            ));
            None
        };
        Ok(VectorFile {
            path: path.to_path_buf(),
            layers,
            unnamed,
            provenance,
            warnings,
        })
    }

    /// The vector for `layer` of a model with `n_layers` layers of width `d_model` and architecture
    /// `arch`, after checking that it fits: the layer is in range and in the file, the width equals
    /// `d_model`, and a pretrace file was built on the same architecture and width.
    pub fn vector_for(
        &self,
        layer: usize,
        arch: &str,
        d_model: usize,
        n_layers: usize,
    ) -> Result<&[f32], SteerError> {
        let p = self.path.display();
        if layer >= n_layers {
            return Err(SteerError::Invalid(format!(
                "steering layer {layer} is out of range: the model has {n_layers} layers (0..={})",
                n_layers.saturating_sub(1)
            )));
        }
        if let Some(meta) = &self.provenance {
            if let Some(a) = meta.get("architecture").filter(|a| !a.is_empty()) {
                if a != arch {
                    return Err(SteerError::Invalid(format!(
                        "{p}: the vector was built on a '{a}' model ({}); this model is '{arch}': build one \
                         from a store of this architecture",
                        meta.get("source_model").map_or("", String::as_str)
                    )));
                }
            }
            if let Some(d) = meta.get("d_model").and_then(|d| d.parse::<usize>().ok()) {
                if d != d_model {
                    return Err(SteerError::Invalid(format!(
                        "{p}: the vector was built on a model of width {d}; this model's d_model is {d_model}"
                    )));
                }
            }
        }
        let (name, v) = match (self.layers.get(&layer), &self.unnamed) {
            (Some(v), _) => (format!("blocks.{layer}.hook_resid_post"), v.as_slice()),
            (None, Some((n, v))) => (n.clone(), v.as_slice()),
            (None, None) => {
                return Err(SteerError::Invalid(format!(
                    "{p}: no vector for layer {layer} (tensor blocks.{layer}.hook_resid_post); the file holds \
                     layers {:?}: choose one with --steer-layer",
                    self.layers.keys().collect::<Vec<_>>()
                )))
            }
        };
        if v.len() != d_model {
            return Err(SteerError::Invalid(format!(
                "{p}: tensor '{name}' has {} values; the model's d_model is {d_model}: build the vector from \
                 a store of this model",
                v.len()
            )));
        }
        Ok(v)
    }

    /// The layer to steer when none is given: the file's only one.
    pub fn default_layer(&self) -> Option<usize> {
        (self.layers.len() == 1 && self.unnamed.is_none())
            .then(|| *self.layers.keys().next().unwrap_or(&0))
    }
}
