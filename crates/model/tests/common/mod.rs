//! Helpers shared by the model tests: fixture paths, reference files, error measures.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use pretrace_model::{Checkpoint, LoadOptions, Model};
use std::collections::HashMap;
use std::path::PathBuf;

pub fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

pub fn load(name: &str) -> Checkpoint {
    Model::load(&golden(name), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

pub fn reference(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(golden(name).join("ref.safetensors"), &Device::Cpu)
        .expect("ref.safetensors")
}

pub fn texts() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(golden("texts.json")).expect("texts.json"))
        .expect("texts.json is JSON")
}

pub fn ids(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|x| x as u32)
        .collect()
}

/// ‖a − b‖ / ‖b‖.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let num = (&a - &b)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
        .sqrt();
    let den = b
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
        .sqrt();
    num / den.max(1e-30)
}

/// max |a − b|.
pub fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let d = (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap()).unwrap();
    d.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

pub fn log_softmax(t: &Tensor) -> Tensor {
    candle_nn::ops::log_softmax(&t.to_dtype(DType::F64).unwrap(), candle_core::D::Minus1).unwrap()
}

pub fn bits(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

pub const TINY: &[&str] = &[
    "llama_gqa",
    "llama_tied_bias",
    "llama_bf16",
    "qwen2",
    "mistral_window",
    "neox_parallel",
    "neox_sequential",
    "olmo_clip",
    "olmo2",
    "gpt2",
];
