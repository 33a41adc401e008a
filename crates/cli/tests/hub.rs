//! Suites from the Hugging Face cache and from the hub (a local stand-in on 127.0.0.1 serving the
//! tiny suite in tests/golden/sweep): the same store as the folders give, revision names and
//! order, snapshot folders, what is missing offline, downloads under a disk budget, a kill in the
//! middle of a download and the resume, and the hub's refusals.

use pretrace_hub::fake::{FakeHub, FakeRepo};
use pretrace_hub::Cache;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

mod run;
use run::{bin, golden, s};

const REPO: &str = "tiny/suite";
const STEPS: [&str; 3] = ["step0", "step1000", "step143000"];

fn scratch(name: &str) -> PathBuf {
    run::scratch("hub", name)
}

/// `pretrace ARGS` with the cache at `cache`, the hub at `endpoint` (offline when `None`).
fn pretrace(cache: &Path, endpoint: Option<&str>, args: &[&str]) -> (bool, String) {
    let mut c = Command::new(bin());
    c.args(args)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HOME", cache.join("home"))
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env("HF_HUB_DOWNLOAD_TIMEOUT", "5");
    match endpoint {
        Some(e) => c.env("HF_ENDPOINT", e).env_remove("HF_HUB_OFFLINE"),
        None => c
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_ENDPOINT", "http://127.0.0.1:9"),
    };
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(cache: &Path, endpoint: Option<&str>, args: &[&str]) -> String {
    let (good, err) = pretrace(cache, endpoint, args);
    assert!(good, "pretrace {args:?}: {err}");
    err
}

fn fails(cache: &Path, endpoint: Option<&str>, args: &[&str]) -> String {
    let (good, err) = pretrace(cache, endpoint, args);
    assert!(!good, "expected failure: {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let last = err.trim_end().lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{err}");
    last
}

/// A cache holding the tiny suite as `hf download` leaves it: one commit per step branch, `main`
/// = step143000, blobs named by ETag and relative links.
fn cached_suite(root: &Path) -> Cache {
    let cache = Cache::new(root);
    let repo = cache.repo(REPO);
    for (k, step) in STEPS.iter().enumerate() {
        let commit = format!("{:040x}", 0xabc000 + k);
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            repo.import(
                &commit,
                f,
                &golden("sweep").join(step).join(f),
                f.ends_with(".safetensors"),
            )
            .unwrap();
        }
        repo.write_ref(step, &commit).unwrap();
        if *step == "step143000" {
            repo.write_ref("main", &commit).unwrap();
        }
    }
    cache
}

fn fake_suite() -> FakeHub {
    let mut repo = FakeRepo::default();
    let mut last = String::new();
    for step in STEPS {
        last = repo.add_folder(step, &golden("sweep").join(step)).unwrap();
    }
    repo.branches.push(("main".into(), last));
    FakeHub::start(BTreeMap::from([(REPO.to_string(), repo)])).unwrap()
}

/// Every entry's activations and manifest, with what names where the checkpoint came from
/// (its path, hub origin and file timestamps) left out.
fn store_contents(store: &Path) -> BTreeMap<String, (Vec<u8>, serde_json::Value)> {
    let mut out = BTreeMap::new();
    for ck in std::fs::read_dir(store).unwrap().filter_map(|e| e.ok()) {
        if !ck.path().is_dir() {
            continue;
        }
        for ds in std::fs::read_dir(ck.path()).unwrap().filter_map(|e| e.ok()) {
            let m = ds.path().join("manifest.json");
            if !m.is_file() {
                continue;
            }
            let mut v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
            let c = v["checkpoint"].as_object_mut().unwrap();
            c.remove("path");
            c.remove("hub");
            for w in c["weights"].as_array_mut().unwrap() {
                w.as_object_mut().unwrap().remove("modified_ns");
            }
            v.as_object_mut().unwrap().remove("created");
            let key = format!(
                "{}/{}",
                ck.file_name().to_string_lossy(),
                ds.file_name().to_string_lossy()
            );
            out.insert(
                key,
                (
                    std::fs::read(ds.path().join("activations.safetensors")).unwrap(),
                    v,
                ),
            );
        }
    }
    out
}

