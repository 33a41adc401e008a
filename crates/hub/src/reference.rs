//! References to models and suites: a local path, or `hf:ORG/NAME[@REVISION]` on the Hugging Face
//! hub.

use crate::error::{HubError, Result};
use std::fmt;
use std::path::PathBuf;

/// The prefix that marks a reference to the Hugging Face hub.
pub const HUB_PREFIX: &str = "hf:";

/// A repository on the hub and, optionally, one of its revisions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HubRef {
    /// `ORG/NAME`.
    pub repo: String,
    /// A branch, a tag or a 40-hex commit; `None` means the default branch, `main`.
    pub revision: Option<String>,
}

impl HubRef {
    /// Parses `hf:ORG/NAME` or `hf:ORG/NAME@REVISION` (the `hf:` prefix is optional here).
    pub fn parse(text: &str) -> Result<HubRef> {
        let bad = |why: &str| HubError::BadReference {
            text: text.to_string(),
            why: why.to_string(),
        };
        let body = text.strip_prefix(HUB_PREFIX).unwrap_or(text);
        let (repo, revision) = match body.split_once('@') {
            Some((r, rev)) => (r, Some(rev)),
            None => (body, None),
        };
        check_repo_id(repo).map_err(|w| bad(&w))?;
        if let Some(rev) = revision {
            check_revision(rev).map_err(|w| bad(&w))?;
        }
        Ok(HubRef {
            repo: repo.to_string(),
            revision: revision.map(str::to_string),
        })
    }

    /// The revision, `main` when none was given.
    pub fn revision_or_main(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }

    /// The same repository at `revision`.
    pub fn at(&self, revision: &str) -> HubRef {
        HubRef {
            repo: self.repo.clone(),
            revision: Some(revision.to_string()),
        }
    }
}

impl fmt::Display for HubRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{HUB_PREFIX}{}", self.repo)?;
        if let Some(r) = &self.revision {
            write!(f, "@{r}")?;
        }
        Ok(())
    }
}

/// What names a model or a checkpoint suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A checkpoint folder, a `.gguf` file, a folder of checkpoints, or a cache snapshot.
    Path(PathBuf),
    /// A repository on the hub (through the local cache).
    Hub(HubRef),
}

impl Reference {
    /// `hf:ORG/NAME[@REVISION]` is a hub reference; anything else is a path.
    pub fn parse(text: &str) -> Result<Reference> {
        if text.starts_with(HUB_PREFIX) {
            Ok(Reference::Hub(HubRef::parse(text)?))
        } else {
            Ok(Reference::Path(PathBuf::from(text)))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Path(p) => write!(f, "{}", p.display()),
            Reference::Hub(h) => h.fmt(f),
        }
    }
}

/// A repository id as the hub accepts it (`huggingface_hub.utils.validate_repo_id`): `ORG/NAME`,
/// each part 1 to 96 of `A-Z a-z 0-9 - _ .`, not starting or ending with `-` or `.`, without `--`
/// or `..`, not ending in `.git`.
pub fn check_repo_id(repo: &str) -> std::result::Result<(), String> {
    let Some((org, name)) = repo.split_once('/') else {
        return Err(format!(
            "the repository '{}' has no organization",
            pretrace_core::shown(repo, 200)
        ));
    };
    for part in [org, name] {
        if part.is_empty() || part.len() > 96 {
            return Err("each part of ORG/NAME is 1 to 96 characters".into());
        }
        if let Some(c) = part
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!(
                "'{}' is not allowed in a repository id (letters, digits, '-', '_' and '.' only)",
                c.escape_default()
            ));
        }
        if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) {
            return Err("a repository id part cannot start or end with '-' or '.'".into());
        }
    }
    if repo.contains("--") || repo.contains("..") {
        return Err("a repository id cannot contain '--' or '..'".into());
    }
    if repo.ends_with(".git") {
        return Err("a repository id cannot end in '.git'".into());
    }
    Ok(())
}

/// A revision name that is safe to use as a path below `refs/`: not empty, no `.` or `..`
/// component, no leading `/`, no backslash or control character, at most 255 bytes.
pub fn check_revision(rev: &str) -> std::result::Result<(), String> {
    if rev.is_empty() {
        return Err("the revision after '@' is empty".into());
    }
    if rev.len() > 255 {
        return Err("the revision is longer than 255 bytes".into());
    }
    if rev.chars().any(|c| c.is_control() || c == '\\') {
        return Err("the revision holds a control character or a backslash".into());
    }
    if rev
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err("the revision has an empty, '.' or '..' path component".into());
    }
    Ok(())
}

/// A file path inside a repository, as the hub lists it, that is safe to join below a snapshot:
/// relative, `/`-separated, no empty, `.` or `..` component, no backslash or control character.
pub fn check_repo_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() || path.len() > 1024 {
        return Err("a file path in a repository is 1 to 1024 bytes".into());
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err("the file path holds a control character or a backslash".into());
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err("the file path is absolute or has an empty, '.' or '..' component".to_string());
    }
    Ok(())
}

/// Whether `s` is a full commit hash (40 lowercase hex digits).
pub fn is_commit(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = HubRef::parse("hf:EleutherAI/pythia-160m@step1000").unwrap();
        assert_eq!(r.repo, "EleutherAI/pythia-160m");
        assert_eq!(r.revision.as_deref(), Some("step1000"));
        assert_eq!(r.to_string(), "hf:EleutherAI/pythia-160m@step1000");
        let r = HubRef::parse("hf:LLM360/Amber").unwrap();
        assert_eq!(r.revision_or_main(), "main");
        assert_eq!(
            HubRef::parse("hf:org/name@refs/pr/1")
                .unwrap()
                .revision_or_main(),
            "refs/pr/1"
        );
        for bad in [
            "hf:pythia",
            "hf:a/b/c",
            "hf:org/na me",
            "hf:org/name@",
            "hf:org/name@../../etc",
            "hf:org/name@/abs",
            "hf:org--x/name",
            "hf:org/name.git",
            "hf:-org/name",
        ] {
            assert!(HubRef::parse(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(
            Reference::parse("runs/step3").unwrap(),
            Reference::Path("runs/step3".into())
        );
    }

    #[test]
    fn repo_paths() {
        assert!(check_repo_path("model-00001-of-00002.safetensors").is_ok());
        assert!(check_repo_path("sub/dir/x.json").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a\\b", "a/./b"] {
            assert!(check_repo_path(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(is_commit("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit("0123456789ABCDEF0123456789abcdef01234567"));
    }
}
