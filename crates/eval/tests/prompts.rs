//! Prompt strings and gold answers equal what lm-evaluation-harness 0.4.9 builds from its task
//! files for the same documents (tests/golden/eval.py: real ARC and MMLU rows, crafted rows with
//! the edge cases of RACE, MathQA, TruthfulQA and lambada).

use pretrace_data::Table;
use pretrace_eval::tasks::{lambada_items, mc_items, Gold, Task, TARGET_DELIMITER};
use std::path::PathBuf;

fn golden(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/eval")
        .join(p)
}

fn prompts() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(golden("prompts.json")).unwrap()).unwrap()
}

fn docs(name: &str) -> Table {
    Table::read(&golden(&format!("docs/{name}.jsonl"))).unwrap()
}

fn check(key: &str, task: Task, table: &Table, dev: Option<&Table>, shots: usize) {
    let want = prompts()[key].as_array().unwrap().clone();
    let items = mc_items(task, table, dev, shots).unwrap();
    assert_eq!(items.len(), want.len(), "{key}: item count");
    for (i, (it, w)) in items.iter().zip(&want).enumerate() {
        let reqs = w["requests"].as_array().unwrap();
        assert_eq!(reqs.len(), it.choices.len(), "{key} item {i}: choice count");
        for (c, r) in it.choices.iter().zip(reqs) {
            assert_eq!(
                it.context,
                r[0].as_str().unwrap(),
                "{key} item {i}: context"
            );
            assert_eq!(
                format!("{TARGET_DELIMITER}{c}"),
                r[1].as_str().unwrap(),
                "{key} item {i}: continuation"
            );
        }
        match &it.gold {
            Gold::Index(g) => assert_eq!(
                *g as u64,
                w["gold"].as_u64().unwrap(),
                "{key} item {i}: gold"
            ),
            Gold::Labels(l) => {
                let want: Vec<u8> = w["gold"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u8)
                    .collect();
                assert_eq!(l, &want, "{key} item {i}: labels");
            }
        }
    }
}

#[test]
fn multiple_choice_prompts_equal_lm_evaluation_harness() {
    check("arc_easy", Task::ArcEasy, &docs("arc_easy"), None, 0);
    check(
        "arc_challenge",
        Task::ArcChallenge,
        &docs("arc_challenge"),
        None,
        0,
    );
    check("mmlu", Task::Mmlu, &docs("mmlu"), None, 0);
    check(
        "mmlu_5shot",
        Task::Mmlu,
        &docs("mmlu"),
        Some(&docs("mmlu_dev")),
        5,
    );
    check("race", Task::Race, &docs("race"), None, 0);
    check("mathqa", Task::Mathqa, &docs("mathqa"), None, 0);
    check(
        "truthfulqa_mc1",
        Task::TruthfulqaMc1,
        &docs("truthfulqa"),
        None,
        0,
    );
    check(
        "truthfulqa_mc2",
        Task::TruthfulqaMc2,
        &docs("truthfulqa"),
        None,
        0,
    );
}

#[test]
fn lambada_requests_equal_lm_evaluation_harness() {
    let want = prompts()["lambada"].as_array().unwrap().clone();
    let items = lambada_items(&docs("lambada")).unwrap();
    assert_eq!(items.len(), want.len());
    for (it, w) in items.iter().zip(&want) {
        let r = &w["requests"][0];
        assert_eq!(it.context, r[0].as_str().unwrap());
        assert_eq!(it.continuation, r[1].as_str().unwrap());
    }
}

#[test]
fn wrong_schema_is_an_error_naming_the_column() {
    let e = mc_items(Task::ArcEasy, &docs("mmlu"), None, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mmlu.jsonl: line 1: column 'choices' holds a list, expected a record with field 'text'"), "{e}");
    let e = mc_items(Task::Mmlu, &docs("arc_easy"), None, 0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("column 'choices' holds a record, expected a list of strings"),
        "{e}"
    );
    let e = mc_items(Task::Race, &docs("arc_easy"), None, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("column 'article' is missing"), "{e}");
    let e = mc_items(Task::ArcEasy, &docs("arc_easy"), None, 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("zero-shot"), "{e}");
    let e = mc_items(Task::Mmlu, &docs("mmlu"), None, 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("dev split"), "{e}");
}