fn data() -> String {
    s(&golden("sweep/texts.csv")).to_string()
}

#[test]
fn a_suite_from_the_cache_gives_the_store_the_folders_give() {
    let d = scratch("identity");
    let cache = cached_suite(&d.join("cache"));
    let data = data();
    ok(
        &d.join("cache"),
        None,
        &[
            "extract",
            "--checkpoints",
            s(&golden("sweep")),
            "--data",
            &data,
            "--out",
            s(&d.join("folders")),
            "--layers",
            "0,1",
        ],
    );
    let err = ok(
        &d.join("cache"),
        None,
        &[
            "extract",
            "--checkpoints",
            "hf:tiny/suite",
            "--revisions",
            "all",
            "--data",
            &data,
            "--out",
            s(&d.join("cached")),
            "--layers",
            "0,1",
        ],
    );
    assert!(
        err.contains("main is the same commit as step143000"),
        "{err}"
    );
    let a = store_contents(&d.join("folders"));
    let b = store_contents(&d.join("cached"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert_eq!(a.len(), 3);
    for (k, (acts, man)) in &a {
        assert!(acts == &b[k].0, "{k}: activations differ");
        assert_eq!(man, &b[k].1, "{k}");
    }
    // The manifest records the reference and the commit.
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("cached/step1000/texts/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        m["checkpoint"]["hub"]["reference"],
        "hf:tiny/suite@step1000"
    );
    assert_eq!(
        m["checkpoint"]["hub"]["commit"],
        cache.repo(REPO).commit_of("step1000").unwrap().unwrap()
    );
    // A rerun resumes: nothing to do.
    let err = ok(
        &d.join("cache"),
        None,
        &[
            "extract",
            "--checkpoints",
            "hf:tiny/suite",
            "--revisions",
            "step*",
            "--data",
            &data,
            "--out",
            s(&d.join("cached")),
            "--layers",
            "0,1",
        ],
    );
    assert!(
        err.contains("0 entries written, 3 already current"),
        "{err}"
    );
}

#[test]
fn snapshot_folders_are_named_by_their_refs_never_by_their_hash() {
    let d = scratch("snapshots");
    let cache = cached_suite(&d.join("cache"));
    let repo = cache.repo(REPO);
    let data = data();
    let err = ok(
        &d.join("cache"),
        None,
        &[
            "extract",
            "--checkpoints",
            s(&repo.dir.join("snapshots")),
            "--data",
            &data,
            "--out",
            s(&d.join("out")),
            "--layers",
            "0",
        ],
    );
    for (k, step) in STEPS.iter().enumerate() {
        assert!(
            err.contains(&format!("checkpoint {}: {step}", k + 1)),
            "{err}"
        );
    }
    // A snapshot that no ref names cannot be placed in training order.
    let orphan = format!("{:040x}", 0xdef);
    repo.import(
        &orphan,
        "config.json",
        &golden("sweep/step0/config.json"),
        false,
    )
    .unwrap();
    let e = fails(
        &d.join("cache"),
        None,
        &[
            "extract",
            "--checkpoints",
            s(&repo.dir.join("snapshots")),
            "--data",
            &data,
            "--out",
            s(&d.join("out2")),
        ],
    );
    assert!(
        e.contains("no ref in refs/ names the snapshot(s) 000000000000"),
        "{e}"
    );
    assert!(e.contains("not a step"), "{e}");
    // A folder of hash-named checkpoints is refused rather than read as steps.
    let hashes = d.join("hashes");
    for (k, step) in STEPS.iter().enumerate() {
        let dst = hashes.join(format!("{:040x}", 0x1234 + k));
        std::fs::create_dir_all(&dst).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(golden("sweep").join(step).join(f), dst.join(f)).unwrap();
        }
    }
    let e = fails(
        &d.join("cache"),
        None,
        &[
            "extract",
            "--checkpoints",
            s(&hashes),
            "--data",
            &data,
            "--out",
            s(&d.join("out3")),
        ],
    );
    assert!(e.contains("named like a commit hash"), "{e}");
}

#[test]
fn offline_what_is_missing_is_listed_with_the_commands_that_fetch_it() {
    let d = scratch("offline");
    let cache = cached_suite(&d.join("cache"));
    // step1000's weights are gone from the cache.
    let repo = cache.repo(REPO);
    let c = repo.commit_of("step1000").unwrap().unwrap();
    std::fs::remove_file(repo.snapshot_dir(&c).join("model.safetensors")).unwrap();
    let data = data();
    let e = fails(
        &d.join("cache"),
        None,
        &[
            "extract",
            "--checkpoints",
            "hf:tiny/suite",
            "--revisions",
            "step0,step1000,step5",
            "--data",
            &data,
            "--out",
            s(&d.join("out")),
        ],
    );
    assert!(e.contains("offline: HF_HUB_OFFLINE is set"), "{e}");
    assert!(e.contains("revision step5"), "{e}");
    assert!(e.contains("step1000: the weights"), "{e}");
    assert!(e.contains("hf download tiny/suite --revision step5"), "{e}");
    assert!(
        e.contains("hf download tiny/suite --revision step1000"),
        "{e}"
    );
    assert!(!e.contains("revision step0 "), "{e}");
    // .no_exist: a file known to be absent is not fetched again, and is no error.
    repo.mark_absent(&c, "tokenizer.model").unwrap();
    assert_eq!(
        repo.lookup(&c, "tokenizer.model"),
        pretrace_hub::Presence::Absent
    );
    // A model by reference, from the cache.
    let out = d.join("f.safetensors");
    ok(
        &d.join("cache"),
        None,
        &[
            "forward",
            "--model",
            "hf:tiny/suite@step0",
            "--text",
            "hello",
            "--out",
            s(&out),
        ],
    );
    let e = fails(
        &d.join("cache"),
        None,
        &[
            "forward",
            "--model",
            "hf:tiny/suite@step999",
            "--text",
            "hello",
            "--out",
            s(&out),
        ],
    );
    assert!(e.contains("revision step999"), "{e}");
}

#[test]
fn a_sweep_from_an_empty_cache_downloads_under_the_budget_and_resumes_without_downloading() {
    let hub = fake_suite();
    let d = scratch("online");
    let cache = d.join("cache");
    let data = data();
    let ep = hub.endpoint();
    ok(
        &cache,
        None,
        &[
            "extract",
            "--checkpoints",
            s(&golden("sweep")),
            "--data",
            &data,
            "--out",
            s(&d.join("folders")),
            "--layers",
            "0,1",
        ],
    );
    // A budget that holds two checkpoints' weights and tokenizers, not three.
    let err = ok(
        &cache,
        Some(&ep),
        &[
            "extract",
            "--checkpoints",
            "hf:tiny/suite",
            "--revisions",
            "step*",
            "--data",
            &data,
            "--out",
            s(&d.join("online")),
            "--layers",
            "0,1",
            "--cache-budget",
            "400K",
        ],
    );
    assert!(err.contains("evicted step0"), "{err}");
    if std::env::var("PRETRACE_SHOW").is_ok() {
        eprintln!("{err}");
    }
    let a = store_contents(&d.join("folders"));
    let b = store_contents(&d.join("online"));
    assert_eq!(a.len(), 3);
    for (k, (acts, man)) in &a {
        assert!(acts == &b[k].0, "{k}: activations differ");
        assert_eq!(man, &b[k].1, "{k}");
    }
    // What is left in the cache fits the budget, and no link is left dangling.
    let blobs: u64 = std::fs::read_dir(cache.join("models--tiny--suite/blobs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(blobs <= 400 << 10, "{blobs}");
    for snap in std::fs::read_dir(cache.join("models--tiny--suite/snapshots"))
        .unwrap()
        .filter_map(|e| e.ok())
    {
        for f in std::fs::read_dir(snap.path())
            .unwrap()
            .filter_map(|e| e.ok())
        {
            assert!(f.path().is_file(), "{} dangles", f.path().display());
        }
    }
    // A rerun skips every finished checkpoint and downloads nothing.
    let before = hub.sent.load(Ordering::SeqCst);
    let err = ok(
        &cache,
        Some(&ep),
        &[
            "extract",
            "--checkpoints",
            "hf:tiny/suite",
            "--revisions",
            "step*",
            "--data",
            &data,
            "--out",
            s(&d.join("online")),
            "--layers",
            "0,1",
            "--cache-budget",
            "400K",
        ],
    );
    assert!(err.contains("3 already current"), "{err}");
    assert_eq!(hub.sent.load(Ordering::SeqCst), before);
    // A checkpoint larger than the budget is refused before anything downloads.
    let e = fails(
        &d.join("cache2"),
        Some(&ep),
        &[
            "extract",
            "--checkpoints",
            "hf:tiny/suite@step0",
            "--data",
            &data,
            "--out",
            s(&d.join("o2")),
            "--cache-budget",
            "100K",
        ],
    );
    assert!(e.contains("more than the cache budget"), "{e}");
    assert!(
        !d.join("cache2/models--tiny--suite/blobs").exists()
            || std::fs::read_dir(d.join("cache2/models--tiny--suite/blobs"))
                .unwrap()
                .all(|e| !e
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".safetensors"))
    );
}

#[test]
fn a_download_killed_midway_resumes_and_the_hubs_refusals_are_one_line() {
    let hub = fake_suite();
    let d = scratch("kill");
    let cache = d.join("cache");
    let data = data();
    let ep = hub.endpoint();
    // Slow enough to be caught in the middle.
    hub.faults.bytes_per_sec.store(60_000, Ordering::SeqCst);
    let mut child = Command::new(bin())
        .args([
            "forward",
            "--model",
            "hf:tiny/suite@step0",
            "--text",
            "hello",
            "--out",
            s(&d.join("f.safetensors")),
        ])
        .env("HF_HUB_CACHE", &cache)
        .env("HF_ENDPOINT", &ep)
        .env_remove("HF_HUB_OFFLINE")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let blobs = cache.join("models--tiny--suite/blobs");
    let t = std::time::Instant::now();
    let part = loop {
        let p = std::fs::read_dir(&blobs).ok().and_then(|rd| {
            rd.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
                p.to_string_lossy().ends_with(".incomplete")
                    && p.metadata().is_ok_and(|m| m.len() > 30_000)
            })
        });
        if let Some(p) = p {
            break p;
        }
        assert!(t.elapsed().as_secs() < 30, "no partial download appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let have = part.metadata().unwrap().len();
    assert!(have < 183_808);
    // The killed client's connection may still be draining on the server: count from when the
    // server has stopped sending to it.
    let mut before = hub.sent.load(Ordering::SeqCst);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = hub.sent.load(Ordering::SeqCst);
        if now == before {
            break;
        }
        before = now;
    }
    hub.faults.bytes_per_sec.store(0, Ordering::SeqCst);
    ok(
        &cache,
        Some(&ep),
        &[
            "forward",
            "--model",
            "hf:tiny/suite@step0",
            "--text",
            "hello",
            "--out",
            s(&d.join("f.safetensors")),
        ],
    );
    let sent = hub.sent.load(Ordering::SeqCst) - before;
    assert!(sent < 183_808, "resumed, not restarted: {sent} bytes sent");
    // The same forward pass as from the folder.
    ok(
        &cache,
        None,
        &[
            "forward",
            "--model",
            s(&golden("sweep/step0")),
            "--text",
            "hello",
            "--out",
            s(&d.join("g.safetensors")),
        ],
    );
    let tensors = |p: &Path| {
        let b = std::fs::read(p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&b).unwrap();
        st.tensor("logits").unwrap().data().to_vec()
    };
    assert_eq!(
        tensors(&d.join("f.safetensors")),
        tensors(&d.join("g.safetensors"))
    );
    // A revision the hub does not have; a gated repository without a token.
    let e = fails(
        &d.join("c3"),
        Some(&ep),
        &[
            "extract",
            "--checkpoints",
            "hf:tiny/suite",
            "--revisions",
            "step7",
            "--data",
            &data,
            "--out",
            s(&d.join("o3")),
        ],
    );
    assert!(e.contains("no revision 'step7'"), "{e}");
    hub.repos.lock().unwrap().get_mut(REPO).unwrap().gated_token = Some("hf_x".into());
    let e = fails(
        &d.join("c4"),
        Some(&ep),
        &["info", "--model", "hf:tiny/suite@step0"],
    );
    assert!(e.contains("gated") && e.contains("HF_TOKEN"), "{e}");
}

/// LLM360 Amber's layout: checkpoint branches `ckpt_*` with config and weights only, the tokenizer
/// on `main`.
#[test]
fn revisions_without_a_tokenizer_take_mains_and_say_so() {
    let d = scratch("amber");
    let mut repo = FakeRepo::default();
    for (k, step) in STEPS.iter().enumerate() {
        let dir = d.join("src").join(step);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["config.json", "model.safetensors"] {
            std::fs::copy(golden("sweep").join(step).join(f), dir.join(f)).unwrap();
        }
        repo.add_folder(&format!("ckpt_{k:03}"), &dir).unwrap();
    }
    let main = repo
        .add_folder("main", &golden("sweep").join("step143000"))
        .unwrap();
    let hub = FakeHub::start(BTreeMap::from([(REPO.to_string(), repo)])).unwrap();
    let cache = d.join("cache");
    let data = data();
    let args = |out: &Path| {
        vec![
            "extract".to_string(),
            "--checkpoints".into(),
            "hf:tiny/suite".into(),
            "--revisions".into(),
            "ckpt_*".into(),
            "--data".into(),
            data.clone(),
            "--out".into(),
            s(out).into(),
            "--layers".into(),
            "0,1".into(),
        ]
    };
    let a = args(&d.join("online"));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let err = ok(&cache, Some(&hub.endpoint()), &a);
    assert!(
        err.contains(
            "hf:tiny/suite@ckpt_000 ships no tokenizer: taking the tokenizer of hf:tiny/suite@main"
        ),
        "{err}"
    );
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("online/ckpt_001/texts/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        m["checkpoint"]["hub"]["tokenizer"],
        format!("hf:tiny/suite@main (commit {main})")
    );
    assert_eq!(
        m["checkpoint"]["hub"]["reference"],
        "hf:tiny/suite@ckpt_001"
    );
    // Offline, the cached main tokenizer serves, and a second store equals the first.
    let b = args(&d.join("offline"));
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    ok(&cache, None, &b);
    assert_eq!(
        store_contents(&d.join("online")),
        store_contents(&d.join("offline"))
    );
    // --tokenizer names another source for every checkpoint, recorded as such.
    let mut c = args(&d.join("explicit"));
    c.extend(["--tokenizer".into(), s(&golden("sweep/step0")).into()]);
    let c: Vec<&str> = c.iter().map(String::as_str).collect();
    let err = ok(&cache, None, &c);
    assert!(
        err.contains("the tokenizer of every checkpoint comes from"),
        "{err}"
    );
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("explicit/ckpt_000/texts/manifest.json")).unwrap(),
    )
    .unwrap();
    assert!(m["checkpoint"]["hub"]["tokenizer"]
        .as_str()
        .unwrap()
        .ends_with("sweep/step0"));
    // The vector built from such a store names the hub source and its commit.
    let vec = d.join("v.safetensors");
    ok(
        &cache,
        None,
        &[
            "steer",
            "build",
            "--store",
            s(&d.join("online")),
            "--checkpoint",
            "ckpt_001",
            "--dataset",
            "texts",
            "--layers",
            "1",
            "--out",
            s(&vec),
        ],
    );
    let bytes = std::fs::read(&vec).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let meta = &header["__metadata__"];
    assert_eq!(meta["source_hub"], "hf:tiny/suite@ckpt_001");
    assert_eq!(
        meta["source_tokenizer"],
        format!("hf:tiny/suite@main (commit {main})")
    );
    assert!(meta["source_commit"].as_str().unwrap().len() == 40);
}

