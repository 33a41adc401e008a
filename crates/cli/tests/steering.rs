//! `--steer` in `forward` and `generate`: the same numbers as transformers with a forward hook
//! (tests/golden/steering.py), vector files with and without provenance, and bad vectors.

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod run;
use run::{fails, golden, ok, s};

fn scratch(name: &str) -> PathBuf {
    run::scratch("steering", name)
}

fn f32s(st: &SafeTensors, name: &str) -> Vec<f32> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn write_vector(path: &Path, name: &str, v: &[f32], meta: Option<HashMap<String, String>>) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, vec![v.len()], &bytes).unwrap();
    std::fs::write(
        path,
        safetensors::serialize(vec![(name, view)], meta).unwrap(),
    )
    .unwrap();
}

fn texts() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(golden("texts.json")).unwrap()).unwrap()
}

struct Ref {
    bytes: Vec<u8>,
}
impl Ref {
    fn load(fixture: &str) -> Ref {
        Ref {
            bytes: std::fs::read(golden(fixture).join("steer.safetensors")).unwrap(),
        }
    }
    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap()
    }
}

fn provenance(arch: &str, d: usize) -> HashMap<String, String> {
    HashMap::from([
        ("format".to_string(), "pretrace-steering-vector".to_string()),
        ("architecture".to_string(), arch.to_string()),
        ("d_model".to_string(), d.to_string()),
    ])
}

#[test]
fn forward_with_a_vector_made_elsewhere_equals_transformers() {
    let dir = scratch("forward");
    let r = Ref::load("llama_gqa");
    let v = f32s(&r.st(), "vector");
    let vec_path = dir.join("numpy.safetensors");
    write_vector(&vec_path, "direction", &v, None);
    let model = golden("llama_gqa");
    for pos in ["all", "last"] {
        let out = dir.join(format!("{pos}.safetensors"));
        let err = ok(&[
            "forward",
            "--model",
            s(&model),
            "--text",
            &texts()[0],
            "--out",
            s(&out),
            "--steer",
            s(&vec_path),
            "--steer-layer",
            "1",
            "--alpha",
            "1.5",
            "--steer-positions",
            pos,
        ]);
        assert!(err.contains("no pretrace provenance"), "{err}");
        assert!(err.contains("steering: |alpha·v|"), "{err}");
        let bytes = std::fs::read(&out).unwrap();
        let got = f32s(&SafeTensors::deserialize(&bytes).unwrap(), "logits");
        let want = f32s(&r.st(), &format!("{pos}.logits"));
        assert_eq!(got.len(), want.len());
        let e = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(e < 1e-3, "{pos}: logits differ by {e}");
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let steering = &meta.metadata().as_ref().unwrap()["steering"];
        assert!(steering.contains("\"alpha\":1.5"), "{steering}");
    }
}

