//! The `pretrace` binary: the forward/generate/info interface and one-line errors on bad input.

use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};
use std::process::Command;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

fn pretrace(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pretrace"))
        .args(args)
        .output()
        .expect("run pretrace");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pretrace-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A copy of the llama_gqa fixture's top-level files.
fn fixture_copy(name: &str) -> PathBuf {
    let d = scratch(name);
    for e in std::fs::read_dir(golden("llama_gqa")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && p.file_name().unwrap() != "ref.safetensors" {
            std::fs::copy(&p, d.join(p.file_name().unwrap())).unwrap();
        }
    }
    d
}

/// Runs a command expected to fail; returns its single error line.
fn fails(args: &[&str]) -> String {
    let (ok, _, err) = pretrace(args);
    assert!(!ok, "expected failure for {args:?}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let err = err.trim_end();
    assert_eq!(err.lines().count(), 1, "error is not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err.to_string()
}

fn info_err(dir: &Path) -> String {
    fails(&["info", "--model", dir.to_str().unwrap()])
}

#[test]
fn forward_writes_the_documented_tensors() {
    let d = scratch("forward");
    let out = d.join("out.safetensors");
    let text = "Q: What is the capital of France?\tA: Paris is the capital.";
    let (ok, _, err) = pretrace(&[
        "forward",
        "--model",
        golden("llama_gqa").to_str().unwrap(),
        "--text",
        text,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let got = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    let r =
        candle_core::safetensors::load(golden("llama_gqa").join("ref.safetensors"), &Device::Cpu)
            .unwrap();
    assert_eq!(got["input_ids"].dtype(), DType::I64);
    assert_eq!(
        got["input_ids"].to_vec1::<i64>().unwrap(),
        r["0.input_ids"].to_vec1::<i64>().unwrap()
    );
    for l in 0..3 {
        let a = &got[&format!("blocks.{l}.hook_resid_post")];
        let b = &r[&format!("0.blocks.{l}.hook_resid_post")];
        assert_eq!(a.dtype(), DType::F32);
        let e = ((a - b)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            / b.sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap())
        .sqrt();
        assert!(e < 1e-4, "layer {l}: {e}");
    }
    assert_eq!(got["logits"].dims(), r["0.logits"].dims());
    assert!(
        !d.read_dir()
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp")),
        "temporary file left behind"
    );
    // --ids gives the same as --text.
    let ids: Vec<String> = got["input_ids"]
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|i| i.to_string())
        .collect();
    let out2 = d.join("ids.safetensors");
    let (ok, _, err) = pretrace(&[
        "forward",
        "--model",
        golden("llama_gqa").to_str().unwrap(),
        "--ids",
        &ids.join(","),
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let got2 = candle_core::safetensors::load(&out2, &Device::Cpu).unwrap();
    assert_eq!(
        got2["logits"].to_vec2::<f32>().unwrap(),
        got["logits"].to_vec2::<f32>().unwrap()
    );
}

#[test]
fn generate_json_and_info() {
    let m = golden("llama_gqa");
    let (ok, out, err) = pretrace(&[
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--text",
        "Paris is",
        "--max-new-tokens",
        "5",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        v["ids"]
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.len() <= 5),
        "{v}"
    );
    assert!(v["text"].is_string());
    let (ok, out, err) = pretrace(&["info", "--model", m.to_str().unwrap()]);
    assert!(ok, "{err}");
    for want in [
        "architecture: llama",
        "layers:       3",
        "d_model:      32",
        "kv heads:     2",
        "vocab:        300",
        "tokenizer:    BPE",
    ] {
        assert!(out.contains(want), "info lacks {want:?}:\n{out}");
    }
}

#[test]
fn nonexistent_path() {
    let e = fails(&["info", "--model", "/nonexistent/model"]);
    assert!(
        e.contains("/nonexistent/model") && e.contains("no such file"),
        "{e}"
    );
}

#[test]
fn missing_config() {
    let d = fixture_copy("noconfig");
    std::fs::remove_file(d.join("config.json")).unwrap();
    let e = info_err(&d);
    assert!(e.contains("config.json") && e.contains("missing"), "{e}");
}

#[test]
fn malformed_config() {
    let d = fixture_copy("badjson");
    std::fs::write(d.join("config.json"), "{\"model_type\": \"llama\", ").unwrap();
    let e = info_err(&d);
    assert!(
        e.contains("config.json") && e.contains("not valid JSON"),
        "{e}"
    );
    std::fs::write(d.join("config.json"), "{\"model_type\": \"llama\"}").unwrap();
    let e = info_err(&d);
    assert!(
        e.contains("config.json") && e.contains("hidden_size"),
        "{e}"
    );
}

#[test]
fn unknown_model_type_lists_supported() {
    let d = fixture_copy("mamba");
    let cfg = std::fs::read_to_string(d.join("config.json"))
        .unwrap()
        .replace("\"llama\"", "\"mamba\"");
    std::fs::write(d.join("config.json"), cfg).unwrap();
    let e = info_err(&d);
    assert!(
        e.contains("'mamba' is not supported")
            && e.contains("llama, mistral, qwen2, gpt_neox, olmo, olmo2, gpt2"),
        "{e}"
    );
}

fn rewrite_weights(d: &Path, f: impl FnOnce(&mut std::collections::HashMap<String, Tensor>)) {
    let p = d.join("model.safetensors");
    let mut w = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    f(&mut w);
    candle_core::safetensors::save(&w, &p).unwrap();
}

#[test]
fn missing_tensor_is_named() {
    let d = fixture_copy("missing");
    rewrite_weights(&d, |w| {
        w.remove("model.layers.1.mlp.up_proj.weight");
    });
    let e = info_err(&d);
    assert!(
        e.contains("'model.layers.1.mlp.up_proj.weight' is missing") && e.contains("[64, 32]"),
        "{e}"
    );
}

#[test]
fn wrong_shape_is_named_with_both_shapes() {
    let d = fixture_copy("shape");
    rewrite_weights(&d, |w| {
        w.insert(
            "model.layers.0.self_attn.o_proj.weight".into(),
            Tensor::zeros((32, 16), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let e = info_err(&d);
    assert!(
        e.contains("model.layers.0.self_attn.o_proj.weight")
            && e.contains("[32, 16]")
            && e.contains("expected [32, 32]"),
        "{e}"
    );
}

#[test]
fn unused_tensor_is_an_error() {
    let d = fixture_copy("extra");
    rewrite_weights(&d, |w| {
        w.insert(
            "model.layers.7.surprise.weight".into(),
            Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let e = info_err(&d);
    assert!(
        e.contains("model.layers.7.surprise.weight") && e.contains("not used"),
        "{e}"
    );
}

#[test]
fn truncated_safetensors() {
    let d = fixture_copy("truncated");
    let p = d.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = info_err(&d);
    assert!(
        e.contains("model.safetensors") && e.contains("truncated"),
        "{e}"
    );
}

#[test]
fn tokenizer_that_does_not_fit_the_model() {
    let d = fixture_copy("tokenizer");
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("tokenizer.json")).unwrap()).unwrap();
    let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
    for i in 0..200 {
        vocab.insert(format!("zz{i}"), serde_json::json!(300 + i));
    }
    std::fs::write(d.join("tokenizer.json"), tok.to_string()).unwrap();
    let e = info_err(&d);
    assert!(
        e.contains("tokenizer.json") && e.contains("300 rows"),
        "{e}"
    );
}

#[test]
fn gguf_of_an_unsupported_architecture() {
    use candle_core::quantized::{gguf_file, QTensor};
    let d = scratch("gguf");
    let p = d.join("mamba.gguf");
    let mut f = std::fs::File::create(&p).unwrap();
    let arch = gguf_file::Value::String("mamba".into());
    let t = QTensor::quantize(
        &Tensor::zeros((2, 32), DType::F32, &Device::Cpu).unwrap(),
        candle_core::quantized::GgmlDType::F32,
    )
    .unwrap();
    gguf_file::write(
        &mut f,
        &[("general.architecture", &arch)],
        &[("token_embd.weight", &t)],
    )
    .unwrap();
    drop(f);
    let e = fails(&["info", "--model", p.to_str().unwrap()]);
    assert!(
        e.contains("mamba.gguf") && e.contains("'mamba' is not supported") && e.contains("llama"),
        "{e}"
    );
}

#[test]
fn devices_are_chosen_by_name_and_refused_in_one_line() {
    let model = golden("llama_gqa");
    let m = model.to_str().unwrap();
    let d = scratch("device");
    let out = d.join("f.safetensors");
    let o = out.to_str().unwrap();
    // The CPU by name is the default's result, recorded in the file.
    let (ok, _, err) = pretrace(&[
        "forward", "--model", m, "--ids", "1,2,3", "--out", o, "--device", "CPU",
    ]);
    assert!(ok, "{err}");
    let bytes = std::fs::read(&out).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta.get("device").map(String::as_str), Some("cpu"));
    assert_eq!(meta.get("dtype").map(String::as_str), Some("f32"));
    // A name that is no device, on every command that runs a model.
    for args in [
        vec!["forward", "--model", m, "--ids", "1", "--out", o],
        vec!["generate", "--model", m, "--text", "a"],
        vec!["info", "--model", m],
        vec!["extract", "--checkpoints", m, "--data", "x.csv", "--out", o],
    ] {
        let mut a = args.clone();
        a.extend(["--device", "tpu:0"]);
        let e = fails(&a);
        assert!(
            e.contains("device 'tpu:0'") && e.contains("give cpu, cuda or cuda:N"),
            "{a:?}: {e}"
        );
    }
    // A GPU: this build (without the cuda feature) says so; a cuda build on a machine without
    // one names the device it could not open.
    let e = fails(&[
        "forward", "--model", m, "--ids", "1", "--out", o, "--device", "cuda:1",
    ]);
    assert!(e.starts_with("error: cuda:1: "), "{e}");
    if cfg!(feature = "cuda") {
        assert!(e.contains("no usable NVIDIA GPU"), "{e}");
    } else {
        assert!(
            e.contains("built without CUDA") && e.contains("--features cuda"),
            "{e}"
        );
    }
    // Nothing was written by the refused runs beyond the first file.
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    std::fs::remove_dir_all(&d).unwrap();
}
