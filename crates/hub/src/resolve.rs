//! Suites and models named on the hub (`hf:ORG/NAME[@REVISION]`), resolved through the local
//! cache: which revisions, in training order, and where their files are.

use crate::cache::{Cache, Presence, RepoCache};
use crate::error::{HubError, Result};
use crate::files::{pick_weights, shards_in_index, CONFIG, TOKENIZER_FILES};
use crate::reference::{check_revision, is_commit, HubRef};
use crate::suite::{parse_name, sort_by_step, CheckpointRef, HubSource};
use std::path::PathBuf;

/// A branch of a repository and the commit it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    pub name: String,
    pub commit: String,
}

/// Parses `--revisions`: a comma-separated list of names (`step0,step1000`) and globs over the
/// repository's branches (`step*`, `stage1-*`), or `all` (every branch).
pub fn parse_revisions(spec: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for part in spec.split(',') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        let p = if p.eq_ignore_ascii_case("all") {
            "*"
        } else {
            p
        };
        if !is_glob(p) {
            check_revision(p).map_err(|w| {
                HubError::Invalid(format!(
                    "revisions '{}': '{}': {w}",
                    pretrace_core::shown(spec, 200),
                    pretrace_core::shown(p, 100)
                ))
            })?;
        }
        if !out.iter().any(|o| o == p) {
            out.push(p.to_string());
        }
    }
    if out.is_empty() {
        return Err(HubError::Invalid(
            "revisions is empty: give names (step0,step1000), a glob (step*) or all".into(),
        ));
    }
    Ok(out)
}

pub fn is_glob(p: &str) -> bool {
    p.contains(['*', '?'])
}