#[test]
fn generate_steered_with_and_without_cache_equals_transformers() {
    let dir = scratch("generate");
    let r = Ref::load("llama_gqa");
    let st = r.st();
    let v = f32s(&st, "vector");
    let vec_path = dir.join("v.safetensors");
    write_vector(
        &vec_path,
        "blocks.1.hook_resid_post",
        &v,
        Some(provenance("llama", v.len())),
    );
    // The reference batch is left-padded; its longest row has no padding, so it equals a run alone.
    let model = golden("llama_gqa");
    let cfg = pretrace_model::Model::load(&model, &Default::default()).unwrap();
    let tok = cfg.tokenizer.as_ref().unwrap();
    let lens: Vec<usize> = texts()
        .iter()
        .map(|t| tok.encode(t).unwrap().len())
        .collect();
    let row = (0..lens.len()).max_by_key(|&i| lens[i]).unwrap();
    let text = texts()[row].clone();
    for (flag, key) in [(None, "cache"), (Some("--no-cache"), "nocache")] {
        let mut args = vec![
            "generate",
            "--model",
            s(&model),
            "--text",
            &text,
            "--max-new-tokens",
            "8",
            "--json",
            "--steer",
            s(&vec_path),
            "--alpha",
            "1.5",
        ];
        args.extend(flag);
        let out = std::process::Command::new(run::bin())
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let got: Vec<i64> = j["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        let all: Vec<i64> = st
            .tensor(&format!("last.{key}.greedy"))
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let want = &all[row * 8..row * 8 + 8];
        // The CLI stops at the end-of-sequence id (1), which the reference did not.
        let stop = want.iter().position(|&t| t == 1).map_or(8, |p| p + 1);
        assert_eq!(got, want[..stop], "{key}");
        assert_eq!(j["steering"]["layer"], 1);
        assert_eq!(j["steering"]["positions"], "last");
    }
}

#[test]
fn bad_vectors_are_refused_with_one_line() {
    let dir = scratch("bad");
    let model = golden("llama_gqa");
    let base = |vec: &Path, extra: &[&str]| -> String {
        let mut args = vec![
            "generate",
            "--model",
            s(&model),
            "--text",
            "hello",
            "--steer",
            s(vec),
        ];
        args.extend_from_slice(extra);
        fails(&args)
    };
    let narrow = dir.join("narrow.safetensors");
    write_vector(&narrow, "blocks.1.hook_resid_post", &[0.5; 16], None);
    let e = base(&narrow, &[]);
    assert!(
        e.contains("16 values") && e.contains("d_model is 32"),
        "{e}"
    );

    let ok_vec = dir.join("ok.safetensors");
    write_vector(
        &ok_vec,
        "blocks.1.hook_resid_post",
        &[0.5; 32],
        Some(provenance("llama", 32)),
    );
    let e = base(&ok_vec, &["--steer-layer", "7"]);
    assert!(e.contains("out of range") && e.contains("3 layers"), "{e}");
    let e = base(&ok_vec, &["--steer-layer", "0"]);
    assert!(
        e.contains("no vector for layer 0") && e.contains("[1]"),
        "{e}"
    );

    let neox = dir.join("neox.safetensors");
    write_vector(
        &neox,
        "blocks.1.hook_resid_post",
        &[0.5; 32],
        Some(provenance("gpt_neox", 32)),
    );
    let e = base(&neox, &[]);
    assert!(e.contains("'gpt_neox'") && e.contains("'llama'"), "{e}");

    let wide = dir.join("wide.safetensors");
    write_vector(
        &wide,
        "blocks.1.hook_resid_post",
        &[0.5; 32],
        Some(provenance("llama", 64)),
    );
    let e = base(&wide, &[]);
    assert!(e.contains("width 64"), "{e}");

    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a tensor file").unwrap();
    let e = base(&junk, &[]);
    assert!(e.contains("not a safetensors file"), "{e}");

    let e = base(&dir.join("missing.safetensors"), &[]);
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn a_huge_vector_is_reported() {
    let dir = scratch("huge");
    let vec_path = dir.join("v.safetensors");
    write_vector(
        &vec_path,
        "blocks.1.hook_resid_post",
        &[100.0; 32],
        Some(provenance("llama", 32)),
    );
    let err = ok(&[
        "generate",
        "--model",
        s(&golden("llama_gqa")),
        "--text",
        "hello",
        "--max-new-tokens",
        "2",
        "--steer",
        s(&vec_path),
    ]);
    assert!(
        err.contains("warning: steering") && err.contains("dominates"),
        "{err}"
    );
}

/// `pretrace steer export --format gguf --vector VEC --out OUT EXTRA…`.
fn export_args<'a>(vec: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "steer",
        "export",
        "--format",
        "gguf",
        "--vector",
        s(vec),
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn gguf_export_equals_gguf_py_control_vector() {
    let dir = scratch("gguf");
    let out = dir.join("v.gguf");
    let vectors = golden("cvec/vectors.safetensors");
    let err = ok(&export_args(&vectors, &out, &["--alpha", "2.5"]));
    assert!(err.contains("model_hint llama"), "{err}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(golden("cvec/ref.gguf")).unwrap(),
        "differs from gguf-py's GGUFWriter output (tests/golden/cvec.py)"
    );
    let e = fails(&export_args(&vectors, &out, &["--layers", "0"]));
    assert!(e.contains("no vector for layer 0"), "{e}");
    let v0 = dir.join("v0.safetensors");
    write_vector(&v0, "blocks.0.hook_resid_post", &[1.0; 8], None);
    let e = fails(&export_args(&v0, &out, &["--model-hint", "llama"]));
    assert!(e.contains("cannot steer block 0"), "{e}");
    let e = fails(&export_args(&v0, &out, &[]));
    assert!(e.contains("--model-hint"), "{e}");
}