#[test]
fn an_experiment_file_takes_its_suite_and_chat_model_from_the_hub() {
    let d = scratch("experiment");
    let cache = d.join("cache");
    cached_suite(&cache);
    let data = data();
    let file = d.join("hub.toml");
    std::fs::write(
        &file,
        format!(
            r#"title = "tiny suite from the hub"
datasets = ["{data}"]
[models]
suite = "hf:{REPO}"
revisions = "step*"
chat = "hf:{REPO}@step143000"
[probe]
protocol = "paper"
[steer]
sources = ["mid"]
layer = 1
alphas = [4.0]
[[trust]]
task = "sst2"
data = "{data}"
dataset = "texts"
sign = -1
"#
        ),
    )
    .unwrap();
    // The printed commands name the hub references as given.
    let out = Command::new(bin())
        .args(["run", s(&file), "--out", s(&d.join("dry")), "--dry-run"])
        .env("HF_HUB_CACHE", &cache)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        format!("pretrace extract --checkpoints hf:{REPO} --revisions 'step*' --data"),
        format!("pretrace eval --model hf:{REPO}@step143000 --task sst2"),
    ] {
        assert!(text.contains(&want), "{want} missing from:\n{text}");
    }
    // Run from the cache, offline: the store is the folders' store, entries named by revision.
    let run_dir = d.join("run");
    ok(&cache, None, &["run", s(&file), "--out", s(&run_dir)]);
    let folders = d.join("folders");
    ok(
        &cache,
        None,
        &[
            "extract",
            "--checkpoints",
            s(&golden("sweep")),
            "--data",
            &data,
            "--out",
            s(&folders),
        ],
    );
    let got = store_contents(&run_dir.join("store"));
    assert_eq!(
        got.keys().cloned().collect::<Vec<_>>(),
        STEPS
            .iter()
            .map(|st| format!("{st}/texts"))
            .collect::<Vec<_>>()
    );
    assert_eq!(got, store_contents(&folders));
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("store/step1000/texts/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        m["checkpoint"]["hub"]["reference"],
        format!("hf:{REPO}@step1000")
    );
    // The chat model's unsteered score is the folder's, and the mid source is step1000.
    let plain = d.join("plain");
    ok(
        &cache,
        None,
        &[
            "eval",
            "--model",
            s(&golden("sweep/step143000")),
            "--task",
            "sst2",
            "--data",
            &data,
            "--out",
            s(&plain),
        ],
    );
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("experiment.json")).unwrap())
            .unwrap();
    let rows = exp["results"].as_array().unwrap();
    let plain: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(plain.join("results.json")).unwrap())
            .unwrap();
    let unsteered = rows
        .iter()
        .find(|r| r["source"].is_null() && r["task"] == "sst2")
        .unwrap();
    assert_eq!(unsteered["value"], plain["metrics"]["acc"]);
    assert!(
        rows.iter()
            .any(|r| r["source"] == "step1000" && r["source_role"] == "mid"),
        "{rows:?}"
    );
    // `revisions` belongs to a hub suite.
    std::fs::write(
        &file,
        format!(
            "datasets = [\"{data}\"]\n[models]\nsuite = \"{}\"\nrevisions = \"step*\"\n",
            s(&golden("sweep"))
        ),
    )
    .unwrap();
    let e = fails(&cache, None, &["run", s(&file), "--out", s(&d.join("bad"))]);
    assert!(e.contains("hub.toml") && e.contains("revisions"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}
