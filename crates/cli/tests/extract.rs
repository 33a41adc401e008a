//! `pretrace extract`: stored activations against `pretrace forward` and against transformers, batch
//! size invariance, resuming after SIGKILL, block-by-block mode and its memory, and bad input.

use pretrace_store::Store;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

mod run;
use run::{bin, fails, golden, ok, s};

fn scratch(name: &str) -> PathBuf {
    run::scratch("extract", name)
}

/// The values of an F32 safetensors tensor.
fn f32s(t: &safetensors::tensor::TensorView) -> Vec<f32> {
    t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// `pretrace extract --checkpoints CKPT --data DATA --out OUT EXTRA…`, expected to fail.
fn extract_fails(ckpt: &Path, data: &Path, out: &Path, extra: &[&str]) -> String {
    let base = [
        "extract",
        "--checkpoints",
        s(ckpt),
        "--data",
        s(data),
        "--out",
        s(out),
    ];
    fails(&[&base[..], extra].concat())
}

/// `‖a − b‖ / ‖b‖`.
fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

/// Rows of real text with a header, written as the paper's CSVs are (CRLF, quoted where needed).
fn texts_csv(dir: &Path, name: &str, copies: usize) -> PathBuf {
    let src = std::fs::read_to_string(golden("sweep/texts.csv")).unwrap();
    let mut lines = src.split("\r\n").filter(|l| !l.is_empty());
    let header = lines.next().unwrap().to_string();
    let body: Vec<&str> = lines.collect();
    let mut out = header + "\r\n";
    for k in 0..copies {
        for (i, l) in body.iter().enumerate() {
            // Vary the rows so that copies differ in text and length.
            if k == 0 {
                out.push_str(&format!("{l}\r\n"));
            } else {
                let (text, label) = l.rsplit_once(',').unwrap();
                let text = text.trim_matches('"').replace("\"\"", "\"");
                let extra = " again".repeat((k + i) % 5);
                out.push_str(&format!(
                    "\"{}{extra} ({k})\",{label}\r\n",
                    text.replace('"', "\"\"")
                ));
            }
        }
    }
    let p = dir.join(name);
    std::fs::write(&p, out).unwrap();
    p
}

/// Reads every `<ckpt>/<dataset>` entry's files as bytes, for byte-for-byte comparison.
fn store_bytes(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let store = Store::open(root).unwrap();
    for (c, d) in store.entries().unwrap() {
        for f in ["activations.safetensors", "manifest.json"] {
            let p = root.join(&c).join(&d).join(f);
            out.push((format!("{c}/{d}/{f}"), std::fs::read(p).unwrap()));
        }
    }
    out
}

/// Every directory in the store is a whole entry or a temporary one a reader skips.
fn assert_no_partial_entries(root: &Path) {
    for c in std::fs::read_dir(root).unwrap().map(|e| e.unwrap().path()) {
        if !c.is_dir()
            || c.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        {
            continue;
        }
        for d in std::fs::read_dir(&c).unwrap().map(|e| e.unwrap().path()) {
            let name = d.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with(".tmp-") {
                continue;
            }
            assert!(
                d.join("manifest.json").is_file(),
                "partial entry {}",
                d.display()
            );
            assert!(
                d.join("activations.safetensors").is_file(),
                "partial entry {}",
                d.display()
            );
        }
    }
}

#[test]
fn stored_activations_equal_forward_on_each_row_for_any_batch_size() {
    let dir = scratch("batch");
    let ckpt = golden("llama_gqa");
    let data = texts_csv(&dir, "texts.csv", 3);
    let mut stores = Vec::new();
    for bs in [1, 7, 32] {
        let out = dir.join(format!("store{bs}"));
        ok(&[
            "extract",
            "--checkpoints",
            s(&ckpt),
            "--data",
            s(&data),
            "--out",
            s(&out),
            "--batch-size",
            &bs.to_string(),
        ]);
        stores.push(
            Store::open(&out)
                .unwrap()
                .read("llama_gqa", "texts")
                .unwrap(),
        );
    }
    let ds = pretrace_data_rows(&data);
    let n_layers = 3;
    assert_eq!(stores[0].labels.len(), ds.len());
    for (r, (text, label)) in ds.iter().enumerate() {
        let f = dir.join("row.safetensors");
        ok(&[
            "forward",
            "--model",
            s(&ckpt),
            "--text",
            text,
            "--out",
            s(&f),
        ]);
        let bytes = std::fs::read(&f).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for l in 0..n_layers {
            let t = st.tensor(&format!("blocks.{l}.hook_resid_post")).unwrap();
            let (tlen, d) = (t.shape()[0], t.shape()[1]);
            let all: Vec<f32> = f32s(&t);
            let want = &all[(tlen - 1) * d..];
            for (bs, e) in [1, 7, 32].iter().zip(&stores) {
                let got = e.layers[&l].row(r);
                let err = rel(got, want);
                assert!(
                    err < 1e-5,
                    "row {r} layer {l} batch size {bs}: relative error {err}"
                );
            }
        }
        for e in &stores {
            assert_eq!(e.labels[r], *label);
        }
    }
}

/// `(text, label)` rows of a statement,label CSV, read as the paper's files are read.
fn pretrace_data_rows(p: &Path) -> Vec<(String, i64)> {
    let bytes = std::fs::read(p).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let mut out = Vec::new();
    for l in text.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
        let (t, label) = l.rsplit_once(',').unwrap();
        let t = if t.starts_with('"') {
            t[1..t.len() - 1].replace("\"\"", "\"")
        } else {
            t.to_string()
        };
        out.push((t, label.parse().unwrap()));
    }
    out
}

