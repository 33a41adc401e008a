//! Checkpoint suites: one checkpoint per training step, ordered by the step parsed from each name
//! (Amber `ckpt_000`, Pythia `step143000`, OLMo `stage1-step1000-tokens4B`, HF Trainer
//! `checkpoint-500`, any name with a number), never lexicographically.

use crate::cache::{Cache, RepoCache};
use crate::error::{HubError, Result};
use crate::reference::is_commit;
use std::path::{Path, PathBuf};

/// One checkpoint of a suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRef {
    /// Directory (or GGUF file stem) name; entries in the store are named after it.
    pub name: String,
    pub path: PathBuf,
    pub step: Option<u64>,
    /// Tokens seen, where the name says (`tokens4B` = 4·10⁹).
    pub tokens: Option<u64>,
    /// Where it came from on the Hugging Face hub, when it did.
    pub hub: Option<HubSource>,
    /// Where its tokenizer comes from when not from its own folder (`--tokenizer`, or the
    /// repository's `main` for a revision that ships none).
    pub tokenizer: Option<TokenizerSource>,
}

/// A tokenizer taken from elsewhere: the folder with its files, and what to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerSource {
    pub path: PathBuf,
    /// `hf:ORG/NAME@REVISION (commit C)` or the folder.
    pub reference: String,
}

/// A checkpoint's place on the hub: repository, revision and the commit it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSource {
    /// `ORG/NAME`.
    pub repo: String,
    /// The revision as named (`step1000`, `main`, or a commit).
    pub revision: String,
    /// The 40-hex commit.
    pub commit: String,
}

impl HubSource {
    /// `hf:ORG/NAME@REVISION`.
    pub fn reference(&self) -> String {
        format!("hf:{}@{}", self.repo, self.revision)
    }
}