/// Shell-style matching: `*` any run of characters, `?` any one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The revisions `patterns` select: names as given, globs expanded over `branches` (in branch
/// order, each revision once). A glob that matches no branch is an error that shows some.
pub fn select(repo: &str, patterns: &[String], branches: &[Branch]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for p in patterns {
        if is_glob(p) {
            let hits: Vec<&Branch> = branches.iter().filter(|b| glob_match(p, &b.name)).collect();
            if hits.is_empty() {
                let names: Vec<&str> = branches.iter().map(|b| b.name.as_str()).take(8).collect();
                return Err(HubError::NoRevision {
                    repo: repo.to_string(),
                    revision: p.clone(),
                    hint: if branches.is_empty() {
                        "no branch is known to match it".into()
                    } else {
                        format!(
                            "no branch matches it; its branches include {}{}",
                            names.join(", "),
                            if branches.len() > 8 { ", …" } else { "" }
                        )
                    },
                });
            }
            for b in hits {
                if !out.contains(&b.name) {
                    out.push(b.name.clone());
                }
            }
        } else if !out.contains(p) {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Orders resolved revisions `(revision, commit)` into a suite, by the step each name says. A
/// revision whose name says no step (`main`, a tag, a commit) takes the step of a branch that
/// points at the same commit (`main` = `step143000`); when that branch is in the suite too, the
/// two are one checkpoint and it is kept once, under the branch's name. Returns the suite (paths
/// left empty) and notes on what was merged.
pub fn order(
    repo: &str,
    resolved: &[(String, String)],
    branches: &[Branch],
) -> (Vec<CheckpointRef>, Vec<String>) {
    let mut notes = Vec::new();
    let mut out: Vec<CheckpointRef> = Vec::new();
    let stepped = |commit: &str| {
        branches
            .iter()
            .chain(
                resolved
                    .iter()
                    .map(|(n, c)| Branch {
                        name: n.clone(),
                        commit: c.clone(),
                    })
                    .collect::<Vec<_>>()
                    .iter(),
            )
            .find(|b| b.commit == commit && parse_name(&b.name).0.is_some() && !is_commit(&b.name))
            .map(|b| b.name.clone())
    };
    for (rev, commit) in resolved {
        let (mut step, mut tokens) = if is_commit(rev) {
            (None, None)
        } else {
            parse_name(rev)
        };
        if step.is_none() {
            if let Some(b) = stepped(commit) {
                if resolved.iter().any(|(r, _)| *r == b) {
                    notes.push(format!(
                        "{rev} is the same commit as {b} ({}): kept once, as {b}",
                        &commit[..12]
                    ));
                    continue;
                }
                (step, tokens) = parse_name(&b);
                notes.push(format!(
                    "{rev} points at the commit of {b}: placed at step {}",
                    step.unwrap_or(0)
                ));
            }
        }
        if let Some(dup) = out
            .iter()
            .find(|c| c.hub.as_ref().is_some_and(|h| h.commit == *commit))
        {
            notes.push(format!(
                "{rev} is the same commit as {} ({}): kept once, as {}",
                dup.name,
                &commit[..12],
                dup.name
            ));
            continue;
        }
        out.push(CheckpointRef {
            name: rev.clone(),
            path: PathBuf::new(),
            step,
            tokens,
            hub: Some(HubSource {
                repo: repo.to_string(),
                revision: rev.clone(),
                commit: commit.clone(),
            }),
            tokenizer: None,
        });
    }
    sort_by_step(&mut out);
    (out, notes)
}

/// The files a cached snapshot still lacks for pretrace to load it: config.json and weights
/// (a weight index's shards included). Tokenizer files are optional here.
pub fn missing_files(repo: &RepoCache, commit: &str) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    if !matches!(repo.lookup(commit, CONFIG), Presence::Cached(_)) {
        missing.push(CONFIG.to_string());
    }
    let cached: Vec<String> = crate::files::WEIGHT_FILES
        .iter()
        .filter(|w| matches!(repo.lookup(commit, w), Presence::Cached(_)))
        .map(|w| w.to_string())
        .collect();
    match pick_weights(&cached) {
        None => missing
            .push("the weights (model.safetensors or pytorch_model.bin, or their index)".into()),
        Some(w) if w.ends_with(".index.json") => {
            let p = repo.snapshot_dir(commit).join(w);
            let text = std::fs::read_to_string(&p)
                .map_err(|e| HubError::at(&p, format!("cannot read: {e}")))?;
            let shards = shards_in_index(&text).map_err(|w| HubError::at(&p, w))?;
            for s in shards {
                if !matches!(repo.lookup(commit, &s), Presence::Cached(_)) {
                    missing.push(s);
                }
            }
        }
        Some(_) => {}
    }
    Ok(missing)
}

/// The command that fetches one revision of a repository.
pub fn fetch_command(repo: &str, revision: &str) -> String {
    format!("hf download {repo} --revision {revision}")
}

/// The revision patterns a suite names: `revisions` (`--revisions`), else the reference's own
/// revision, else `main`. Both at once is an error.
pub fn patterns_for(hub: &HubRef, revisions: Option<&str>) -> Result<Vec<String>> {
    match revisions {
        Some(spec) => {
            if hub.revision.is_some() {
                return Err(HubError::Invalid(format!(
                    "{hub} names a revision and revisions are given too; write hf:{} with the revisions",
                    hub.repo
                )));
            }
            parse_revisions(spec)
        }
        None => Ok(vec![hub.revision_or_main().to_string()]),
    }
}

/// A suite resolved from the cache alone: every revision `revisions` names (default: the
/// reference's own, else `main`), in training order, each with its snapshot folder. Globs and
/// `all` match the revisions the cache has refs for. Anything missing is one error that lists
/// every missing revision and file and the commands that fetch them.
pub fn resolve_cached(
    hub: &HubRef,
    revisions: Option<&str>,
    cache: &Cache,
    offline: bool,
) -> Result<(Vec<CheckpointRef>, Vec<String>)> {
    let repo = cache.repo(&hub.repo);
    let patterns = patterns_for(hub, revisions)?;
    let branches: Vec<Branch> = repo
        .refs()?
        .into_iter()
        .map(|(name, commit)| Branch { name, commit })
        .collect();
    let wanted = select(&hub.repo, &patterns, &branches)?;
    let mut resolved = Vec::new();
    let mut missing = Vec::new();
    let mut fetch = Vec::new();
    for rev in &wanted {
        match repo.commit_of(rev)? {
            Some(c) if repo.snapshot_dir(&c).is_dir() || !is_commit(rev) => {
                resolved.push((rev.clone(), c))
            }
            _ => {
                missing.push(format!("revision {rev}"));
                fetch.push(fetch_command(&hub.repo, rev));
            }
        }
    }
    for (rev, commit) in &resolved {
        let m = missing_files(&repo, commit)?;
        if !m.is_empty() {
            missing.push(format!("{rev}: {}", m.join(", ")));
            fetch.push(fetch_command(&hub.repo, rev));
        }
    }
    if !missing.is_empty() {
        return Err(HubError::NotCached {
            repo: hub.repo.clone(),
            cache: cache.root().to_path_buf(),
            offline,
            missing,
            fetch,
        });
    }
    let (mut suite, notes) = order(&hub.repo, &resolved, &branches);
    for c in &mut suite {
        if let Some(h) = &c.hub {
            c.path = repo.snapshot_dir(&h.commit);
        }
    }
    Ok((suite, notes))
}

/// A model, resolved to files on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// The checkpoint folder or `.gguf` file (for the hub: the cache snapshot).
    pub path: PathBuf,
    /// Where it came from on the hub, when it did.
    pub hub: Option<HubSource>,
    /// Where its tokenizer came from, when not from its own folder.
    pub tokenizer: Option<String>,
}

impl ResolvedModel {
    /// What to record as the model's origin: `hf:ORG/NAME@REVISION (commit C)` or the path, and
    /// the tokenizer's origin when it is another.
    pub fn describe(&self) -> String {
        let base = match &self.hub {
            Some(h) => format!("{} (commit {})", h.reference(), h.commit),
            None => self.path.display().to_string(),
        };
        match &self.tokenizer {
            Some(t) => format!("{base}, tokenizer from {t}"),
            None => base,
        }
    }
}

/// A model named by a path or by `hf:ORG/NAME[@REVISION]`, resolved from the cache alone.
pub fn resolve_model_cached(
    reference: &crate::Reference,
    cache: &Cache,
    offline: bool,
) -> Result<ResolvedModel> {
    match reference {
        crate::Reference::Path(p) => {
            let hub = crate::suite::in_hf_cache(p).and_then(|(repo, commit)| {
                let commit = commit?;
                let refs = repo.refs_to(&commit).ok()?;
                let revision = refs
                    .iter()
                    .find(|r| *r == "main")
                    .or(refs.first())
                    .cloned()
                    .unwrap_or_else(|| commit.clone());
                Some(HubSource {
                    repo: repo.repo.clone(),
                    revision,
                    commit,
                })
            });
            Ok(ResolvedModel {
                path: p.clone(),
                hub,
                tokenizer: None,
            })
        }
        crate::Reference::Hub(h) => {
            let (suite, _) = resolve_cached(h, None, cache, offline)?;
            let c = suite
                .into_iter()
                .next()
                .ok_or_else(|| HubError::Invalid(format!("{h}: resolved to no checkpoint")))?;
            Ok(ResolvedModel {
                path: c.path,
                hub: c.hub,
                tokenizer: None,
            })
        }
    }
}

/// Whether the snapshot of a checkpoint has tokenizer files of its own.
pub fn snapshot_has_tokenizer(repo: &RepoCache, commit: &str) -> bool {
    let cached: Vec<String> = TOKENIZER_FILES
        .iter()
        .filter(|f| matches!(repo.lookup(commit, f), Presence::Cached(_)))
        .map(|f| f.to_string())
        .collect();
    crate::files::has_tokenizer(&cached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("step*", "step1000"));
        assert!(glob_match("*", "main"));
        assert!(glob_match(
            "stage1-step*-tokens*B",
            "stage1-step1000-tokens5B"
        ));
        assert!(!glob_match("step*", "main"));
        assert!(glob_match("ckpt_0??", "ckpt_012"));
        assert!(!glob_match("ckpt_0??", "ckpt_0123"));
    }

    fn c(i: u8) -> String {
        format!("{:040x}", i)
    }

    #[test]
    fn main_is_placed_by_its_commit() {
        let names = [
            ("step0", 1),
            ("step1000", 2),
            ("step143000", 3),
            ("main", 3),
        ];
        let branches = branches_of(&names);
        let (s, notes) = order_of(&names);
        let names: Vec<&str> = s.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["step0", "step1000", "step143000"]);
        assert!(
            notes[0].contains("main is the same commit as step143000"),
            "{notes:?}"
        );
        // main alone takes the step of the branch it equals.
        let (s, _) = order(
            "o/n",
            &[("main".into(), c(3)), ("step0".into(), c(1))],
            &branches,
        );
        assert_eq!(s[1].name, "main");
        assert_eq!(s[1].step, Some(143000));
        // Amber: main is no checkpoint branch, and goes last.
        let (s, _) = order(
            "o/n",
            &[
                ("main".into(), c(9)),
                ("ckpt_358".into(), c(8)),
                ("ckpt_000".into(), c(7)),
            ],
            &[],
        );
        let names: Vec<&str> = s.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ckpt_000", "ckpt_358", "main"]);
    }

    /// Branches named `names`, each at commit `c(i)`.
    fn branches_of(names: &[(&str, u8)]) -> Vec<Branch> {
        names
            .iter()
            .map(|(n, i)| Branch {
                name: n.to_string(),
                commit: c(*i),
            })
            .collect()
    }

    /// `order` over [`branches_of`] `names`, all of them resolved.
    fn order_of(names: &[(&str, u8)]) -> (Vec<CheckpointRef>, Vec<String>) {
        let branches = branches_of(names);
        let all: Vec<(String, String)> = branches
            .iter()
            .map(|b| (b.name.clone(), b.commit.clone()))
            .collect();
        order("o/n", &all, &branches)
    }

    fn ordered(names: &[(&str, u8)]) -> Vec<(String, Option<u64>, Option<u64>)> {
        order_of(names)
            .0
            .into_iter()
            .map(|c| (c.name, c.step, c.tokens))
            .collect()
    }

    #[test]
    fn olmo_and_amber_names_are_ordered_by_step() {
        // OLMo-1 and OLMo-2 branch names, listed out of order; main is the last step.
        let o = ordered(&[
            ("step20000-tokens84B", 3),
            ("step1000-tokens4B", 1),
            ("main", 3),
            ("step5000-tokens21B", 2),
        ]);
        let names: Vec<&str> = o.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "step1000-tokens4B",
                "step5000-tokens21B",
                "step20000-tokens84B"
            ]
        );
        assert_eq!(o[0].1, Some(1000));
        assert_eq!(o[0].2, Some(4_000_000_000));
        let o = ordered(&[
            ("stage1-step11000-tokens47B", 2),
            ("stage1-step1000-tokens5B", 1),
        ]);
        assert_eq!(o[0].1, Some(1000));
        assert_eq!(o[1].1, Some(11000));
        // LLM360 Amber: ckpt_000 .. ckpt_358, main = ckpt_359.
        let o = ordered(&[
            ("ckpt_359", 9),
            ("ckpt_010", 2),
            ("main", 9),
            ("ckpt_000", 1),
            ("ckpt_100", 3),
        ]);
        let names: Vec<&str> = o.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["ckpt_000", "ckpt_010", "ckpt_100", "ckpt_359"]);
        assert_eq!(o[3].1, Some(359));
    }
}
