//! The RoBERTa classifier's logits equal transformers' on a tiny random checkpoint
//! (tests/golden/roberta.py), from tokenizer.json and from vocab.json + merges.txt alone.

use candle_core::Device;
use pretrace_eval::roberta::Classifier;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/roberta")
}

fn check(clf: &Classifier) {
    let r = candle_core::safetensors::load(dir().join("ref.safetensors"), &Device::Cpu).unwrap();
    let texts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("texts.json")).unwrap()).unwrap();
    for (k, text) in texts["texts"].as_array().unwrap().iter().enumerate() {
        let text = text.as_str().unwrap();
        let want_ids: Vec<u32> = r[&format!("{k}.input_ids")]
            .to_vec1::<i64>()
            .unwrap()
            .into_iter()
            .map(|x| x as u32)
            .collect();
        assert_eq!(
            clf.tokenizer.encode(text).unwrap(),
            want_ids,
            "text {k}: ids"
        );
        let got = clf.logits(text).unwrap();
        let want: Vec<f32> = r[&format!("{k}.logits")].to_vec1().unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-4, "text {k}: logits {got:?} vs {want:?}");
        }
        let label = &clf.labels[if got[1] > got[0] { 1 } else { 0 }];
        assert_eq!(
            label,
            texts["pipeline_labels"][k].as_str().unwrap(),
            "text {k}: label"
        );
    }
}

#[test]
fn logits_equal_transformers() {
    check(&Classifier::load(&dir()).unwrap());
}

#[test]
fn vocab_and_merges_alone_give_the_same_tokenizer() {
    let tmp = std::env::temp_dir().join(format!("pretrace-roberta-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "vocab.json",
        "merges.txt",
    ] {
        std::fs::copy(dir().join(f), tmp.join(f)).unwrap();
    }
    check(&Classifier::load(&tmp).unwrap());
    std::fs::remove_file(tmp.join("merges.txt")).unwrap();
    let e = Classifier::load(&tmp).err().unwrap().to_string();
    assert!(e.contains("merges.txt"), "{e}");
}

#[test]
fn a_decoder_checkpoint_is_refused() {
    let llama = dir().join("../llama_gqa");
    let e = Classifier::load(&llama).err().unwrap().to_string();
    assert!(
        e.contains("model_type 'llama'") && e.contains("roberta"),
        "{e}"
    );
}