/// Digits starting at byte `i` of `s`, as a number.
fn digits_at(s: &[u8], i: usize) -> Option<(u64, usize)> {
    let end = i + s[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if end == i {
        return None;
    }
    std::str::from_utf8(&s[i..end])
        .ok()?
        .parse()
        .ok()
        .map(|v| (v, end))
}

/// The training step and tokens seen that a checkpoint name says: the number after `step` if there
/// is one, otherwise the last number in the name; tokens from `tokens<N>[KMBT]`.
pub fn parse_name(name: &str) -> (Option<u64>, Option<u64>) {
    let lower = name.to_ascii_lowercase();
    let b = lower.as_bytes();
    let after = |key: &str| -> Option<(u64, usize)> {
        let mut from = 0;
        while let Some(p) = lower[from..].find(key) {
            let mut i = from + p + key.len();
            while i < b.len() && (b[i] == b'-' || b[i] == b'_') {
                i += 1;
            }
            if let Some(v) = digits_at(b, i) {
                return Some(v);
            }
            from += p + key.len();
        }
        None
    };
    let tokens = after("tokens").map(|(v, end)| {
        let scale = match b.get(end) {
            Some(b'k') => 1_000,
            Some(b'm') => 1_000_000,
            Some(b'b') | Some(b'g') => 1_000_000_000,
            Some(b't') => 1_000_000_000_000,
            _ => 1,
        };
        v.saturating_mul(scale)
    });
    let step = after("step").map(|(v, _)| v).or_else(|| {
        // The last run of digits that is not the token count.
        let mut last = None;
        let mut i = 0;
        while i < b.len() {
            if let Some((v, end)) = digits_at(b, i) {
                let is_tokens = lower[..i].ends_with("tokens");
                if !is_tokens {
                    last = Some(v);
                }
                i = end;
            } else {
                i += 1;
            }
        }
        last
    });
    (step, tokens)
}

fn is_checkpoint(p: &Path) -> bool {
    (p.is_dir() && p.join("config.json").is_file())
        || (p.is_file()
            && p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf")))
}

fn checkpoint_ref(p: &Path) -> CheckpointRef {
    let name = if p.is_file() {
        p.file_stem()
    } else {
        p.file_name()
    }
    .map(|n| n.to_string_lossy().to_string())
    .unwrap_or_else(|| "model".into());
    let (step, tokens) = parse_name(&name);
    CheckpointRef {
        name,
        path: p.to_path_buf(),
        step,
        tokens,
        hub: None,
        tokenizer: None,
    }
}

/// Sorts by step (names without one last), then tokens, then name.
pub fn sort_by_step(suite: &mut [CheckpointRef]) {
    suite.sort_by(|a, b| {
        (a.step.is_none(), a.step, a.tokens, &a.name).cmp(&(
            b.step.is_none(),
            b.step,
            b.tokens,
            &b.name,
        ))
    });
}

/// Where `path` sits in a Hugging Face cache: the repository's cache and, for a snapshot folder,
/// its commit. `path` may be `models--ORG--NAME`, its `snapshots/` folder or `snapshots/COMMIT`.
pub fn in_hf_cache(path: &Path) -> Option<(RepoCache, Option<String>)> {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().to_string());
    let repo_of = |dir: &Path| -> Option<RepoCache> {
        let n = name(dir)?;
        let rest = n.strip_prefix("models--")?;
        let (org, model) = rest.split_once("--")?;
        if !dir.join("snapshots").is_dir() {
            return None;
        }
        let root = dir.parent().unwrap_or(Path::new(""));
        Some(Cache::new(root).repo(&format!("{org}/{model}")))
    };
    let last = name(path)?;
    if let Some(r) = repo_of(path) {
        return Some((r, None));
    }
    let parent = path.parent()?;
    if last == "snapshots" {
        return repo_of(parent).map(|r| (r, None));
    }
    if name(parent).as_deref() == Some("snapshots") && is_commit(&last) {
        return repo_of(parent.parent()?).map(|r| (r, Some(last)));
    }
    None
}

/// The name a cached snapshot goes by: the ref that points at it and says a step (`step1000`
/// rather than `main` when both do), else `main` or another ref; `None` when no ref points at it.
fn ref_name(refs: &[String]) -> Option<&String> {
    refs.iter()
        .find(|r| parse_name(r).0.is_some())
        .or_else(|| refs.iter().find(|r| *r == "main"))
        .or_else(|| refs.first())
}

/// The checkpoints of a repository's cache folder (`models--ORG--NAME` or its `snapshots/`): one
/// per snapshot, named and ordered by the refs that point at it. A snapshot no ref names cannot
/// be placed in training order, and is an error (a commit hash is never read as a step).
fn discover_cached(repo: &RepoCache, only: Option<&str>) -> Result<Vec<CheckpointRef>> {
    let refs = repo.refs()?;
    let commits = match only {
        Some(c) => vec![c.to_string()],
        None => repo.snapshots(),
    };
    let mut out = Vec::new();
    let mut unnamed = Vec::new();
    for commit in commits {
        let dir = repo.snapshot_dir(&commit);
        if !is_checkpoint(&dir) {
            continue;
        }
        let names: Vec<String> = refs
            .iter()
            .filter(|(_, c)| *c == commit)
            .map(|(r, _)| r.clone())
            .collect();
        let Some(name) = ref_name(&names) else {
            unnamed.push(commit);
            continue;
        };
        let (step, tokens) = parse_name(name);
        out.push(CheckpointRef {
            name: name.clone(),
            path: dir,
            step,
            tokens,
            hub: Some(HubSource {
                repo: repo.repo.clone(),
                revision: name.clone(),
                commit,
            }),
            tokenizer: None,
        });
    }
    if !unnamed.is_empty() && (only.is_some() || !out.is_empty() || unnamed.len() > 1) {
        let shown: Vec<&str> = unnamed.iter().map(|c| &c[..12]).take(6).collect();
        return Err(HubError::at(
            &repo.dir.join("snapshots"),
            format!(
                "no ref in refs/ names the snapshot(s) {}{}, so their training steps are unknown (a commit hash is not a step); name the revisions instead: --checkpoints hf:{} --revisions REV,REV",
                shown.join(", "),
                if unnamed.len() > 6 { ", …" } else { "" },
                repo.repo
            ),
        ));
    }
    if out.is_empty() {
        if let [commit] = unnamed.as_slice() {
            // A lone snapshot no ref names: one model, no step.
            let dir = repo.snapshot_dir(commit);
            return Ok(vec![CheckpointRef {
                name: commit.clone(),
                path: dir,
                step: None,
                tokens: None,
                hub: Some(HubSource {
                    repo: repo.repo.clone(),
                    revision: commit.clone(),
                    commit: commit.clone(),
                }),
                tokenizer: None,
            }]);
        }
        return Err(HubError::at(
            &repo.dir,
            "no cached snapshot here holds a checkpoint (config.json); fetch one with: hf download ORG/NAME --revision REV",
        ));
    }
    sort_by_step(&mut out);
    Ok(out)
}

/// The checkpoints at `path`: a single checkpoint directory or GGUF file, a directory holding one
/// checkpoint per training step, ordered by step (names without a number go last, by name), or a
/// Hugging Face cache folder (`models--ORG--NAME`, its `snapshots/`, or one snapshot), whose
/// checkpoints are named and ordered by the refs that point at them.
pub fn discover(path: &Path) -> Result<Vec<CheckpointRef>> {
    if !path.exists() {
        return Err(HubError::at(
            path,
            "no such checkpoint or checkpoint directory",
        ));
    }
    if let Some((repo, commit)) = in_hf_cache(path) {
        return discover_cached(&repo, commit.as_deref());
    }
    if is_checkpoint(path) {
        // A lone model's name rarely states a step ("…Q4_1" is a quantization): read one only
        // where the name says it is a training checkpoint.
        let mut c = checkpoint_ref(path);
        let lower = c.name.to_ascii_lowercase();
        let says_step = ["step", "ckpt", "checkpoint", "iter"]
            .iter()
            .any(|k| lower.contains(k))
            || lower.chars().all(|ch| ch.is_ascii_digit());
        if !says_step || is_commit(&c.name) {
            c.step = None;
        }
        return Ok(vec![c]);
    }
    if !path.is_dir() {
        return Err(HubError::at(
            path,
            "not a checkpoint: give a directory with config.json, a .gguf file, or a directory of checkpoints",
        ));
    }
    let mut out: Vec<CheckpointRef> = std::fs::read_dir(path)
        .map_err(|e| HubError::at(path, format!("cannot list: {e}")))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| is_checkpoint(p))
        .map(|p| checkpoint_ref(&p))
        .collect();
    if out.is_empty() {
        return Err(HubError::at(
            path,
            "no checkpoints here: expected subdirectories with config.json (or .gguf files), one per training step",
        ));
    }
    if let Some(c) = out.iter().find(|c| is_commit(&c.name)) {
        return Err(HubError::at(
            path,
            format!(
                "'{}' is named like a commit hash, which says no training step; copy the checkpoints into folders named by step, or name them from the hub: --checkpoints hf:ORG/NAME --revisions REV,REV",
                c.name
            ),
        ));
    }
    sort_by_step(&mut out);
    Ok(out)
}

