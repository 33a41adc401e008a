//! Hostile input: writes that must not clobber what they should not, inputs that must not crash
//! pretrace, and numbers that must not pass as results. Each test is named after what it guards.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn pretrace(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pretrace"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run pretrace");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command expected to fail cleanly; returns its single error line.
fn fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pretrace"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run pretrace");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // 1: a refused input; 2: a refused argument (clap's usage error).
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "expected a clean failure for {args:?}: {err}"
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(
        !err.contains("stack backtrace"),
        "backtrace in message: {err}"
    );
    line.to_string()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pretrace-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && p.file_name().unwrap() != "ref.safetensors" {
            std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
        }
    }
}

fn llama_copy(name: &str) -> PathBuf {
    let d = scratch(name).join("llama");
    copy_dir(&golden("llama_gqa"), &d);
    d
}

fn edit_config(dir: &Path, key: &str, value: serde_json::Value) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v[key] = value;
    std::fs::write(&p, v.to_string()).unwrap();
}

#[test]
fn out_refuses_a_fifo_and_a_device_node() {
    let d = scratch("fifo");
    let fifo = d.join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let e = fails(&[
        "forward",
        "--model",
        s(&golden("llama_gqa")),
        "--text",
        "hi",
        "--out",
        s(&fifo),
    ]);
    assert!(e.contains("FIFO") && e.contains(s(&fifo)), "{e}");
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    // A character device (as /dev/full): only root can make one.
    let dev = d.join("full");
    let made = Command::new("mknod")
        .args([s(&dev), "c", "1", "7"])
        .status()
        .is_ok_and(|st| st.success());
    if made {
        let e = fails(&[
            "forward",
            "--model",
            s(&golden("llama_gqa")),
            "--text",
            "hi",
            "--out",
            s(&dev),
        ]);
        assert!(e.contains("character device"), "{e}");
        assert!(std::fs::symlink_metadata(&dev)
            .unwrap()
            .file_type()
            .is_char_device());
    } else {
        println!("SKIP: mknod needs root; the device-node case was not run");
    }
}

