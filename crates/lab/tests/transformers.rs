//! A checkpoint `pretrace lab pretrain` wrote, run by pretrace, against transformers'
//! `LlamaForCausalLM` on the same files (`tests/golden/lab.py` wrote the fixture and records the
//! comparison on every checkpoint of its run in `tests/golden/lab/transformers.txt`).

use candle_core::{Device, Tensor};
use pretrace_model::{Batch, LoadOptions, Logits, Model};
use std::path::PathBuf;

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/lab")
}

#[test]
fn a_lab_checkpoint_gives_transformers_logits() {
    let ckpt = Model::load(&golden().join("step20"), &LoadOptions::default()).unwrap();
    let tok = ckpt
        .tokenizer
        .as_ref()
        .expect("the checkpoint has tokenizer.json");
    let hf = candle_core::safetensors::load(golden().join("hf.safetensors"), &Device::Cpu).unwrap();
    let texts: Vec<String> = {
        let file = std::fs::read(golden().join("hf.safetensors")).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&file).unwrap();
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["texts"]).unwrap()
    };
    assert_eq!(texts.len(), 3);
    for (i, text) in texts.iter().enumerate() {
        let ids = tok.encode(text).unwrap();
        let want_ids: Vec<i64> = hf[&format!("ids.{i}")].to_vec1().unwrap();
        assert_eq!(
            ids.iter().map(|&x| x as i64).collect::<Vec<_>>(),
            want_ids,
            "ids of {text:?}"
        );
        let logits = ckpt
            .model
            .forward(&Batch::single(&ids).unwrap(), &mut [], Logits::All, None)
            .unwrap()
            .unwrap()
            .squeeze(0)
            .unwrap();
        let want: &Tensor = &hf[&format!("logits.{i}")];
        let diff: f32 = (logits - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-4, "text {i}: max |Δ logit| {diff}");
    }
}
