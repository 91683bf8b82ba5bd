//! Durable file operations: atomic writes and directory swaps.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` so that, whatever happens, `path` holds either
/// its old content or all of the new content: a temporary file in the same
/// directory is written with `mode`, flushed to disk, renamed over `path`,
/// and the directory is flushed.
///
/// `path` is replaced whatever it is (a symlink, a pipe); for a path the
/// user named, decide with [`crate::user_file::OutputTarget`] first.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let temp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        unique()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Flushes a directory's entries (a rename or delete in it) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Moves the complete directory `staging` to `target`, replacing any
/// directory there. The old directory is first renamed aside and removed
/// only after the new one is in place, so a crash leaves one of them whole
/// at `target` or aside.
pub fn replace_dir(staging: &Path, target: &Path) -> io::Result<()> {
    let parent = parent_of(target);
    let aside: Option<PathBuf> = if target.exists() {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let aside = parent.join(format!(".{name}.old-{}-{}", std::process::id(), unique()));
        fs::rename(target, &aside)?;
        Some(aside)
    } else {
        None
    };
    if let Err(e) = fs::rename(staging, target) {
        if let Some(aside) = &aside {
            let _ = fs::rename(aside, target);
        }
        return Err(e);
    }
    sync_dir(&parent)?;
    if let Some(aside) = aside {
        fs::remove_dir_all(aside)?;
    }
    Ok(())
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fs-util-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        create_private_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn write_atomic_replaces_whole_files_with_the_mode() {
        let dir = scratch("write");
        let path = dir.join("token.yaml");
        write_atomic(&path, b"first", 0o600).unwrap();
        write_atomic(&path, b"second", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left");
        assert!(write_atomic(&dir.join("missing/x"), b"x", 0o600).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn replace_dir_swaps_complete_directories() {
        let dir = scratch("replace");
        let target = dir.join("site");
        let staging = dir.join("staging");
        create_private_dir_all(&staging).unwrap();
        fs::write(staging.join("a"), b"new").unwrap();
        replace_dir(&staging, &target).unwrap();
        assert_eq!(fs::read(target.join("a")).unwrap(), b"new");
        create_private_dir_all(&staging).unwrap();
        fs::write(staging.join("b"), b"newer").unwrap();
        replace_dir(&staging, &target).unwrap();
        assert!(!target.join("a").exists());
        assert_eq!(fs::read(target.join("b")).unwrap(), b"newer");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "nothing left aside");
        fs::remove_dir_all(dir).unwrap();
    }
}
