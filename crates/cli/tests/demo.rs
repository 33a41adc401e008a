//! The lab end to end: `lab pretrain`, `lab sft`, `lab eval`, `pretrace run` and the shortened
//! `pretrace demo --quick` (the run CI makes), reruns that reuse what is done, and bad input.

mod run;
use run::{fails, ok, s};
use std::path::Path;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_quick_demo_runs_end_to_end_and_a_rerun_reuses_it() {
    let dir = run::scratch("demo", "quick");
    let out = dir.join("demo");
    let err = ok(&["demo", "--quick", "--out", s(&out)]);
    // Every step is printed as the command it is.
    for step in [
        "$ pretrace lab pretrain",
        "$ pretrace lab sft",
        "$ pretrace extract",
        "$ pretrace probe",
        "$ pretrace infoplane",
        "$ pretrace steer build",
        "$ pretrace lab eval",
        "$ pretrace report",
    ] {
        assert!(err.contains(step), "{step} missing from:\n{err}");
    }
    // Checkpoints in Hugging Face layout, densely early, and the chat model.
    for step in [0, 10, 20, 50, 60] {
        for f in ["config.json", "tokenizer.json", "model.safetensors"] {
            assert!(
                out.join(format!("lab/step{step}/{f}")).is_file(),
                "step{step}/{f}"
            );
        }
    }
    assert!(out.join("chat/model.safetensors").is_file());
    let train = json(&out.join("lab/train.json"));
    let log = train["log"].as_array().unwrap();
    assert_eq!(log.len(), 60);
    let first = log[0]["loss"].as_f64().unwrap();
    let last = log[59]["loss"].as_f64().unwrap();
    assert!(last < first - 1.0, "loss {first} → {last}");
    // The experiment's results: six unsteered tasks, then the trust task and the capability task
    // for each (source, dimension, α).
    let exp = json(&out.join("experiment.json"));
    let results = exp["results"].as_array().unwrap();
    let unsteered = results.iter().filter(|r| r["source"].is_null()).count();
    assert_eq!(unsteered, 6);
    assert_eq!(results.len(), 6 + 2 * 5 * 2);
    for r in results {
        let v = r["value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{r}");
    }
    let sources: std::collections::BTreeSet<&str> = results
        .iter()
        .filter_map(|r| r["source_role"].as_str())
        .collect();
    assert_eq!(sources, ["chat", "mid"].into_iter().collect());
    // Toxicity is steered away from the toxic direction: α is negative.
    assert!(results
        .iter()
        .filter(|r| r["task"] == "lab_toxic" && !r["source"].is_null())
        .all(|r| r["alpha"].as_f64().unwrap() < 0.0));
    // The report states each observation's verdict.
    let html = std::fs::read_to_string(out.join("report/report.html")).unwrap();
    assert!(html.contains("The paper's three observations in this run"));
    for o in [
        "1. Linear separability early in pre-training",
        "2. Fitting then compression in the information plane",
        "3. Steering with a pre-training checkpoint",
    ] {
        assert!(html.contains(o), "{o}");
    }
    // One verdict per observation in the summary table.
    let verdicts = [
        "appears",
        "appears in part",
        "does not appear",
        "not measured",
    ];
    let stated: usize = verdicts
        .iter()
        .map(|v| html.matches(&format!("<b>{v}</b>")).count())
        .sum();
    assert_eq!(stated, 3, "verdicts in the summary table");
    for f in [
        "training_loss.png",
        "steering_lab_truth.png",
        "accuracy_steps_reliability.png",
    ] {
        assert!(out.join("report/figures").join(f).is_file(), "{f}");
    }
    // A rerun reuses everything: nothing is trained or evaluated again.
    let again = ok(&["demo", "--quick", "--out", s(&out)]);
    assert!(again.contains("reusing the completed run"), "{again}");
    assert!(again.contains("reusing the chat model"), "{again}");
    assert!(again.contains("[done] pretrace probe"), "{again}");
    assert!(again.contains("[done] pretrace lab eval"), "{again}");
    assert!(!again.contains("$ pretrace lab eval"), "{again}");
    assert_eq!(
        json(&out.join("experiment.json"))["results"],
        exp["results"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lab_commands_train_tune_and_evaluate_and_refuse_bad_input() {
    let dir = run::scratch("demo", "lab");
    let lab = dir.join("lab");
    let tiny = [
        "--docs",
        "300",
        "--probe-rows",
        "20",
        "--vocab",
        "400",
        "--steps",
        "12",
        "--d-model",
        "32",
        "--layers",
        "2",
        "--heads",
        "2",
        "--d-mlp",
        "48",
        "--seq",
        "32",
        "--batch",
        "4",
    ];
    let mut a = vec!["lab", "pretrain", "--out", s(&lab)];
    a.extend(tiny);
    ok(&a);
    for step in [0, 10, 12] {
        assert!(lab.join(format!("step{step}/model.safetensors")).is_file());
    }
    // The same settings again: reused.
    assert!(ok(&a).contains("reusing the completed run"));
    let chat = dir.join("chat");
    let err = ok(&[
        "lab",
        "sft",
        "--base",
        s(&lab.join("step12")),
        "--out",
        s(&chat),
        "--steps",
        "5",
        "--examples",
        "100",
    ]);
    assert!(err.contains("held-out answer loss"), "{err}");
    let res = dir.join("eval.json");
    ok(&[
        "lab",
        "eval",
        "--model",
        s(&chat),
        "--run",
        s(&lab),
        "--out",
        s(&res),
    ]);
    let v = json(&res);
    let tasks: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["task"].as_str().unwrap())
        .collect();
    assert_eq!(
        tasks,
        [
            "lab_truth",
            "lab_toxic",
            "lab_privacy",
            "lab_stereo",
            "lab_sentiment",
            "lab_qa"
        ]
    );
    // Bad input: one error line each.
    let e = fails(&[
        "lab",
        "eval",
        "--model",
        s(&chat),
        "--run",
        s(&lab),
        "--task",
        "lab_nope",
        "--out",
        s(&res),
    ]);
    assert!(
        e.contains("unknown lab task 'lab_nope'") && e.contains("lab_truth"),
        "{e}"
    );
    let e = fails(&[
        "lab",
        "sft",
        "--base",
        s(&dir.join("missing")),
        "--out",
        s(&chat.join("x")),
    ]);
    assert!(e.contains("world.json"), "{e}");
    let e = fails(&[
        "lab",
        "eval",
        "--model",
        s(&chat),
        "--run",
        s(&dir),
        "--out",
        s(&res),
    ]);
    assert!(e.contains("world.json") && e.contains("--run"), "{e}");
    let x = dir.join("x");
    let e = fails(&[
        "lab",
        "pretrain",
        "--out",
        s(&x),
        "--docs",
        "20",
        "--steps",
        "2",
    ]);
    assert!(e.contains("at least 100 documents"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn experiment_files_are_checked_and_print_their_commands() {
    let dir = run::scratch("demo", "files");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let paper = root.join("experiments/paper-amber.toml");
    let out = std::process::Command::new(run::bin())
        .args(["run", s(&paper), "--out", s(&dir.join("a")), "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success());
    // A dry run writes nothing.
    assert!(!dir.join("a/store").exists());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "pretrace extract --checkpoints hf:LLM360/Amber --revisions all --data data/tracingllm/truthfulqa_train.csv",
        "--cache-budget 30G",
        "pretrace probe --store",
        "--protocol paper",
        "pretrace eval --model hf:LLM360/AmberChat --task toxigen",
        "--classifier models/toxigen_roberta",
        "pretrace steer build --store",
        "--dataset truthfulqa_train --layers '<middle layer>'",
        "--rows all",
        "--alpha=-4",
        "pretrace report --store",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    // The built-in files parse and the demo's dry run names the lab's steps.
    let out = std::process::Command::new(run::bin())
        .args(["demo", "--out", s(&dir.join("b")), "--dry-run"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pretrace lab pretrain --out"), "{text}");
    assert!(text.contains("--steps 600"), "{text}");
    // Bad files: one error line naming the file and what is wrong.
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "datasets = \"lab\"\n[models]\nsuite = \"x\"\nsuit = \"y\"\n",
    )
    .unwrap();
    let e = fails(&["run", s(&bad), "--out", s(&dir.join("c"))]);
    assert!(
        e.contains("bad.toml") && e.contains("unknown field `suit`"),
        "{e}"
    );
    std::fs::write(
        &bad,
        "datasets = [\"a.csv\"]\n[models]\nsuite = \"s\"\nchat = \"c\"\n[steer]\nsources = [\"mid\"]\nalphas = [1.0]\n[[trust]]\ntask = \"sst2\"\ndata = \"a.csv\"\n",
    )
    .unwrap();
    let e = fails(&["run", s(&bad), "--out", s(&dir.join("d")), "--dry-run"]);
    assert!(e.contains("trust task 'sst2': give `dataset`"), "{e}");
    std::fs::write(
        &bad,
        "device = \"tpu\"\ndatasets = [\"a.csv\"]\n[models]\nsuite = \"s\"\n",
    )
    .unwrap();
    let e = fails(&["run", s(&bad), "--out", s(&dir.join("g")), "--dry-run"]);
    assert!(e.contains("bad.toml") && e.contains("device 'tpu'"), "{e}");
    // `device` reaches every step that runs a model.
    std::fs::write(
        &bad,
        "device = \"cuda:1\"\ndatasets = [\"a.csv\"]\n[models]\nsuite = \"s\"\nchat = \"c\"\n[steer]\nsources = [\"mid\"]\nalphas = [1.0]\n[[capability]]\ntask = \"lambada\"\ndata = \"a.txt\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(run::bin())
        .args(["run", s(&bad), "--out", s(&dir.join("h")), "--dry-run"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for want in [
        "pretrace extract --checkpoints s ",
        "pretrace eval --model c ",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(want))
            .unwrap_or_else(|| panic!("{want}: {text}"));
        assert!(line.contains("--device cuda:1"), "{line}");
    }
    std::fs::write(&bad, "datasets = \"lab\"\n[models]\nsuite = \"lab\"\n").unwrap();
    let e = fails(&["run", s(&bad), "--out", s(&dir.join("e"))]);
    assert!(e.contains("no [lab] section"), "{e}");
    let e = fails(&[
        "run",
        s(&dir.join("missing.toml")),
        "--out",
        s(&dir.join("f")),
    ]);
    assert!(
        e.contains("missing.toml") && e.contains("cannot read"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_experiment_on_a_checkpoint_suite_with_eval_tasks_runs_and_reads_back() {
    let dir = run::scratch("demo", "suite");
    let data = run::golden("sweep/texts.csv");
    let ppl = dir.join("ppl.txt");
    std::fs::write(
        &ppl,
        "The quick brown fox jumps over the lazy dog\nPlease answer the question now\n",
    )
    .unwrap();
    let file = dir.join("suite.toml");
    std::fs::write(
        &file,
        format!(
            r#"title = "tiny suite"
datasets = ["{data}"]
[models]
suite = "{suite}"
chat = "{chat}"
[probe]
protocol = "paper"
[steer]
sources = ["mid", "step0"]
layer = 1
alphas = [4.0]
[[trust]]
task = "sst2"
data = "{data}"
dataset = "texts"
sign = -1
[[capability]]
task = "lambada"
data = "{ppl}"
"#,
            data = s(&data),
            suite = s(&run::golden("sweep")),
            chat = s(&run::golden("sweep/step143000")),
            ppl = s(&ppl),
        ),
    )
    .unwrap();
    let out = dir.join("out");
    ok(&["run", s(&file), "--out", s(&out)]);
    let exp = json(&out.join("experiment.json"));
    let rows = exp["results"].as_array().unwrap();
    // Unsteered sst2 and lambada, then sst2 and lambada for each of the two sources at α = −4.
    assert_eq!(rows.len(), 2 + 2 * 2, "{rows:?}");
    let get = |src: Option<&str>, task: &str| {
        rows.iter()
            .find(|r| r["source"].as_str() == src && r["task"] == task)
            .unwrap_or_else(|| panic!("{src:?} {task}"))
            .clone()
    };
    // The unsteered value is what a plain `pretrace eval` gives.
    let plain = dir.join("plain");
    ok(&[
        "eval",
        "--model",
        s(&run::golden("sweep/step143000")),
        "--task",
        "sst2",
        "--data",
        s(&data),
        "--out",
        s(&plain),
    ]);
    assert_eq!(
        get(None, "sst2")["value"],
        json(&plain.join("results.json"))["metrics"]["acc"]
    );
    let lam = get(None, "lambada");
    assert_eq!(lam["metric"], "perplexity");
    assert_eq!(lam["higher_is_better"], false);
    assert_eq!(lam["role"], "capability");
    // "mid": the checkpoint nearest half the last step (71500) is step1000.
    let mid = get(Some("step1000"), "sst2");
    assert_eq!(mid["alpha"], -4.0);
    assert_eq!(mid["source_role"], "mid");
    assert_eq!(get(Some("step0"), "lambada")["target"], "sst2");
    let html = std::fs::read_to_string(out.join("report/report.html")).unwrap();
    assert!(html.contains("3. Steering with a pre-training checkpoint"));
    std::fs::remove_dir_all(&dir).unwrap();
}
