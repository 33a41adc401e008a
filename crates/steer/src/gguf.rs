//! llama.cpp control vectors: the GGUF file `llama-cli --control-vector` reads.
//!
//! llama.cpp's loader (`common_control_vector_load_one`) takes F32 1-D tensors named `direction.{l}`
//! and adds `direction.{l}` to the output of block `l` (0-based; its `l_out`), at every position,
//! times the strength given on its command line. That is pretrace's `blocks.{l}.hook_resid_post` with
//! `--steer-positions all`. It rejects `l = 0`, so block 0's output cannot be exported. The metadata
//! is what its `cvector-generator` writes: `general.architecture = controlvector`,
//! `controlvector.model_hint` (the model's llama.cpp architecture) and `controlvector.layer_count`
//! (INT32, the number of directions).

use crate::SteerError;
use std::collections::BTreeMap;

const ALIGN: usize = 32;

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(ALIGN) {
        out.push(0);
    }
}

/// llama.cpp's architecture name for a Hugging Face `model_type`, for `controlvector.model_hint`.
pub fn llama_cpp_arch(model_type: &str) -> &str {
    match model_type {
        "mistral" => "llama",
        "gpt_neox" => "gptneox",
        other => other,
    }
}

/// The bytes of a control vector holding `alpha · v` for each `(layer, v)` of `vectors`.
pub fn control_vector(
    vectors: &BTreeMap<usize, Vec<f32>>,
    alpha: f32,
    model_hint: &str,
) -> Result<Vec<u8>, SteerError> {
    if vectors.is_empty() {
        return Err(SteerError::Invalid("no vectors to export".into()));
    }
    if vectors.contains_key(&0) {
        return Err(SteerError::Invalid(
            "layer 0: llama.cpp control vectors cannot steer block 0's output (its loader rejects \
             direction.0); choose layers from 1 with --layers"
                .into(),
        ));
    }
    let max = vectors
        .values()
        .flatten()
        .fold(0f64, |m, &x| m.max((x as f64).abs()));
    if !alpha.is_finite() || alpha.abs() as f64 * max > f32::MAX as f64 {
        return Err(SteerError::Invalid(format!(
            "alpha {alpha} is not usable: α·v must be a finite f32 (the vectors' largest entry is {max:e}); give a finite alpha of moderate size"
        )));
    }
    let d = vectors.values().next().map_or(0, Vec::len);
    if let Some((l, v)) = vectors.iter().find(|(_, v)| v.len() != d) {
        return Err(SteerError::Invalid(format!(
            "layer {l}: {} values, other layers have {d}; llama.cpp needs one width",
            v.len()
        )));
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(vectors.len() as u64).to_le_bytes());
    out.extend_from_slice(&3u64.to_le_bytes());
    const STRING: u32 = 8;
    const INT32: u32 = 5;
    string(&mut out, "general.architecture");
    out.extend_from_slice(&STRING.to_le_bytes());
    string(&mut out, "controlvector");
    string(&mut out, "controlvector.model_hint");
    out.extend_from_slice(&STRING.to_le_bytes());
    string(&mut out, model_hint);
    string(&mut out, "controlvector.layer_count");
    out.extend_from_slice(&INT32.to_le_bytes());
    out.extend_from_slice(&(vectors.len() as i32).to_le_bytes());
    let nbytes = (d * 4).div_ceil(ALIGN) * ALIGN;
    for (i, l) in vectors.keys().enumerate() {
        string(&mut out, &format!("direction.{l}"));
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(d as u64).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // GGML_TYPE_F32
        out.extend_from_slice(&((i * nbytes) as u64).to_le_bytes());
    }
    pad(&mut out);
    for v in vectors.values() {
        for &x in v {
            out.extend_from_slice(&(x * alpha).to_le_bytes());
        }
        pad(&mut out);
    }
    Ok(out)
}