/// Every row of every layer of a stored entry is within `tol` (relative) of transformers' output
/// for checkpoint `step` in tests/golden/sweep/ref.safetensors.
fn assert_matches_reference(
    e: &pretrace_store::Entry,
    reference: &safetensors::SafeTensors,
    step: &str,
    tol: f64,
) {
    for l in 0..3 {
        let t = reference
            .tensor(&format!("{step}.blocks.{l}.hook_resid_post"))
            .unwrap();
        let want = f32s(&t);
        let d = t.shape()[1];
        for r in 0..t.shape()[0] {
            let err = rel(e.layers[&l].row(r), &want[r * d..(r + 1) * d]);
            assert!(err < tol, "{step} layer {l} row {r}: relative error {err}");
        }
    }
}

#[test]
fn sweep_matches_transformers_on_pythia_style_checkpoints() {
    let dir = scratch("golden");
    let out = dir.join("store");
    let err = ok(&[
        "extract",
        "--checkpoints",
        s(&golden("sweep")),
        "--data",
        s(&golden("sweep/texts.csv")),
        "--out",
        s(&out),
        "--batch-size",
        "5",
    ]);
    // Checkpoint-major and ordered by step, not by name.
    let order: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("checkpoint "))
        .collect();
    assert_eq!(order.len(), 3, "{err}");
    assert!(
        order[0].contains("step0 (step 0)")
            && order[1].contains("step1000")
            && order[2].contains("step143000"),
        "{err}"
    );
    let store = Store::open(&out).unwrap();
    let bytes = std::fs::read(golden("sweep/ref.safetensors")).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for step in ["step0", "step1000", "step143000"] {
        let e = store.read(step, "texts").unwrap();
        assert_eq!(e.manifest.checkpoint.step, Some(step[4..].parse().unwrap()));
        assert_eq!(e.manifest.dataset.rows, 19);
        assert_matches_reference(&e, &reference, step, 1e-4);
    }
    // bf16 compute stays within bf16's precision of transformers' f32.
    let half = dir.join("bf16");
    ok(&[
        "extract",
        "--checkpoints",
        s(&golden("sweep")),
        "--data",
        s(&golden("sweep/texts.csv")),
        "--out",
        s(&half),
        "--dtype",
        "bf16",
        "--steps",
        "1000",
    ]);
    let e = Store::open(&half)
        .unwrap()
        .read("step1000", "texts")
        .unwrap();
    assert_eq!(e.manifest.extraction.compute_dtype, "bf16");
    assert_matches_reference(&e, &reference, "step1000", 3e-2);
    // Different checkpoints give different activations (the sweep did not reuse one model).
    let a = store.read("step0", "texts").unwrap();
    let b = store.read("step1000", "texts").unwrap();
    assert!(rel(a.layers[&1].row(0), b.layers[&1].row(0)) > 1e-2);
}

