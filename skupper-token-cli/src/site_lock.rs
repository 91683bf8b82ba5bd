//! The site lock: held by `serve` for as long as it runs a site, and by
//! `init` while it replaces one, so neither pulls a site out from under
//! the other.
//!
//! The lock is an exclusive `flock(2)` on `<site dir>/serve.lock`, taken
//! without waiting. The kernel releases it when its holder exits, however
//! it exits (`kill -9` too), so it is never stale and needs no clean-up.
//! The file holds the holder's role and process id (`serve 1234`) so that
//! a refused command can say who holds the site.
//!
//! This is separate from the store's own lock (`.lock`, held for one
//! compare-and-swap at a time): commands read and change records while
//! `serve` runs; what they must not do is replace the whole site.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Seek as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

use rustix::fs::FlockOperation;

/// The lock file's name in the site directory.
pub const SITE_LOCK_NAME: &str = "serve.lock";

/// The lock, held until dropped.
#[derive(Debug)]
pub struct SiteLock {
    _file: File,
}

/// Who holds a site's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The command holding it (`serve`, `init`), if it said.
    pub role: Option<String>,
    /// Its process id, if it said.
    pub pid: Option<u32>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.role, self.pid) {
            (Some(role), Some(pid)) => write!(f, "'{role}' (process {pid})"),
            (Some(role), None) => write!(f, "'{role}'"),
            (None, Some(pid)) => write!(f, "process {pid}"),
            (None, None) => f.write_str("another process"),
        }
    }
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SiteLockError {
    /// Another process holds it.
    #[error("{holder} is running for this site")]
    Held {
        /// Who.
        holder: Holder,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl SiteLock {
    /// Takes the lock of the site in `site_dir` for `role` (`serve`,
    /// `init`), without waiting: [`SiteLockError::Held`] when another
    /// process has it.
    pub fn acquire(site_dir: &Path, role: &str) -> Result<SiteLock, SiteLockError> {
        let path = site_dir.join(SITE_LOCK_NAME);
        let io_error = |source: io::Error| SiteLockError::Io {
            path: path.display().to_string(),
            source,
        };
        // The site directory can be replaced (by an `init --force` that
        // held the lock) between opening the file and locking it; the lock
        // counts only on the file that is at the path afterwards.
        for _ in 0..16 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(io_error)?;
            match flock_now(&file) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(SiteLockError::Held {
                        holder: read_holder(&mut file),
                    })
                }
                Err(e) => return Err(io_error(e)),
            }
            let locked = file.metadata().map_err(io_error)?;
            match fs::metadata(&path) {
                Ok(now) if now.dev() == locked.dev() && now.ino() == locked.ino() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(e)),
            }
            file.set_len(0).map_err(io_error)?;
            file.write_all(format!("{role} {}\n", std::process::id()).as_bytes())
                .map_err(io_error)?;
            return Ok(SiteLock { _file: file });
        }
        Err(io_error(io::Error::other(
            "the site directory kept being replaced while locking it",
        )))
    }
}

/// Locks `file` exclusively if nobody else has it: `Ok(false)` if someone
/// does.
fn flock_now(file: &File) -> io::Result<bool> {
    loop {
        match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// What the holder wrote: `serve 1234`. A holder that has not written it
/// yet is "another process".
fn read_holder(file: &mut File) -> Holder {
    let mut text = String::new();
    let _ = file
        .rewind()
        .and_then(|()| file.take(100).read_to_string(&mut text));
    let mut words = text.split_whitespace();
    let role = words
        .next()
        .filter(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        .map(str::to_owned);
    let pid = words.next().and_then(|p| p.parse().ok());
    Holder { role, pid }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let lock = SiteLock::acquire(dir.path(), "serve").unwrap();
        let me = Holder {
            role: Some("serve".into()),
            pid: Some(std::process::id()),
        };
        match SiteLock::acquire(dir.path(), "init") {
            Err(SiteLockError::Held { holder }) => assert_eq!(holder, me),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            me.to_string(),
            format!("'serve' (process {})", std::process::id())
        );
        drop(lock);
        let _again = SiteLock::acquire(dir.path(), "init").unwrap();
        let text = fs::read_to_string(dir.path().join(SITE_LOCK_NAME)).unwrap();
        assert_eq!(text, format!("init {}\n", std::process::id()));
    }
}
