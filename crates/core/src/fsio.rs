//! Atomic writes that refuse to clobber what they should not.
//!
//! Every file pretrace writes goes to a fresh temporary name in the target's own directory
//! (created exclusively, so a planted symlink there is never followed), is synced, and is renamed
//! over the target. Before that, the target must be a regular file or a missing path: a device
//! node, a FIFO, a socket, a directory or a symlink is refused, so `--out /dev/full` can never turn
//! a device into a file and a symlink planted in an output folder can never redirect a write
//! outside it. Files are created with mode 0666 less the process umask, as any other program's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Temporary files and directories start with this; readers skip them and a store clears them.
pub const TMP_PREFIX: &str = ".tmp-";

/// Why a write was refused or failed. Every variant names the path the caller asked for, never a
/// temporary name.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The target exists and is not a regular file.
    #[error("{}: is {kind}, not a regular file; pretrace writes only regular files or new paths, choose another output path", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    /// The directory a file should go into does not exist.
    #[error("{}: the directory {} does not exist; create it first", path.display(), dir.display())]
    NoDirectory { path: PathBuf, dir: PathBuf },
    /// A directory pretrace would write into is something else (a file, or a symlink inside an
    /// output folder).
    #[error("{}: is {kind}, not a directory pretrace created; remove it or choose another output folder", path.display())]
    NotDirectory { path: PathBuf, kind: &'static str },
    /// The path has no file name (`/`, `..`).
    #[error("{}: not a file path; give a path that ends in a file name", path.display())]
    NoFileName { path: PathBuf },
    /// An I/O operation failed.
    #[error("{}: cannot {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
}

fn io(path: &Path, op: &'static str, source: std::io::Error) -> FsError {
    FsError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// What a path is, for messages; `None` when it is missing or a regular file (writable targets).
fn refused_kind(path: &Path) -> Result<Option<&'static str>, FsError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path, "inspect", e)),
    };
    Ok(kind_of(&meta))
}

fn kind_of(meta: &std::fs::Metadata) -> Option<&'static str> {
    let ft = meta.file_type();
    if ft.is_file() {
        return None;
    }
    Some(if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else {
        special_kind(&ft)
    })
}

#[cfg(unix)]
fn special_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "not a regular file"
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name beside `path`, created exclusively (`O_CREAT | O_EXCL`, which never
/// follows a symlink).
fn create_tmp(path: &Path) -> Result<(PathBuf, std::fs::File), FsError> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .ok_or_else(|| FsError::NoFileName {
            path: path.to_path_buf(),
        })?
        .to_string_lossy();
    // Keep temporary names within NAME_MAX whatever the target's name.
    let short: String = name.chars().take(160).collect();
    for _ in 0..64 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{TMP_PREFIX}{}-{n}-{short}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(path, "write", e)),
        }
    }
    Err(io(
        path,
        "write",
        std::io::Error::other("no free temporary name beside it"),
    ))
}