/// Which checkpoints of a suite to run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Steps to keep: a list (`0,1000,2000`) or an inclusive range (`1000..5000`).
    pub steps: Option<String>,
    /// Keep every k-th checkpoint (after `steps`), starting with the first.
    pub every: Option<usize>,
    /// Keep at most N checkpoints spaced evenly in log(step) (after `steps`), first and last included.
    pub log_spaced: Option<usize>,
}

impl Selection {
    pub fn apply(&self, suite: Vec<CheckpointRef>) -> Result<Vec<CheckpointRef>> {
        let mut s = suite;
        let bad = |m: String| HubError::Invalid(m);
        if let Some(spec) = &self.steps {
            let spec = spec.trim();
            if let Some((lo, hi)) = spec.split_once("..") {
                let parse = |v: &str, what: &str| -> Result<u64> {
                    v.trim().parse().map_err(|_| {
                        bad(format!("--steps {spec}: {what} '{v}' is not a step number; write A..B or A,B,C"))
                    })
                };
                let (lo, hi) = (parse(lo, "start")?, parse(hi, "end")?);
                s.retain(|c| c.step.is_some_and(|st| st >= lo && st <= hi));
            } else {
                let mut want = Vec::new();
                for v in spec.split(',') {
                    let st: u64 = v.trim().parse().map_err(|_| {
                        bad(format!(
                            "--steps {spec}: '{v}' is not a step number; write A..B or A,B,C"
                        ))
                    })?;
                    if !s.iter().any(|c| c.step == Some(st)) {
                        let steps: Vec<String> = s
                            .iter()
                            .filter_map(|c| c.step)
                            .map(|x| x.to_string())
                            .collect();
                        let shown = if steps.len() > 12 {
                            format!(
                                "{} … {} ({} checkpoints)",
                                steps[..6].join(", "),
                                steps[steps.len() - 3..].join(", "),
                                steps.len()
                            )
                        } else {
                            steps.join(", ")
                        };
                        return Err(bad(format!(
                            "--steps: step {st} is not in the suite; its steps are {shown}"
                        )));
                    }
                    want.push(st);
                }
                s.retain(|c| c.step.is_some_and(|st| want.contains(&st)));
            }
            if s.is_empty() {
                return Err(bad(format!("--steps {spec} selects no checkpoint")));
            }
        }
        if let Some(k) = self.every {
            if k == 0 {
                return Err(bad("--every must be at least 1".into()));
            }
            s = s.into_iter().step_by(k).collect();
        }
        if let Some(n) = self.log_spaced {
            s = log_spaced(s, n)?;
        }
        Ok(s)
    }
}

