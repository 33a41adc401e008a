//! The hub client against a local stand-in for the hub (`pretrace_hub::fake`), serving the tiny
//! suite in tests/golden/sweep: the cache it writes, resume, verification and the errors.

use pretrace_hub::fake::{FakeHub, FakeRepo};
use pretrace_hub::{Cache, ClientOptions, HubClient, HubError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pretrace-hub-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const REPO: &str = "tiny/suite";

fn suite_hub() -> (FakeHub, BTreeMap<String, String>) {
    let mut repo = FakeRepo::default();
    let mut commits = BTreeMap::new();
    for step in ["step0", "step1000", "step143000"] {
        let c = repo
            .add_folder(step, &golden().join("sweep").join(step))
            .unwrap();
        commits.insert(step.to_string(), c);
    }
    repo.branches
        .push(("main".into(), commits["step143000"].clone()));
    let hub = FakeHub::start(BTreeMap::from([(REPO.to_string(), repo)])).unwrap();
    (hub, commits)
}

fn client(hub: &FakeHub, token: Option<&str>, timeout: Duration) -> HubClient {
    HubClient::new(ClientOptions {
        endpoint: hub.endpoint(),
        token: token.map(str::to_string),
        timeout,
    })
}

fn download(
    c: &HubClient,
    cache: &Cache,
    rev: &str,
    file: &str,
) -> pretrace_hub::Result<Option<pretrace_hub::Fetched>> {
    c.download(cache, REPO, rev, file, &mut |_, _| {})
}

#[test]
fn downloads_make_the_cache_huggingface_hub_makes() {
    let (hub, commits) = suite_hub();
    let root = tmp("layout");
    let cache = Cache::new(root.join("hub"));
    let c = client(&hub, None, Duration::from_secs(10));
    let got = download(&c, &cache, "step1000", "model.safetensors")
        .unwrap()
        .unwrap();
    let cfg = download(&c, &cache, "step1000", "config.json")
        .unwrap()
        .unwrap();
    assert!(got.new_blob && got.downloaded == got.size);
    let repo_dir = root.join("hub/models--tiny--suite");
    // refs/REV: the commit, no newline.
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/step1000")).unwrap(),
        commits["step1000"]
    );
    // Blobs named by ETag: sha256 for LFS files, git blob sha1 for the rest.
    let weights = std::fs::read(golden().join("sweep/step1000/model.safetensors")).unwrap();
    let sha = pretrace_core::sha256_hex(&weights);
    assert_eq!(got.blob, repo_dir.join("blobs").join(&sha));
    let link = std::fs::read_link(repo_dir.join(format!(
        "snapshots/{}/model.safetensors",
        commits["step1000"]
    )))
    .unwrap();
    assert_eq!(link, PathBuf::from(format!("../../blobs/{sha}")));
    assert_eq!(std::fs::read(&got.path).unwrap(), weights);
    let cfg_bytes = std::fs::read(golden().join("sweep/step1000/config.json")).unwrap();
    assert_eq!(std::fs::read(&cfg.path).unwrap(), cfg_bytes);
    assert_eq!(
        cfg.blob.file_name().unwrap().len(),
        40,
        "a git file's blob is its git sha1"
    );
    // No CACHEDIR.TAG: huggingface_hub 0.x (the one transformers 4.x needs) would scan it as a
    // broken repository.
    assert!(!root.join("hub/CACHEDIR.TAG").exists());
    // No temporary file is left.
    let left: Vec<_> = std::fs::read_dir(repo_dir.join("blobs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains(".incomplete"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A second download of the same blob transfers nothing.
    let again = download(&c, &cache, "step1000", "model.safetensors")
        .unwrap()
        .unwrap();
    assert_eq!(again.downloaded, 0);
    // A file the revision lacks is recorded in .no_exist.
    assert!(download(&c, &cache, "step1000", "tokenizer.model")
        .unwrap()
        .is_none());
    assert!(repo_dir
        .join(format!(".no_exist/{}/tokenizer.model", commits["step1000"]))
        .is_file());
    assert_eq!(
        cache
            .repo(REPO)
            .lookup(&commits["step1000"], "tokenizer.model"),
        pretrace_hub::Presence::Absent
    );
    // The APIs.
    let refs = c.refs(REPO).unwrap();
    let names: Vec<&str> = refs.branches.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["step0", "step1000", "step143000", "main"]);
    let info = c.revision(REPO, "main").unwrap();
    assert_eq!(info.commit, commits["step143000"]);
    assert!(info.files.contains(&"model.safetensors".to_string()));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_broken_off_download_resumes_where_it_stopped() {
    let (hub, _) = suite_hub();
    let root = tmp("resume");
    let cache = Cache::new(root.join("hub"));
    let c = client(&hub, None, Duration::from_secs(10));
    hub.faults.drop_after.store(100_000, Ordering::SeqCst);
    let e = download(&c, &cache, "step0", "model.safetensors").unwrap_err();
    assert!(matches!(e, HubError::Network { .. }), "{e}");
    assert!(e.to_string().contains("run again to resume"), "{e}");
    let blobs = root.join("hub/models--tiny--suite/blobs");
    let part: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".incomplete"))
        .collect();
    assert_eq!(part.len(), 1);
    let have = std::fs::metadata(&part[0]).unwrap().len();
    assert!((100_000..183_808).contains(&have), "{have}");
    // Nothing is visible under snapshots/ yet.
    assert!(!root
        .join("hub/models--tiny--suite/snapshots")
        .join(cache.repo(REPO).commit_of("step0").unwrap().unwrap())
        .join("model.safetensors")
        .exists());
    hub.faults.drop_after.store(0, Ordering::SeqCst);
    let sent_before = hub.sent.load(Ordering::SeqCst);
    let got = download(&c, &cache, "step0", "model.safetensors")
        .unwrap()
        .unwrap();
    assert_eq!(
        got.downloaded,
        got.size - have,
        "only the rest is transferred"
    );
    assert_eq!(
        hub.sent.load(Ordering::SeqCst) - sent_before,
        got.size - have
    );
    assert_eq!(
        std::fs::read(&got.path).unwrap(),
        std::fs::read(golden().join("sweep/step0/model.safetensors")).unwrap()
    );
    assert!(!part[0].exists());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_corrupt_download_is_deleted_and_never_appears() {
    let (hub, commits) = suite_hub();
    let root = tmp("corrupt");
    let cache = Cache::new(root.join("hub"));
    let c = client(&hub, None, Duration::from_secs(10));
    hub.faults.corrupt.store(true, Ordering::SeqCst);
    let e = download(&c, &cache, "step0", "model.safetensors").unwrap_err();
    assert!(matches!(e, HubError::Corrupt { .. }), "{e}");
    let blobs = root.join("hub/models--tiny--suite/blobs");
    assert_eq!(
        std::fs::read_dir(&blobs).unwrap().count(),
        0,
        "the corrupt file is gone"
    );
    assert!(!root
        .join(format!(
            "hub/models--tiny--suite/snapshots/{}/model.safetensors",
            commits["step0"]
        ))
        .exists());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn errors_say_what_the_hub_said() {
    let (hub, _) = suite_hub();
    let root = tmp("errors");
    let cache = Cache::new(root.join("hub"));
    let c = client(&hub, None, Duration::from_secs(10));
    let e = download(&c, &cache, "step999", "config.json").unwrap_err();
    assert!(matches!(e, HubError::NoRevision { .. }), "{e}");
    assert!(e.to_string().contains("step999"), "{e}");
    let e = c
        .download(
            &cache,
            "tiny/nothing",
            "main",
            "config.json",
            &mut |_, _| {},
        )
        .unwrap_err();
    assert!(matches!(e, HubError::Denied { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("no such repository, or it is private"),
        "{e}"
    );
    // A gated repository: 401 without a token, 403 with the wrong one, fine with the right one.
    {
        let mut repos = hub.repos.lock().unwrap();
        let r = repos.get_mut(REPO).unwrap();
        r.gated_token = Some("hf_right".into());
    }
    let e = download(&c, &cache, "main", "config.json").unwrap_err();
    assert!(
        matches!(
            e,
            HubError::Denied {
                status: 401,
                gated: true,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("set HF_TOKEN"), "{e}");
    let wrong = client(&hub, Some("hf_wrong"), Duration::from_secs(10));
    let e = download(&wrong, &cache, "main", "config.json").unwrap_err();
    assert!(matches!(e, HubError::Denied { status: 403, .. }), "{e}");
    let right = client(&hub, Some("hf_right"), Duration::from_secs(10));
    assert!(download(&right, &cache, "main", "config.json")
        .unwrap()
        .is_some());
    // Every message is one line.
    assert!(!e.to_string().contains('\n'));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_stalled_connection_times_out_and_then_resumes() {
    let (hub, _) = suite_hub();
    let root = tmp("stall");
    let cache = Cache::new(root.join("hub"));
    let c = client(&hub, None, Duration::from_millis(700));
    hub.faults.stall_after.store(65_536, Ordering::SeqCst);
    let t = Instant::now();
    let e = download(&c, &cache, "step0", "model.safetensors").unwrap_err();
    assert!(matches!(e, HubError::Stalled { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    hub.faults.stall_after.store(0, Ordering::SeqCst);
    let got = download(&c, &cache, "step0", "model.safetensors")
        .unwrap()
        .unwrap();
    assert!(
        got.downloaded < got.size,
        "resumed: {} of {}",
        got.downloaded,
        got.size
    );
    let _ = std::fs::remove_dir_all(&root);
}