/// Checks that `path` may be written: its directory exists and it is a regular file or missing.
pub fn check_target(path: &Path) -> Result<(), FsError> {
    if path.file_name().is_none() {
        return Err(FsError::NoFileName {
            path: path.to_path_buf(),
        });
    }
    let dir = parent_of(path);
    if !dir.is_dir() {
        return Err(FsError::NoDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    if let Some(kind) = refused_kind(path)? {
        return Err(FsError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Like [`write_atomic`], with the contents streamed by `fill` into a buffered writer.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), FsError> {
    check_target(path)?;
    let (tmp, file) = create_tmp(path)?;
    let res = (|| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path, "write", e));
    }
    // The target may have changed while the file was written: check again just before the rename.
    if let Err(e) = check_target(path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path, "rename into place", e));
    }
    sync_dir(parent_of(path));
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Makes the rename durable; not every filesystem allows syncing a directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Creates (or reuses) `root/name` as a real directory: an existing symlink, file or device there
/// is refused, so nothing written below it can land outside `root`.
pub fn create_subdir(root: &Path, name: &str) -> Result<PathBuf, FsError> {
    let p = root.join(name);
    match std::fs::symlink_metadata(&p) {
        Ok(m) if m.file_type().is_dir() => Ok(p),
        Ok(m) => Err(FsError::NotDirectory {
            kind: kind_of(&m).unwrap_or("a regular file"),
            path: p,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(&p) {
            Ok(()) => Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => create_subdir(root, name),
            Err(e) => Err(io(&p, "create the directory", e)),
        },
        Err(e) => Err(io(&p, "inspect", e)),
    }
}

/// An output folder that exists and was found writable before any work started.
#[derive(Debug, Clone)]
pub struct OutDir(PathBuf);

impl OutDir {
    /// Creates `dir` (and its parents) if needed and checks that a file can be created in it, so a
    /// command fails before it computes anything rather than after. The folder itself may be a
    /// symlink the user made (scratch space on a cluster); what is written inside it is checked
    /// by [`write_atomic`].
    pub fn prepare(dir: &Path) -> Result<OutDir, FsError> {
        if let Ok(m) = std::fs::metadata(dir) {
            if !m.is_dir() {
                return Err(FsError::NotDirectory {
                    path: dir.to_path_buf(),
                    kind: kind_of(&m).unwrap_or("a regular file"),
                });
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| io(dir, "create the directory", e))?;
        let (tmp, f) = create_tmp(&dir.join("write-check"))?;
        drop(f);
        let _ = std::fs::remove_file(&tmp);
        Ok(OutDir(dir.to_path_buf()))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// The sha256 of bytes, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of a file, streamed, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, FsError> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| io(path, "read", e))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| io(path, "read", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pretrace-core-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn write_refuses_a_symlink_and_leaves_its_target_alone() {
        let d = tmpdir("symlink");
        let outside = d.join("outside.txt");
        std::fs::write(&outside, "keep").unwrap();
        let inner = d.join("out");
        std::fs::create_dir(&inner).unwrap();
        std::os::unix::fs::symlink(&outside, inner.join("probes.csv")).unwrap();
        let e = write_atomic(&inner.join("probes.csv"), b"x").unwrap_err();
        assert!(matches!(e, FsError::NotRegular { .. }), "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(inner.join("probes.csv"))
            .unwrap()
            .file_type()
            .is_symlink());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn write_refuses_a_fifo_and_a_directory() {
        let d = tmpdir("fifo");
        let fifo = d.join("pipe");
        let st = std::process::Command::new("mkfifo").arg(&fifo).status();
        if st.is_ok_and(|s| s.success()) {
            let e = write_atomic(&fifo, b"x").unwrap_err();
            assert!(e.to_string().contains("FIFO"), "{e}");
            use std::os::unix::fs::FileTypeExt;
            assert!(std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo());
        }
        let e = write_atomic(&d, b"x").unwrap_err();
        assert!(matches!(e, FsError::NotRegular { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn write_follows_the_umask_and_names_the_asked_path() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmpdir("mode");
        let p = d.join("a.json");
        write_atomic(&p, b"{}").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        // The test process's umask is whatever the shell gave it; the file must carry 0666 less it,
        // never a narrower private mode.
        let probe = d.join("probe");
        std::fs::File::create(&probe).unwrap();
        let expected = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, expected);
        let e = write_atomic(&d.join("missing").join("x.st"), b"x").unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&d.join("missing").join("x.st").display().to_string()),
            "{e}"
        );
        assert!(!e.to_string().contains(TMP_PREFIX), "{e}");
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert!(
            left.iter()
                .all(|n| !n.to_string_lossy().starts_with(TMP_PREFIX)),
            "{left:?}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn subdir_refuses_a_symlink_out_of_the_root() {
        let d = tmpdir("subdir");
        let elsewhere = d.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let root = d.join("store");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("step0")).unwrap();
        let e = create_subdir(&root, "step0").unwrap_err();
        assert!(matches!(e, FsError::NotDirectory { .. }), "{e}");
        assert!(create_subdir(&root, "step1").unwrap().is_dir());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn outdir_fails_before_work_when_unwritable() {
        let d = tmpdir("outdir");
        let f = d.join("file");
        std::fs::write(&f, "x").unwrap();
        assert!(OutDir::prepare(&f).is_err());
        assert!(OutDir::prepare(&f.join("sub")).is_err());
        assert!(OutDir::prepare(&d.join("new/deeper")).is_ok());
        let _ = std::fs::remove_dir_all(&d);
    }
}