#[test]
fn out_refuses_a_symlink_and_leaves_its_target_alone() {
    let d = scratch("symlink");
    let target = d.join("precious.txt");
    std::fs::write(&target, "keep me").unwrap();
    let link = d.join("out.safetensors");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = fails(&[
        "forward",
        "--model",
        s(&golden("llama_gqa")),
        "--text",
        "hi",
        "--out",
        s(&link),
    ]);
    assert!(e.contains("symbolic link"), "{e}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
}

#[test]
fn out_names_the_asked_path_not_a_temporary_one() {
    let e = fails(&[
        "forward",
        "--model",
        s(&golden("llama_gqa")),
        "--text",
        "hi",
        "--out",
        "/proc/x.st",
    ]);
    assert!(e.contains("/proc/x.st"), "{e}");
    assert!(!e.contains(".tmp-"), "{e}");
}

#[test]
fn shard_index_naming_a_file_outside_the_checkpoint_is_refused() {
    let d = scratch("index").join("ck");
    copy_dir(&golden("llama_gqa/sharded_safetensors"), &d);
    let p = d.join("model.safetensors.index.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let first = v["weight_map"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    v["weight_map"][&first] = serde_json::json!("../../../../etc/passwd");
    std::fs::write(&p, v.to_string()).unwrap();
    let e = fails(&["info", "--model", s(&d)]);
    assert!(
        e.contains("etc/passwd") && e.contains("inside the checkpoint"),
        "{e}"
    );
    // A symlink inside the folder that points out of it is refused too.
    v["weight_map"][&first] = serde_json::json!("escape.safetensors");
    std::fs::write(&p, v.to_string()).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", d.join("escape.safetensors")).unwrap();
    let e = fails(&["info", "--model", s(&d)]);
    assert!(e.contains("outside the checkpoint"), "{e}");
}

fn extract(store: &Path, data: &Path, extra: &[&str]) -> (bool, String) {
    let suite = golden("sweep");
    let mut args = vec![
        "extract",
        "--checkpoints",
        s(&suite),
        "--data",
        s(data),
        "--out",
        s(store),
        "--steps",
        "0",
    ];
    args.extend_from_slice(extra);
    pretrace(&args)
}

#[test]
fn resume_redoes_a_truncated_or_deleted_entry_and_files_follow_the_umask() {
    let d = scratch("resume");
    let store = d.join("store");
    let data = golden("sweep/texts.csv");
    // Under umask 022 every file of the store is 0644.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 022; exec '{}' extract --checkpoints '{}' --data '{}' --out '{}' --steps 0",
            env!("CARGO_BIN_EXE_pretrace"),
            s(&golden("sweep")),
            s(&data),
            s(&store)
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let act = store.join("step0/texts/activations.safetensors");
    for f in [
        &act,
        &store.join("step0/texts/manifest.json"),
        &store.join("store.json"),
    ] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{}", f.display());
    }
    let whole = std::fs::read(&act).unwrap();
    // Truncated: redone, and said so.
    std::fs::write(&act, &whole[..whole.len() / 2]).unwrap();
    let (ok, err) = extract(&store, &data, &[]);
    assert!(ok, "{err}");
    assert!(err.contains("redo step0/texts"), "{err}");
    assert_eq!(std::fs::read(&act).unwrap(), whole);
    // Deleted: redone.
    std::fs::remove_file(&act).unwrap();
    let (ok, err) = extract(&store, &data, &[]);
    assert!(ok && err.contains("is missing"), "{err}");
    assert_eq!(std::fs::read(&act).unwrap(), whole);
    // Same size, other bytes: found by --verify (the checksum).
    let mut bad = whole.clone();
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    std::fs::write(&act, &bad).unwrap();
    let (ok, err) = extract(&store, &data, &[]);
    assert!(ok && err.contains("skip step0/texts"), "{err}");
    let (ok, err) = extract(&store, &data, &["--verify"]);
    assert!(ok && err.contains("sha256"), "{err}");
    assert_eq!(std::fs::read(&act).unwrap(), whole);
    // A current entry is skipped.
    let (ok, err) = extract(&store, &data, &[]);
    assert!(ok && err.contains("skip step0/texts"), "{err}");

    // probe and infoplane: layers that are not stored are errors, not empty tables.
    let e = fails(&[
        "probe",
        "--store",
        s(&store),
        "--out",
        s(&d.join("p")),
        "--layers",
        "40",
    ]);
    assert!(e.contains("layer 40 is not in the store"), "{e}");
    let e = fails(&[
        "infoplane",
        "--store",
        s(&store),
        "--out",
        s(&d.join("i")),
        "--layers",
        "99",
    ]);
    assert!(e.contains("layer 99 is not in the store"), "{e}");
    // KSG with more neighbours than rows.
    let e = fails(&[
        "infoplane",
        "--store",
        s(&store),
        "--out",
        s(&d.join("i")),
        "--estimator",
        "ksg",
        "--k",
        "1000",
    ]);
    assert!(e.contains("k = 1000"), "{e}");
    // An unwritable --out fails before any work.
    let blocker = d.join("file");
    std::fs::write(&blocker, "x").unwrap();
    for cmd in ["probe", "infoplane", "report"] {
        let e = fails(&[cmd, "--store", s(&store), "--out", s(&blocker.join("sub"))]);
        assert!(e.contains(s(&blocker)), "{cmd}: {e}");
    }
}

#[test]
fn a_row_longer_than_the_context_is_an_error_naming_file_and_row() {
    let d = scratch("long");
    let ck = d.join("ck").join("step0");
    copy_dir(&golden("sweep/step0"), &ck);
    edit_config(&ck, "max_position_embeddings", serde_json::json!(16));
    let csv = d.join("rows.csv");
    std::fs::write(
        &csv,
        format!("text,label\nshort one,0\n{},1\n", "word ".repeat(200_000)),
    )
    .unwrap();
    let store = d.join("store");
    let e = fails(&[
        "extract",
        "--checkpoints",
        s(&ck),
        "--data",
        s(&csv),
        "--out",
        s(&store),
    ]);
    assert!(
        e.contains("rows.csv") && e.contains("row 2") && e.contains("16 positions"),
        "{e}"
    );
    let (ok, err) = pretrace(&[
        "extract",
        "--checkpoints",
        s(&ck),
        "--data",
        s(&csv),
        "--out",
        s(&store),
        "--truncate",
    ]);
    assert!(ok, "{err}");
}

#[test]
fn threads_are_bounded() {
    let e = fails(&[
        "--threads",
        "100000",
        "info",
        "--model",
        s(&golden("llama_gqa")),
    ]);
    assert!(e.contains("100000 threads"), "{e}");
}

#[test]
fn generation_stops_at_the_context_length() {
    let d = llama_copy("gen");
    edit_config(&d, "max_position_embeddings", serde_json::json!(12));
    let (ok, err) = pretrace(&[
        "generate",
        "--model",
        s(&d),
        "--text",
        "hi",
        "--max-new-tokens",
        "1000000000",
        "--json",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("generating at most"), "{err}");
}

#[test]
fn invalid_config_values_are_errors_at_load() {
    for (key, value, want) in [
        ("rms_norm_eps", serde_json::json!(-1), "rms_norm_eps"),
        ("rope_theta", serde_json::json!(-1e4), "rope_theta"),
        ("rope_theta", serde_json::json!("oops"), "rope_theta"),
        ("hidden_size", serde_json::json!("oops"), "hidden_size"),
        ("eos_token_id", serde_json::json!(-3), "eos_token_id"),
        (
            "max_position_embeddings",
            serde_json::json!(0),
            "max_position_embeddings",
        ),
    ] {
        let d = llama_copy(&format!("cfg-{key}"));
        if key == "rope_theta" {
            let p = d.join("config.json");
            let mut v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            v.as_object_mut().unwrap().remove("rope_parameters");
            std::fs::write(&p, v.to_string()).unwrap();
        }
        edit_config(&d, key, value.clone());
        let e = fails(&["info", "--model", s(&d)]);
        assert!(
            e.contains(want) && e.contains("config.json"),
            "{key} = {value}: {e}"
        );
    }
}

/// Rewrites tensor `name` of `dir`'s model.safetensors with `value` at element 0, or everywhere.
fn poison_weight(dir: &Path, name: &str, value: f32, everywhere: bool) -> String {
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let name = name.to_string();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for n in st.names() {
        let t = st.tensor(n).unwrap();
        let mut data = t.data().to_vec();
        if *n == name {
            let upto = if everywhere { data.len() } else { 4 };
            for c in data[..upto].chunks_exact_mut(4) {
                c.copy_from_slice(&value.to_le_bytes());
            }
        }
        tensors.push((n.to_string(), t.dtype(), t.shape().to_vec(), data));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, dt, sh, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*dt, sh.clone(), d).unwrap(),
            )
        })
        .collect();
    std::fs::write(&p, safetensors::serialize(views, None).unwrap()).unwrap();
    name
}

