//! Writing a file the user named on the command line (`token create PATH`).
//!
//! What is at `PATH` decides how it is written, the way a shell's `>` would
//! treat it, except that a regular file is never left half-written:
//!
//! - nothing, or a regular file: a temporary file next to it is renamed
//!   over it ([`write_atomic`]), so it holds the old content or all of the
//!   new;
//! - a symbolic link: followed (through any number of links) to its target,
//!   which is then treated the same way; the link stays a link;
//! - a named pipe (FIFO) or a character device (`/dev/null`, a terminal):
//!   opened and written, so a reader of the pipe gets the content and the
//!   node stays what it was; opening a pipe waits for its reader;
//! - a process's open file (`/dev/stdout`, `/dev/fd/N`, `/proc/PID/fd/N`):
//!   written through, appending, like `>>`;
//! - a directory, a socket or a block device: refused.
//!
//! [`OutputTarget::resolve`] decides before anything is made, so a command
//! can refuse a bad path before it creates what it would write.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};

use crate::fs_util::write_atomic;

/// How many symbolic links are followed before giving up (Linux's limit).
pub const MAX_SYMLINKS: usize = 40;

/// Where and how a user-named file is written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputTarget {
    /// A regular file (or a new one) at this path, replaced atomically.
    Replace(PathBuf),
    /// A pipe, a character device or a process's open file at this path,
    /// opened and written (appending).
    WriteThrough(PathBuf),
}

/// Why a path cannot be written to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The path is a directory.
    #[error("{path} is a directory: give the name of a file (for example {example})")]
    IsDirectory {
        /// The path given.
        path: String,
        /// A file name in it.
        example: String,
    },
    /// The path ends with `/`, so it can only name a directory.
    #[error("{path} ends with '/', so it names a directory: give the name of a file")]
    NamesDirectory {
        /// The path given.
        path: String,
    },
    /// The file would be created in a directory that does not exist.
    #[error("cannot create {path}: the directory {dir} does not exist")]
    NoDirectory {
        /// The file that would be created.
        path: String,
        /// Its missing directory.
        dir: String,
    },
    /// The file would be created in something that is not a directory.
    #[error("cannot create {path}: {dir} is not a directory")]
    NotInDirectory {
        /// The file that would be created.
        path: String,
        /// What is there instead of a directory.
        dir: String,
    },
    /// The path is something a file cannot be written to.
    #[error("{path} is {what}, not a file: give the name of a file")]
    NotAFile {
        /// The path given (or the target of its links).
        path: String,
        /// What it is: `a socket`, `a block device`.
        what: &'static str,
    },
    /// Symbolic links lead to each other.
    #[error("{path}: more than {MAX_SYMLINKS} levels of symbolic links (a loop?)")]
    SymlinkLoop {
        /// The path given.
        path: String,
    },
    /// The path could not be examined.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path (or the link) that could not be read.
        path: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl OutputError {
    /// Whether the error is about the path given (a bad argument) rather
    /// than a failure to read the file system.
    pub fn is_bad_path(&self) -> bool {
        !matches!(self, OutputError::Io { .. })
    }
}

impl OutputTarget {
    /// Decides how `path` is written, following symbolic links. Makes and
    /// changes nothing.
    pub fn resolve(path: &Path) -> Result<OutputTarget, OutputError> {
        let shown = || path.display().to_string();
        let bytes = path.as_os_str().as_bytes();
        if bytes.ends_with(b"/") || bytes.ends_with(b"/.") || bytes == b"." || bytes == b".." {
            return Err(match fs::metadata(path) {
                Ok(meta) if meta.is_dir() => is_directory(path),
                _ => OutputError::NamesDirectory { path: shown() },
            });
        }
        let mut current = path.to_path_buf();
        for _ in 0..=MAX_SYMLINKS {
            let meta = match fs::symlink_metadata(&current) {
                Ok(meta) => meta,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    check_directory(&current)?;
                    return Ok(OutputTarget::Replace(current));
                }
                Err(e) => return Err(io_error(&current, e)),
            };
            let kind = meta.file_type();
            if kind.is_symlink() {
                if is_process_file(&current) {
                    // A process's open file: what the link shows (a pipe,
                    // a terminal, a deleted file) is not a path to replace.
                    return match fs::metadata(&current) {
                        Ok(meta) if meta.is_dir() => Err(is_directory(path)),
                        Ok(_) => Ok(OutputTarget::WriteThrough(current)),
                        Err(e) => Err(io_error(&current, e)),
                    };
                }
                let target = fs::read_link(&current).map_err(|e| io_error(&current, e))?;
                current = parent_of(&current).join(target);
            } else if kind.is_dir() {
                return Err(is_directory(path));
            } else if kind.is_file() {
                return Ok(OutputTarget::Replace(current));
            } else if kind.is_fifo() || kind.is_char_device() {
                return Ok(OutputTarget::WriteThrough(current));
            } else {
                return Err(OutputError::NotAFile {
                    path: current.display().to_string(),
                    what: if kind.is_socket() {
                        "a socket"
                    } else if kind.is_block_device() {
                        "a block device"
                    } else {
                        "a special file"
                    },
                });
            }
        }
        Err(OutputError::SymlinkLoop { path: shown() })
    }

    /// The file that is written (the target of any symbolic links).
    pub fn path(&self) -> &Path {
        match self {
            OutputTarget::Replace(p) | OutputTarget::WriteThrough(p) => p,
        }
    }

    /// Writes `bytes`: a replaced file gets `mode`; a pipe or device is
    /// written and flushed. Returns only when everything was written.
    pub fn write(&self, bytes: &[u8], mode: u32) -> io::Result<()> {
        match self {
            OutputTarget::Replace(path) => write_atomic(path, bytes, mode),
            OutputTarget::WriteThrough(path) => {
                let mut file = OpenOptions::new().append(true).open(path)?;
                file.write_all(bytes)?;
                file.flush()
            }
        }
    }
}