/// At most `n` checkpoints spaced evenly in log(step): step 0 (if present), the last, and those
/// nearest to geometric targets between the smallest positive step and the largest.
fn log_spaced(s: Vec<CheckpointRef>, n: usize) -> Result<Vec<CheckpointRef>> {
    if n < 2 {
        return Err(HubError::Invalid("--log-spaced needs at least 2".into()));
    }
    if s.len() <= n {
        return Ok(s);
    }
    let mut keep = vec![false; s.len()];
    keep[0] = true;
    keep[s.len() - 1] = true;
    let positive: Vec<(usize, f64)> = s
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.step.filter(|&st| st > 0).map(|st| (i, (st as f64).ln())))
        .collect();
    if let (Some(&(_, lo)), Some(&(_, hi))) = (positive.first(), positive.last()) {
        let slots = n - keep.iter().filter(|&&k| k).count();
        let count = slots + 1;
        for j in 0..count {
            let target = lo + (hi - lo) * j as f64 / (count - 1).max(1) as f64;
            if let Some(&(i, _)) = positive
                .iter()
                .min_by(|a, b| (a.1 - target).abs().total_cmp(&(b.1 - target).abs()))
            {
                keep[i] = true;
            }
        }
    }
    let mut out: Vec<CheckpointRef> = s
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(c, _)| c)
        .collect();
    out.truncate(n.max(2));
    Ok(out)
}

/// `(model_type, width, layers)` from a checkpoint directory's config.json, for the up-front check
/// that a sweep holds one architecture.
pub fn shape_of(dir: &Path) -> Result<Option<(String, u64, u64)>> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| HubError::at(&path, format!("cannot read: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| HubError::at(&path, format!("not valid JSON ({e})")))?;
    let num = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.get(*k).and_then(|x| x.as_u64()))
            .unwrap_or(0)
    };
    let arch = v
        .get("model_type")
        .and_then(|x| x.as_str())
        .unwrap_or("?")
        .to_string();
    Ok(Some((
        arch,
        num(&["hidden_size", "n_embd", "d_model"]),
        num(&["num_hidden_layers", "n_layer", "n_layers"]),
    )))
}

/// Fails, naming the odd checkpoint's config.json and field, unless every checkpoint directory of
/// the suite has the first one's architecture, width and depth.
pub fn check_uniform(suite: &[CheckpointRef]) -> Result<()> {
    let mut first: Option<(&CheckpointRef, (String, u64, u64))> = None;
    for c in suite {
        let Some(shape) = shape_of(&c.path)? else {
            continue;
        };
        match &first {
            None => first = Some((c, shape)),
            Some((f, want)) => {
                let fields = [
                    ("model_type", want.0.clone(), shape.0.clone()),
                    (
                        "width (hidden_size)",
                        want.1.to_string(),
                        shape.1.to_string(),
                    ),
                    (
                        "layers (num_hidden_layers)",
                        want.2.to_string(),
                        shape.2.to_string(),
                    ),
                ];
                if let Some((field, w, got)) = fields.into_iter().find(|(_, w, g)| w != g) {
                    return Err(HubError::at(
                        &c.path.join("config.json"),
                        format!(
                            "{field} is {got}, but the sweep's first checkpoint '{}' has {w}; a sweep holds checkpoints of one model: run the others separately",
                            f.name
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_name;

    #[test]
    fn names_of_real_suites() {
        assert_eq!(parse_name("ckpt_000"), (Some(0), None));
        assert_eq!(parse_name("ckpt_358"), (Some(358), None));
        assert_eq!(parse_name("step143000"), (Some(143000), None));
        assert_eq!(parse_name("checkpoint-500"), (Some(500), None));
        assert_eq!(
            parse_name("stage1-step1000-tokens4B"),
            (Some(1000), Some(4_000_000_000))
        );
        assert_eq!(
            parse_name("stage1-step477000-tokens2001B"),
            (Some(477000), Some(2_001_000_000_000))
        );
        assert_eq!(parse_name("main"), (None, None));
    }
}