#[test]
fn nan_or_inf_weights_are_an_error_naming_the_tensor() {
    for v in [f32::NAN, f32::INFINITY] {
        let d = llama_copy(&format!("nan-{}", v.is_nan()));
        let name = poison_weight(&d, "model.layers.1.mlp.up_proj.weight", v, false);
        let e = fails(&[
            "forward",
            "--model",
            s(&d),
            "--text",
            "hi",
            "--out",
            s(&d.join("o.st")),
        ]);
        assert!(e.contains(&name) && e.contains("model.safetensors"), "{e}");
        assert!(!d.join("o.st").exists());
    }
}

#[test]
fn overflowing_activations_are_an_error_naming_dataset_row_and_block() {
    // Finite weights so large that block 1's output overflows f32.
    let d = scratch("overflow");
    let ck = d.join("step0");
    copy_dir(&golden("sweep/step0"), &ck);
    poison_weight(
        &ck,
        "gpt_neox.layers.1.mlp.dense_4h_to_h.weight",
        3e38,
        true,
    );
    let store = d.join("store");
    let data = golden("sweep/texts.csv");
    let e = fails(&[
        "extract",
        "--checkpoints",
        s(&ck),
        "--data",
        s(&data),
        "--out",
        s(&store),
    ]);
    // Every row overflows and batches run side by side: any row may be the one named, but it
    // must be a row of the file.
    let rows = std::fs::read_to_string(&data).unwrap().lines().count() - 1;
    let row: usize = e
        .split("dataset 'texts', row ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no row named: {e}"));
    assert!((1..=rows).contains(&row), "{e}");
    assert!(e.contains("after block 1"), "{e}");
    assert!(!store.join("step0/texts").exists(), "an entry was written");
    // The same model run directly: the hook site and position are named.
    let e = fails(&[
        "forward",
        "--model",
        s(&ck),
        "--text",
        "hello",
        "--out",
        s(&d.join("o.st")),
    ]);
    assert!(e.contains("blocks.1.hook_resid_post"), "{e}");
}