fn is_directory(path: &Path) -> OutputError {
    OutputError::IsDirectory {
        path: path.display().to_string(),
        example: path.join("secret.yaml").display().to_string(),
    }
}

fn io_error(path: &Path, source: io::Error) -> OutputError {
    OutputError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A new file at `path` needs an existing directory to be made in.
fn check_directory(path: &Path) -> Result<(), OutputError> {
    let dir = parent_of(path);
    match fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(OutputError::NotInDirectory {
            path: path.display().to_string(),
            dir: dir.display().to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(OutputError::NoDirectory {
            path: path.display().to_string(),
            dir: dir.display().to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Err(OutputError::NotInDirectory {
            path: path.display().to_string(),
            dir: dir.display().to_string(),
        }),
        Err(e) => Err(io_error(&dir, e)),
    }
}

/// Whether the link at `path` is one of procfs's links to a process's open
/// files (`/proc/self/fd/1`, which `/dev/stdout` points to).
fn is_process_file(path: &Path) -> bool {
    fs::canonicalize(parent_of(path)).is_ok_and(|dir| dir.starts_with("/proc"))
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolves_links_files_directories_and_devices() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let new = d.join("new.yaml");
        assert_eq!(
            OutputTarget::resolve(&new).unwrap(),
            OutputTarget::Replace(new.clone())
        );
        fs::write(&new, b"old").unwrap();
        symlink("new.yaml", d.join("rel")).unwrap();
        symlink(d.join("rel"), d.join("abs")).unwrap();
        assert_eq!(
            OutputTarget::resolve(&d.join("abs")).unwrap(),
            OutputTarget::Replace(d.join("new.yaml"))
        );
        symlink("missing.yaml", d.join("dangling")).unwrap();
        assert_eq!(
            OutputTarget::resolve(&d.join("dangling")).unwrap(),
            OutputTarget::Replace(d.join("missing.yaml"))
        );
        symlink("loop2", d.join("loop1")).unwrap();
        symlink("loop1", d.join("loop2")).unwrap();
        assert!(matches!(
            OutputTarget::resolve(&d.join("loop1")),
            Err(OutputError::SymlinkLoop { .. })
        ));
        assert!(matches!(
            OutputTarget::resolve(d),
            Err(OutputError::IsDirectory { .. })
        ));
        assert!(matches!(
            OutputTarget::resolve(&d.join("nope/")),
            Err(OutputError::NamesDirectory { .. })
        ));
        assert!(matches!(
            OutputTarget::resolve(&d.join("nope/x.yaml")),
            Err(OutputError::NoDirectory { .. })
        ));
        assert!(matches!(
            OutputTarget::resolve(&new.join("x.yaml")),
            Err(OutputError::NotInDirectory { .. })
        ));
        assert_eq!(
            OutputTarget::resolve(Path::new("/dev/null")).unwrap(),
            OutputTarget::WriteThrough("/dev/null".into())
        );
        assert!(matches!(
            OutputTarget::resolve(Path::new("/dev/stdout")).unwrap(),
            OutputTarget::WriteThrough(p) if p.starts_with("/proc")
        ));
    }
}