#[test]
fn rerun_skips_current_entries_and_redoes_changed_ones() {
    let dir = scratch("resume");
    let data = texts_csv(&dir, "texts.csv", 1);
    let out = dir.join("store");
    let suite = golden("sweep");
    let args = [
        "extract",
        "--checkpoints",
        s(&suite),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--layers",
        "0,2",
    ];
    ok(&args);
    let first = store_bytes(&out);
    let err = ok(&args);
    assert_eq!(err.matches("skip ").count(), 3, "{err}");
    assert!(err.contains("0 entries written"), "{err}");
    assert_eq!(store_bytes(&out), first);
    // Changed data: every entry is redone.
    let mut text = std::fs::read_to_string(&data).unwrap();
    text.push_str("one more row,1\r\n");
    std::fs::write(&data, text).unwrap();
    let err = ok(&args);
    assert!(err.contains("3 entries written"), "{err}");
    let e = Store::open(&out).unwrap().read("step0", "texts").unwrap();
    assert_eq!(e.labels.len(), 20);
    assert_eq!(e.layers.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
    // Changed settings: redone as well.
    let err = ok(&[&args[..], &["--token", "mean"]].concat());
    assert!(err.contains("3 entries written"), "{err}");
}

#[test]
fn sigkill_mid_sweep_then_rerun_equals_an_uninterrupted_run() {
    let dir = scratch("kill");
    let a = texts_csv(&dir, "a.csv", 60);
    let b = texts_csv(&dir, "b.csv", 40);
    let args = |out: &Path| -> Vec<String> {
        [
            "extract",
            "--checkpoints",
            s(&golden("sweep")),
            "--data",
            s(&a),
            "--data",
            s(&b),
            "--out",
            s(out),
            "--batch-size",
            "1",
            "--threads",
            "1",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    let clean = dir.join("clean");
    let t0 = Instant::now();
    ok(&args(&clean).iter().map(|x| x.as_str()).collect::<Vec<_>>());
    let full = t0.elapsed();
    let want = store_bytes(&clean);
    assert_eq!(want.len(), 12);

    let out = dir.join("killed");
    // Kill at several points of the run: before any entry, between entries, during writes.
    let mut kills = 0;
    for frac in [0.15, 0.4, 0.55, 0.7, 0.9] {
        let mut child = Command::new(bin())
            .args(args(&out))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(frac));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let _ = child.wait();
        if out.join("store.json").is_file() {
            assert_no_partial_entries(&out);
            // A reader sees only whole entries.
            let store = Store::open(&out).unwrap();
            for (c, d) in store.entries().unwrap() {
                store.read(&c, &d).unwrap();
            }
        }
    }
    assert!(kills >= 2, "the runs finished before they could be killed");
    ok(&args(&out).iter().map(|x| x.as_str()).collect::<Vec<_>>());
    let got = store_bytes(&out);
    assert_eq!(got.len(), want.len());
    for ((gn, gb), (wn, wb)) in got.iter().zip(&want) {
        assert_eq!(gn, wn);
        assert!(
            gb == wb,
            "{gn}: a resumed store differs from an uninterrupted one"
        );
    }
    // No temporary files are left behind.
    for c in std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()) {
        assert!(!c
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".tmp-"));
        if c.is_dir() {
            for d in std::fs::read_dir(&c).unwrap() {
                assert!(!d
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp-"));
            }
        }
    }
}

/// Writes a random LLaMA checkpoint of about `mib` MiB of f32 weights (8 layers).
fn big_llama(dir: &Path, d: usize, layers: usize) -> PathBuf {
    let ck = dir.join("big");
    std::fs::create_dir_all(&ck).unwrap();
    let tok = golden("llama_gqa/tokenizer.json");
    std::fs::copy(&tok, ck.join("tokenizer.json")).unwrap();
    let vocab = 300;
    let mlp = 4 * d;
    let cfg = format!(
        r#"{{"model_type": "llama", "hidden_size": {d}, "intermediate_size": {mlp}, "num_hidden_layers": {layers}, "num_attention_heads": 8, "num_key_value_heads": 8, "vocab_size": {vocab}, "rms_norm_eps": 1e-6, "bos_token_id": 0, "eos_token_id": 1, "tie_word_embeddings": false}}"#
    );
    std::fs::write(ck.join("config.json"), cfg).unwrap();
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![vocab, d]),
        ("model.norm.weight".into(), vec![d]),
        ("lm_head.weight".into(), vec![vocab, d]),
    ];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for n in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            shapes.push((format!("{p}.self_attn.{n}.weight"), vec![d, d]));
        }
        shapes.push((format!("{p}.mlp.gate_proj.weight"), vec![mlp, d]));
        shapes.push((format!("{p}.mlp.up_proj.weight"), vec![mlp, d]));
        shapes.push((format!("{p}.mlp.down_proj.weight"), vec![d, mlp]));
        shapes.push((format!("{p}.input_layernorm.weight"), vec![d]));
        shapes.push((format!("{p}.post_attention_layernorm.weight"), vec![d]));
    }
    // The safetensors layout by hand: 8-byte header length, JSON header, then the data.
    let mut header = String::from("{");
    let mut off = 0usize;
    for (i, (n, sh)) in shapes.iter().enumerate() {
        let len = sh.iter().product::<usize>() * 4;
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            r#""{n}":{{"dtype":"F32","shape":{sh:?},"data_offsets":[{off},{}]}}"#,
            off + len
        ));
        off += len;
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    use std::io::Write;
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(ck.join("model.safetensors")).unwrap());
    f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    let mut state = 0x1234_5678u64;
    for (n, sh) in &shapes {
        let count: usize = sh.iter().product();
        let scale = if n.contains("norm") {
            0.0
        } else {
            (sh[sh.len() - 1] as f32).powf(-0.5)
        };
        let mut buf = Vec::with_capacity(count * 4);
        for _ in 0..count {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            let v = if n.contains("norm") {
                1.0
            } else {
                u * scale * 1.7
            };
            buf.extend_from_slice(&v.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
    ck
}

fn peak_mib(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("peak resident memory:"))
        .expect("peak memory line");
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn blockwise_equals_whole_and_stays_under_the_budget() {
    let dir = scratch("blockwise");
    // 8 blocks of 12.6M parameters: 403 MiB of f32 weights.
    let ck = big_llama(&dir, 1024, 8);
    let data = texts_csv(&dir, "texts.csv", 2);
    let whole = dir.join("whole");
    let err = ok(&[
        "extract",
        "--checkpoints",
        s(&ck),
        "--data",
        s(&data),
        "--out",
        s(&whole),
        "--max-memory",
        "4G",
        "--max-batch-tokens",
        "1024",
    ]);
    assert!(err.contains(", whole"), "{err}");
    let whole_peak = peak_mib(&err);
    let budget_mib = 256;
    let streamed = dir.join("streamed");
    let err = ok(&[
        "extract",
        "--checkpoints",
        s(&ck),
        "--data",
        s(&data),
        "--out",
        s(&streamed),
        "--max-memory",
        &format!("{budget_mib}M"),
        "--max-batch-tokens",
        "1024",
    ]);
    assert!(err.contains("block by block"), "{err}");
    let peak = peak_mib(&err);
    // Activations kept: every row's residual stream and the pooled rows of every layer.
    let rows = 38u64;
    let kept_mib = (rows * 64 * 1024 * 4 + rows * 8 * 1024 * 4) >> 20;
    assert!(
        whole_peak > 403,
        "the whole model should not fit the budget: peak {whole_peak} MiB"
    );
    assert!(
        peak < budget_mib + kept_mib,
        "peak {peak} MiB exceeds the {budget_mib} MiB budget + {kept_mib} MiB of activations"
    );
    let a = Store::open(&whole).unwrap().read("big", "texts").unwrap();
    let b = Store::open(&streamed)
        .unwrap()
        .read("big", "texts")
        .unwrap();
    assert_eq!(a.layers.len(), 8);
    for l in 0..8 {
        assert!(
            a.layers[&l] == b.layers[&l],
            "layer {l}: block-by-block differs from whole"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_one_line_naming_file_and_field() {
    let dir = scratch("bad");
    let ck = golden("llama_gqa");
    let run = |data: &Path, out: &Path| {
        fails(&[
            "extract",
            "--checkpoints",
            s(&ck),
            "--data",
            s(data),
            "--out",
            s(out),
        ])
    };
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let out = dir.join("store");
    let e = run(&write("nocol.csv", b"sentence_x,label\nhi,1\n"), &out);
    assert!(
        e.contains("nocol.csv") && e.contains("no text column"),
        "{e}"
    );
    let e = run(&write("lab.csv", b"statement,label\nhi,1\nho,yes\n"), &out);
    assert!(
        e.contains("lab.csv: line 3") && e.contains("'yes'") && e.contains("not 0 or 1"),
        "{e}"
    );
    let e = run(&write("empty.csv", b"statement,label\nhi,1\n,0\n"), &out);
    assert!(
        e.contains("empty.csv: line 3") && e.contains("empty"),
        "{e}"
    );
    let e = run(
        &write("bytes.csv", b"statement,label\nhi,1\nh\xc3\x28,0\n"),
        &out,
    );
    assert!(
        e.contains("bytes.csv: line 3") && e.contains("UTF-8"),
        "{e}"
    );
    let good = write("good.csv", b"statement,label\nhi,1\nho,0\n");
    // A checkpoint of another width in the sweep.
    let suite = dir.join("suite");
    for (name, src) in [
        ("step100", "llama_gqa"),
        ("step200", "llama_gqa"),
        ("step300", "gpt2"),
    ] {
        let d = suite.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(golden(src).join(f), d.join(f)).unwrap();
        }
    }
    let e = extract_fails(&suite, &good, &dir.join("s2"), &[]);
    assert!(
        e.contains("step300/config.json")
            && e.contains("model_type is gpt2")
            && e.contains("step100"),
        "{e}"
    );
    let cfg = std::fs::read_to_string(golden("llama_gqa/config.json")).unwrap();
    let wide = cfg.replace("\"hidden_size\": 32", "\"hidden_size\": 64");
    assert_ne!(cfg, wide);
    std::fs::write(suite.join("step300/config.json"), wide).unwrap();
    let e = extract_fails(&suite, &good, &dir.join("s3"), &[]);
    assert!(
        e.contains("step300/config.json")
            && e.contains("width (hidden_size) is 64")
            && e.contains("has 32"),
        "{e}"
    );
    // An unwritable store: its path runs through a regular file.
    let e = extract_fails(&ck, &good, &good.join("store"), &[]);
    assert!(
        e.contains("good.csv/store") && e.contains("writable --out"),
        "{e}"
    );
    // A store written by an incompatible version.
    let old = dir.join("old");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(
        old.join("store.json"),
        r#"{"format": "pretrace-activation-store", "version": 99, "tool": "pretrace 9.0.0"}"#,
    )
    .unwrap();
    let e = extract_fails(&ck, &good, &old, &[]);
    assert!(
        e.contains("store.json") && e.contains("store format 99") && e.contains("pretrace 9.0.0"),
        "{e}"
    );
    // A directory that is not a store.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "x").unwrap();
    let e = extract_fails(&ck, &good, &other, &[]);
    assert!(e.contains("not an activation store"), "{e}");
    // Settings.
    let e = extract_fails(&ck, &good, &out, &["--layers", "0,7"]);
    assert!(
        e.contains("layer 7 is out of range") && e.contains("3 layers"),
        "{e}"
    );
    let e = extract_fails(&ck, &good, &out, &["--template", "no placeholder"]);
    assert!(e.contains("{text}"), "{e}");
    let e = extract_fails(&golden("sweep"), &good, &out, &["--steps", "0,5"]);
    assert!(
        e.contains("step 5 is not in the suite") && e.contains("0, 1000, 143000"),
        "{e}"
    );
    let e = extract_fails(&ck, &good, &out, &["--max-memory", "12Q"]);
    assert!(e.contains("--max-memory 12Q"), "{e}");
}

#[test]
fn checkpoint_selection_orders_by_step() {
    let dir = scratch("select");
    let good = dir.join("good.csv");
    std::fs::write(&good, "statement,label\nhello there,1\n").unwrap();
    let suite = dir.join("suite");
    // Lexicographic order would put step10000 before step2000 and step300.
    for name in [
        "step300",
        "step10000",
        "step2000",
        "step0",
        "step143000",
        "step50000",
    ] {
        let d = suite.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(golden("llama_gqa").join(f), d.join(f)).unwrap();
        }
    }
    let order = |extra: &[&str]| -> Vec<String> {
        let out = dir.join(format!("s{}", extra.join("_").replace(['.', ','], "-")));
        let err = ok(&[
            &[
                "extract",
                "--checkpoints",
                s(&suite),
                "--data",
                s(&good),
                "--out",
                s(&out),
                "--layers",
                "0",
            ][..],
            extra,
        ]
        .concat());
        err.lines()
            .filter(|l| l.starts_with("checkpoint "))
            .map(|l| {
                l.split(": ")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        order(&[]),
        [
            "step0",
            "step300",
            "step2000",
            "step10000",
            "step50000",
            "step143000"
        ]
    );
    assert_eq!(
        order(&["--steps", "300..10000"]),
        ["step300", "step2000", "step10000"]
    );
    assert_eq!(order(&["--steps", "143000,0"]), ["step0", "step143000"]);
    assert_eq!(order(&["--every", "2"]), ["step0", "step2000", "step50000"]);
    assert_eq!(
        order(&["--log-spaced", "4"]),
        ["step0", "step300", "step10000", "step143000"]
    );
}

#[test]
fn mean_token_template_and_f16_store_follow_forward() {
    let dir = scratch("options");
    let ckpt = golden("llama_gqa");
    let data = texts_csv(&dir, "texts.csv", 1);
    let rows = pretrace_data_rows(&data);
    let template = "Statement: {text}\nTrue or false?";
    let mean = dir.join("mean");
    ok(&[
        "extract",
        "--checkpoints",
        s(&ckpt),
        "--data",
        s(&data),
        "--out",
        s(&mean),
        "--token",
        "mean",
        "--template",
        template,
        "--batch-size",
        "6",
    ]);
    let half = dir.join("half");
    ok(&[
        "extract",
        "--checkpoints",
        s(&ckpt),
        "--data",
        s(&data),
        "--out",
        s(&half),
        "--store-dtype",
        "f16",
        "--template",
        template,
    ]);
    let m = Store::open(&mean)
        .unwrap()
        .read("llama_gqa", "texts")
        .unwrap();
    let h = Store::open(&half)
        .unwrap()
        .read("llama_gqa", "texts")
        .unwrap();
    assert_eq!(m.manifest.extraction.token, "mean");
    assert_eq!(m.manifest.extraction.template.as_deref(), Some(template));
    assert_eq!(h.manifest.extraction.store_dtype, "f16");
    let bytes = std::fs::read(half.join("llama_gqa/texts/activations.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        st.tensor("blocks.0.hook_resid_post").unwrap().dtype(),
        safetensors::Dtype::F16
    );
    for (r, (text, _)) in rows.iter().enumerate().take(8) {
        let f = dir.join("row.safetensors");
        let templated = template.replace("{text}", text);
        ok(&[
            "forward",
            "--model",
            s(&ckpt),
            "--text",
            &templated,
            "--out",
            s(&f),
        ]);
        let bytes = std::fs::read(&f).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for l in 0..3 {
            let t = st.tensor(&format!("blocks.{l}.hook_resid_post")).unwrap();
            let (tlen, d) = (t.shape()[0], t.shape()[1]);
            let all: Vec<f32> = f32s(&t);
            let avg: Vec<f32> = (0..d)
                .map(|j| (0..tlen).map(|i| all[i * d + j] as f64).sum::<f64>() as f32 / tlen as f32)
                .collect();
            let err = rel(m.layers[&l].row(r), &avg);
            assert!(
                err < 1e-5,
                "mean of row {r} layer {l}: relative error {err}"
            );
            let err = rel(h.layers[&l].row(r), &all[(tlen - 1) * d..]);
            assert!(
                err < 1e-3 && err > 0.0,
                "f16 row {r} layer {l}: relative error {err}"
            );
            assert_eq!(m.tokens[r] as usize, tlen);
        }
    }
}