fn vector_file(path: &Path, names: &[&str], d: usize, value: f32) {
    let data: Vec<u8> = (0..d).flat_map(|_| value.to_le_bytes()).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![d], &data)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn steering_alpha_must_be_finite_and_layer_is_checked_before_loading() {
    let d = scratch("alpha");
    let vec1 = d.join("v1.safetensors");
    vector_file(&vec1, &["blocks.1.hook_resid_post"], 32, 0.5);
    let model = golden("llama_gqa");
    let base = ["forward", "--model", s(&model), "--text", "hi", "--out"];
    let out = d.join("o.st");
    for a in ["-inf", "inf", "nan", "NaN"] {
        let mut args = base.to_vec();
        args.extend([s(&out), "--steer", s(&vec1), "--alpha", a]);
        let e = fails(&args);
        assert!(e.contains("not a finite number"), "{a}: {e}");
    }
    // 1e39 is finite in f64 but overflows the f32 residual stream.
    let mut args = base.to_vec();
    args.extend([s(&out), "--steer", s(&vec1), "--alpha", "1e39"]);
    let e = fails(&args);
    assert!(e.contains("alpha"), "{e}");
    // A negative alpha is a value, not a flag.
    let mut args = base.to_vec();
    args.extend([s(&out), "--steer", s(&vec1), "--alpha", "-2"]);
    let (ok, err) = pretrace(&args);
    assert!(ok, "{err}");
    // Several layers and no --steer-layer: said before any model is loaded (the model is missing).
    let vec2 = d.join("v2.safetensors");
    vector_file(
        &vec2,
        &["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"],
        32,
        0.5,
    );
    let e = fails(&[
        "forward",
        "--model",
        "/no/such/model",
        "--text",
        "hi",
        "--out",
        s(&out),
        "--steer",
        s(&vec2),
    ]);
    assert!(e.contains("--steer-layer"), "{e}");
    // One vector without a layer name or metadata.
    let vec0 = d.join("v0.safetensors");
    vector_file(&vec0, &["direction"], 32, 0.5);
    let e = fails(&[
        "forward",
        "--model",
        s(&golden("llama_gqa")),
        "--text",
        "hi",
        "--out",
        s(&out),
        "--steer",
        s(&vec0),
    ]);
    assert!(
        e.contains("does not say which layer") && !e.contains("layer vectors"),
        "{e}"
    );
    // The control vector export refuses a non-finite alpha as well.
    let e = fails(&[
        "steer",
        "export",
        "--format",
        "gguf",
        "--vector",
        s(&vec1),
        "--out",
        s(&d.join("c.gguf")),
        "--alpha",
        "-inf",
        "--model-hint",
        "llama",
    ]);
    assert!(e.contains("not a finite number"), "{e}");
}

#[test]
fn a_tensor_name_of_raw_bytes_is_not_echoed_whole() {
    let d = llama_copy("rawname");
    let bytes = std::fs::read(d.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let raw: String = (0..2000)
        .map(|i| char::from(b"\n\x01\x1b\x7f"[i % 4]))
        .collect();
    let owned: Vec<(String, safetensors::tensor::TensorView)> = st
        .names()
        .into_iter()
        .map(|n| (n.to_string(), st.tensor(n).unwrap()))
        .chain(std::iter::once((
            raw.clone(),
            st.tensor("model.norm.weight").unwrap(),
        )))
        .collect();
    std::fs::write(
        d.join("model.safetensors"),
        safetensors::serialize(owned, None).unwrap(),
    )
    .unwrap();
    let e = fails(&["info", "--model", s(&d)]);
    assert!(e.len() < 600, "{} chars: {e}", e.len());
}

#[test]
fn a_tokenizer_with_an_empty_vocabulary_is_blamed() {
    let d = llama_copy("emptyvocab");
    let p = d.join("tokenizer.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v["model"]["vocab"] = serde_json::json!({});
    v["model"]["merges"] = serde_json::json!([]);
    v["added_tokens"] = serde_json::json!([]);
    v["post_processor"] = serde_json::Value::Null;
    std::fs::write(&p, v.to_string()).unwrap();
    let e = fails(&["info", "--model", s(&d)]);
    assert!(
        e.contains("tokenizer.json") && e.contains("vocabulary is empty"),
        "{e}"
    );
}

/// A minimal GGUF v3 file: no metadata, one tensor with the given dimensions.
fn gguf_with_dims(dims: &[u64]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    let name = b"token_embd.weight";
    b.extend_from_slice(&(name.len() as u64).to_le_bytes());
    b.extend_from_slice(name);
    b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.resize(b.len() + 64, 0);
    b
}

#[test]
fn a_gguf_dimension_near_2_pow_60_is_an_error_not_a_panic() {
    let d = scratch("gguf");
    for dims in [
        vec![1u64 << 60],
        vec![1 << 31, 1 << 31, 1 << 31],
        vec![u64::MAX, 2],
    ] {
        let p = d.join("m.gguf");
        std::fs::write(&p, gguf_with_dims(&dims)).unwrap();
        let e = fails(&["info", "--model", s(&p)]);
        assert!(e.contains("m.gguf"), "{e}");
    }
}

#[test]
fn experiment_values_are_checked_by_a_dry_run() {
    let d = scratch("exp");
    let base = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../experiments/lab-quick.toml"),
    )
    .unwrap();
    for (edit, want) in [
        ("[probe]\nfolds = 0\n", "folds = 0"),
        ("[[trust]]\ntask = \"no_such_task\"\ndata = \"x.csv\"\ndataset = \"toxicity\"\nsign = 1\n", "no_such_task"),
    ] {
        let f = d.join("e.toml");
        let text = if edit.starts_with("[probe]") {
            assert!(base.contains("folds = 5"));
            base.replace("folds = 5", "folds = 0")
        } else {
            format!("{base}\n{edit}")
        };
        std::fs::write(&f, text).unwrap();
        let e = fails(&["run", s(&f), "--out", s(&d.join("out")), "--dry-run"]);
        assert!(e.contains(want), "{e}");
        assert!(!d.join("out").exists(), "a dry run wrote something");
    }
}

#[test]
fn a_gguf_tensor_with_a_zero_dimension_is_an_error() {
    let d = scratch("gguf0");
    let p = d.join("m.gguf");
    std::fs::write(&p, gguf_with_dims(&[0, 32])).unwrap();
    let e = fails(&["info", "--model", s(&p)]);
    assert!(e.contains("m.gguf") && e.contains("dimension of 0"), "{e}");
}

/// The entries of a PyTorch zip checkpoint, in order.
fn zip_entries(p: &Path) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::fs::File::open(p).unwrap()).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut b = Vec::new();
            f.read_to_end(&mut b).unwrap();
            (f.name().unwrap().to_string(), b)
        })
        .collect()
}

fn write_zip(p: &Path, entries: &[(String, Vec<u8>)]) {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::fs::File::create(p).unwrap());
    let o =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (n, b) in entries {
        w.start_file(n.as_str(), o).unwrap();
        w.write_all(b).unwrap();
    }
    w.finish().unwrap();
}

fn bin_copy(name: &str) -> PathBuf {
    let d = scratch(name).join("bin");
    copy_dir(&golden("llama_gqa/bin"), &d);
    d
}

#[test]
fn a_bin_storage_smaller_than_its_tensor_is_refused_before_reading() {
    let d = bin_copy("bin-extent");
    let p = d.join("pytorch_model.bin");
    let mut e = zip_entries(&p);
    let storage = e.iter_mut().find(|(n, _)| n.ends_with("data/0")).unwrap();
    storage.1.truncate(100);
    write_zip(&p, &e);
    let err = fails(&["info", "--model", s(&d)]);
    assert!(
        err.contains("pytorch_model.bin")
            && err.contains("data/0")
            && err.contains("which holds 100"),
        "{err}"
    );
}

#[test]
fn a_pickle_string_longer_than_the_pickle_is_refused() {
    let d = bin_copy("bin-string");
    let p = d.join("pytorch_model.bin");
    let mut e = zip_entries(&p);
    let pkl = e.iter_mut().find(|(n, _)| n.ends_with("data.pkl")).unwrap();
    // After PROTO 2: a BINUNICODE declaring 4 GiB.
    pkl.1.splice(2..2, [b'X', 0xf0, 0xff, 0xff, 0xff]);
    write_zip(&p, &e);
    let err = fails(&["info", "--model", s(&d)]);
    assert!(
        err.contains("pytorch_model.bin") && err.contains("past the end of the pickle"),
        "{err}"
    );
}

#[test]
fn a_pickle_that_copies_its_memo_exponentially_is_refused() {
    let d = bin_copy("bin-memo");
    let p = d.join("pytorch_model.bin");
    let mut e = zip_entries(&p);
    // A list, then forty rounds of "pair the memo entry with itself and memoize the pair": 2^40
    // objects from 200 bytes, were each get to be cloned.
    let mut bomb = vec![0x80, 2, b']', b'q', 0];
    for _ in 0..40 {
        bomb.extend_from_slice(&[b'h', 0, b'h', 0, 0x86, b'q', 0]);
    }
    bomb.push(b'.');
    e.iter_mut()
        .find(|(n, _)| n.ends_with("data.pkl"))
        .unwrap()
        .1 = bomb;
    write_zip(&p, &e);
    let err = fails(&["info", "--model", s(&d)]);
    assert!(
        err.contains("pytorch_model.bin") && err.contains("objects"),
        "{err}"
    );
}
