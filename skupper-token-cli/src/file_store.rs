//! A [`Store`] kept in files: one directory per site.
//!
//! # Layout
//!
//! ```text
//! <dir>/.lock                  the lock file (empty)
//! <dir>/site/site.json         the site record
//! <dir>/claim/<name>.json      one file per claim, with the certificates
//!                              its latest redemptions issued
//! <dir>/link/<name>.json       one file per outgoing link
//! <dir>/issued/<serial>.json   one file per cert token certificate (and
//!                              per claim certificate of older versions)
//! <dir>/incoming/<name>.json   one file per live incoming link
//! <dir>/claim-issued/<serial>.json
//!                              older certificates of a claim of many
//!                              uses, moved out of its file, named after
//!                              the first
//! <dir>/<kind>/.tmp-*          a write in progress, or left by a crash
//! ```
//!
//! Each record file holds the record and its version as JSON:
//! `{"version": 3, "record": {"kind": "claim", ...}}`.
//!
//! # Guarantees
//!
//! - **Atomic, durable writes.** A record is written to a temporary file in
//!   the same directory, which is fsynced, renamed over the record's file,
//!   and then the directory is fsynced. A delete removes the file and
//!   fsyncs the directory. A crash at any instant leaves either the old or
//!   the new record, never a torn one, and
//!   [`Store::compare_and_swap`] returns [`Cas::Done`] only after the
//!   change is on disk. That is one durable write per compare-and-swap,
//!   and a claim redemption is one compare-and-swap (of the claim's file).
//!   Temporary files are never read as records; old ones
//!   are removed by [`FileStore::open`] and [`FileStore::remove_temp_files`].
//! - **Compare-and-swap across processes.** Every compare-and-swap holds an
//!   exclusive advisory lock (`flock(2)`) on `<dir>/.lock` from checking
//!   the current version to the rename (or removal) that makes the change.
//!   The lock file is opened anew for each operation, so threads sharing
//!   one [`FileStore`], several [`FileStore`]s on one directory and several
//!   processes all exclude each other. Reads take no lock: a rename
//!   replaces a file atomically.
//! - **Slow work outside the lock.** The new record's temporary file is
//!   written and fsynced before the lock is taken (after an unlocked check
//!   of the version, so a stale write costs nothing), and the directory is
//!   fsynced after it is released, before the call returns. Writers of
//!   different records (two claims redeemed at once) therefore wait for
//!   each other's disk only as long as a rename, not for two fsyncs each.
//!   Writers in one process that reach the directory fsync together share
//!   one: each returns only after an fsync of the directory that began
//!   after its own rename.
//!   A record that another writer renamed but has not yet fsynced may be
//!   read; any change made on top of it is fsynced with the same directory,
//!   and neither call reports [`Cas::Done`] before that.
//! - **Corrupt records are named and removable.** A record file that
//!   cannot be read back is reported as [`StoreError::Corrupt`] with its
//!   path; [`Store::delete`] removes a record's file (under the lock)
//!   without reading it, and [`Store::names`] lists records without
//!   reading them, so a damaged record can be found and removed.
//! - **Private.** Directories are created with mode `0700` and files with
//!   mode `0600` (records hold private keys), from the moment they exist.
//! - **Contained.** A record name must be 1 to [`MAX_NAME_LEN`] ASCII letters,
//!   digits, `-` and `.`, starting with a letter or digit (Kubernetes object
//!   names and hex serial numbers), so no name can leave its directory or
//!   collide with the lock and temporary files. Any other name is refused
//!   with [`StoreError::InvalidKey`].
//!
//! Advisory locks are honoured by every `skupper-token` process; a program
//! that edits the files without taking the lock is not excluded. `flock(2)`
//! works on local file systems; on network file systems it may not exclude
//! processes on other machines.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rustix::fs::FlockOperation;

mod dir_sync;
use skupper_token::store::{Cas, Key, Record, RecordKind, Store, StoreError, Version, Versioned};

/// The mode of every directory the store creates: owner only.
pub const DIR_MODE: u32 = 0o700;

/// The mode of every file the store creates: owner read and write only.
pub const FILE_MODE: u32 = 0o600;

/// The name of the lock file in a site directory.
pub const LOCK_FILE_NAME: &str = ".lock";

/// The longest record name the store accepts: a file name may have 255
/// bytes, and `.json` takes five.
pub const MAX_NAME_LEN: usize = 250;

/// The largest record file the store reads. Real records are a few
/// kilobytes; anything larger is reported as corrupt rather than read into
/// memory.
pub const MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// How old a temporary file must be before [`FileStore::open`] removes it.
/// A writer's temporary file lives for one write and fsync, so a file this
/// old is left over from a crash.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(60 * 60);

/// Record files end with this.
const RECORD_SUFFIX: &str = ".json";

/// Temporary files start with this (a dot, so never a valid record name).
const TEMP_PREFIX: &str = ".tmp-";

/// Makes temporary file names unique within this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A site's records in a directory. See the [module documentation](self)
/// for the layout and the guarantees.
///
/// A `FileStore` is cheap: it holds only the directory path. Open as many
/// as you like on one directory, in one process or several.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

/// The on-disk form of a record, as written.
#[derive(serde::Serialize)]
struct FileRecordOut<'a> {
    version: Version,
    record: &'a Record,
}

/// The on-disk form of a record, as read.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRecordIn {
    version: Version,
    record: Record,
}

impl FileStore {
    /// Opens the store in `dir`, creating `dir` (and any missing parents,
    /// mode `0700`) and the per-kind directories if needed, and removes
    /// temporary files older than [`STALE_TEMP_AGE`] (best effort).
    ///
    /// Opening does not check that the directory holds a site: use
    /// [`skupper_token::site::Site::open`] for that.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        if dir.as_os_str().is_empty() {
            return Err(StoreError::Unavailable {
                reason: "no site directory given (the path is empty)".into(),
            });
        }
        let mut created = create_dir_durably(&dir)?;
        for kind in RecordKind::ALL {
            created |= create_dir_durably(&dir.join(kind.as_str()))?;
        }
        // Another process may have created these directories and crashed
        // before making their entries durable; make sure they are before
        // any record is written into them. Only an error that can matter
        // is reported: when nothing was created here, the directories
        // were already durable for whoever made them and fsynced.
        let synced = sync_dir(&dir);
        if created {
            synced?;
        }
        let store = FileStore { dir };
        // Best effort: a read-only directory still opens.
        let _ = store.remove_temp_files(STALE_TEMP_AGE);
        Ok(store)
    }

    /// The site directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds (or would hold) the record at `key`. Fails when
    /// the name is not one the store accepts.
    pub fn path_of(&self, key: &Key) -> Result<PathBuf, StoreError> {
        check_name(key)?;
        Ok(self.record_path(key))
    }

    /// Removes temporary files (writes interrupted by a crash) that are at
    /// least `older_than` old. Returns how many were removed.
    ///
    /// A write in progress has a temporary file younger than a second or
    /// so; with an `older_than` shorter than that, it may be removed, and
    /// that write then fails with [`StoreError::Unavailable`] (it never
    /// reports a change that did not happen).
    pub fn remove_temp_files(&self, older_than: Duration) -> Result<usize, StoreError> {
        let _lock = self.lock()?;
        let now = SystemTime::now();
        let mut removed = 0;
        for kind in RecordKind::ALL {
            let dir = self.kind_dir(kind);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(unavailable("read directory", &dir, &e)),
            };
            let mut removed_here = false;
            for entry in entries {
                let entry = entry.map_err(|e| unavailable("read directory", &dir, &e))?;
                let is_temp = entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(TEMP_PREFIX));
                if !is_temp {
                    continue;
                }
                let path = entry.path();
                let modified = match entry.metadata().and_then(|m| m.modified()) {
                    Ok(modified) => modified,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(unavailable("read the age of", &path, &e)),
                };
                // A file from the future (clock changes) has age zero.
                let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
                if age < older_than {
                    continue;
                }
                match fs::remove_file(&path) {
                    Ok(()) => {
                        removed += 1;
                        removed_here = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(unavailable("remove", &path, &e)),
                }
            }
            if removed_here {
                sync_dir(&dir)?;
            }
        }
        Ok(removed)
    }

    fn kind_dir(&self, kind: RecordKind) -> PathBuf {
        self.dir.join(kind.as_str())
    }

    /// The record's path; the name must have been checked.
    fn record_path(&self, key: &Key) -> PathBuf {
        self.kind_dir(key.kind)
            .join(format!("{}{RECORD_SUFFIX}", key.name))
    }

    /// Takes the site's exclusive lock; it is released when the returned
    /// file is dropped (closed).
    fn lock(&self) -> Result<File, StoreError> {
        let path = self.dir.join(LOCK_FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| unavailable("open the lock file", &path, &e))?;
        loop {
            match rustix::fs::flock(&file, FlockOperation::LockExclusive) {
                Ok(()) => return Ok(file),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(unavailable("lock", &path, &io::Error::from(e))),
            }
        }
    }

    /// Reads the record in `path`, which belongs to `key`.
    fn read(&self, key: &Key, path: &Path) -> Result<Option<Versioned<Record>>, StoreError> {
        match read_bytes(path)? {
            Some(bytes) => self.parse(key, path, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The version in `path` now, when its bytes were `before` (parsed as
    /// `seen`) a moment ago: the same bytes are the same record, already
    /// checked, and are not parsed again.
    fn version_now(
        &self,
        key: &Key,
        path: &Path,
        before: Option<&[u8]>,
        seen: Option<Version>,
    ) -> Result<Option<Version>, StoreError> {
        let now = read_bytes(path)?;
        if now.as_deref() == before {
            return Ok(seen);
        }
        match now {
            Some(bytes) => Ok(Some(self.parse(key, path, &bytes)?.version)),
            None => Ok(None),
        }
    }

    /// Parses the bytes of the record file `path`, which belongs to `key`.
    fn parse(&self, key: &Key, path: &Path, bytes: &[u8]) -> Result<Versioned<Record>, StoreError> {
        if bytes.len() as u64 > MAX_RECORD_BYTES {
            return Err(corrupt(
                key,
                path,
                format_args!("larger than {MAX_RECORD_BYTES} bytes"),
            ));
        }
        let FileRecordIn { version, record } =
            serde_json::from_slice(bytes).map_err(|e| corrupt(key, path, e))?;
        if version == 0 {
            return Err(corrupt(key, path, "version 0 (versions start at 1)"));
        }
        if record.kind() != key.kind {
            return Err(corrupt(
                key,
                path,
                format_args!(
                    "holds a {} record, not a {} record",
                    record.kind(),
                    key.kind
                ),
            ));
        }
        Ok(Versioned { version, record })
    }

    /// Writes `bytes` to a new temporary file in `dir` and fsyncs it. The
    /// file is removed again unless [`TempRecord::rename_to`] succeeds.
    fn write_temp(&self, dir: &Path, bytes: &[u8]) -> Result<TempRecord, StoreError> {
        let (path, mut file) = create_temp(dir)?;
        let temp = TempRecord { path: Some(path) };
        file.write_all(bytes)
            .map_err(|e| unavailable("write", temp.path(), &e))?;
        file.sync_all()
            .map_err(|e| unavailable("sync", temp.path(), &e))?;
        Ok(temp)
    }
}

/// A fsynced temporary file holding a new record; removed on drop unless
/// renamed over its record.
struct TempRecord {
    path: Option<PathBuf>,
}

impl TempRecord {
    fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Renames the file over `target` (atomic; durable once the directory
    /// is fsynced).
    fn rename_to(mut self, target: &Path) -> Result<(), StoreError> {
        let Some(path) = self.path.take() else {
            return Ok(());
        };
        fs::rename(&path, target).map_err(|e| {
            // Best effort: an old temporary file is harmless and is
            // removed later.
            let _ = fs::remove_file(&path);
            StoreError::Unavailable {
                reason: format!(
                    "cannot rename {} to {}: {e}",
                    path.display(),
                    target.display()
                ),
            }
        })
    }
}

impl Drop for TempRecord {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Best effort, as above.
            let _ = fs::remove_file(path);
        }
    }
}

impl Store for FileStore {
    fn load(&self, key: &Key) -> Result<Option<Versioned<Record>>, StoreError> {
        let path = self.path_of(key)?;
        self.read(key, &path)
    }

    fn list(&self, kind: RecordKind) -> Result<Vec<(String, Versioned<Record>)>, StoreError> {
        let mut out = Vec::new();
        for name in self.names(kind)? {
            let key = Key::new(kind, name);
            // Deleted since the directory was read: not listed.
            if let Some(record) = self.read(&key, &self.record_path(&key))? {
                out.push((key.name, record));
            }
        }
        Ok(out)
    }

    fn names(&self, kind: RecordKind) -> Result<Vec<String>, StoreError> {
        let dir = self.kind_dir(kind);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(unavailable("read directory", &dir, &e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| unavailable("read directory", &dir, &e))?;
            let file_name = entry.file_name();
            // Temporary files, the lock file and anything else that is not
            // `<valid name>.json` is not a record.
            if let Some(name) = file_name
                .to_str()
                .and_then(|n| n.strip_suffix(RECORD_SUFFIX))
                .filter(|n| valid_name(n).is_ok())
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        let path = self.path_of(key)?;
        let existed = {
            // Under the lock, so that a compare-and-swap that checked the
            // record's version does not rename over it afterwards.
            let _lock = self.lock()?;
            match fs::remove_file(&path) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => return Err(unavailable("remove", &path, &e)),
            }
        };
        if existed {
            dir_sync::sync_shared(&self.kind_dir(key.kind), sync_dir)?;
        }
        Ok(existed)
    }

    fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Version>,
        new: Option<Record>,
    ) -> Result<Cas, StoreError> {
        let path = self.path_of(key)?;
        if let Some(record) = &new {
            if record.kind() != key.kind {
                return Err(StoreError::WrongKind {
                    key: key.to_string(),
                    found: record.kind(),
                });
            }
        }
        // Without the lock: a change that cannot succeed costs no write.
        let before = read_bytes(&path)?;
        let seen = match &before {
            Some(bytes) => Some(self.parse(key, &path, bytes)?.version),
            None => None,
        };
        if seen != expected {
            return Ok(Cas::Conflict(seen));
        }
        let dir = self.kind_dir(key.kind);
        match new {
            Some(record) => {
                let version = match expected {
                    None => 1,
                    Some(v) => v.checked_add(1).ok_or_else(|| {
                        corrupt(key, &path, format_args!("version {v} cannot be increased"))
                    })?,
                };
                let mut bytes = serde_json::to_vec_pretty(&FileRecordOut {
                    version,
                    record: &record,
                })
                .map_err(|e| StoreError::Unavailable {
                    reason: format!("cannot encode record {key} for {}: {e}", path.display()),
                })?;
                bytes.push(b'\n');
                // The directory exists since `open`, unless removed by hand.
                if create_dir_durably(&dir)? {
                    sync_dir(&self.dir)?;
                }
                let temp = self.write_temp(&dir, &bytes)?;
                {
                    let _lock = self.lock()?;
                    let current = self.version_now(key, &path, before.as_deref(), seen)?;
                    if current != expected {
                        // `temp` is removed on return.
                        return Ok(Cas::Conflict(current));
                    }
                    temp.rename_to(&path)?;
                }
                // Until the directory is synced the rename may not survive
                // a crash, so a failure here must not be reported as done.
                // Writers of this directory at the same moment share the
                // fsync (one that starts after every one's rename).
                dir_sync::sync_shared(&dir, sync_dir)?;
                Ok(Cas::Done(Some(version)))
            }
            None => {
                if expected.is_some() {
                    {
                        let _lock = self.lock()?;
                        let current = self.version_now(key, &path, before.as_deref(), seen)?;
                        if current != expected {
                            return Ok(Cas::Conflict(current));
                        }
                        match fs::remove_file(&path) {
                            Ok(()) => {}
                            // Removed by hand since it was read; gone
                            // either way.
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(unavailable("remove", &path, &e)),
                        }
                    }
                    dir_sync::sync_shared(&dir, sync_dir)?;
                }
                Ok(Cas::Done(None))
            }
        }
    }
}

/// The bytes of the record file `path` (at most one more than
/// [`MAX_RECORD_BYTES`], so that a larger file is seen as such); `None`
/// when there is none.
fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unavailable("open", path, &e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unavailable("read", path, &e))?;
    Ok(Some(bytes))
}

/// Whether `name` can be a record's file name (the rule in the module
/// documentation); `Err` says why not. The etcd store keeps names to the
/// same rule, so a site can move between stores.
pub fn valid_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("the name is longer than 250 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err("a name may hold only ASCII letters, digits, '-' and '.'");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("a name must start with a letter or digit");
    }
    Ok(())
}

fn check_name(key: &Key) -> Result<(), StoreError> {
    valid_name(&key.name).map_err(|why| StoreError::InvalidKey {
        key: key.to_string(),
        reason: format!("it cannot be kept in a file: {why}"),
    })
}

fn unavailable(action: &str, path: &Path, e: &io::Error) -> StoreError {
    StoreError::Unavailable {
        reason: format!("cannot {action} {}: {e}", path.display()),
    }
}

fn corrupt(key: &Key, path: &Path, why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.clone(),
        location: path.display().to_string(),
        reason: why.to_string(),
    }
}

/// Fsyncs a directory, making the creation, rename or removal of its
/// entries durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| unavailable("sync directory", dir, &e))
}

/// Creates `dir` and any missing parents with mode [`DIR_MODE`], fsyncing
/// each new directory's parent. Returns whether anything was created.
fn create_dir_durably(dir: &Path) -> Result<bool, StoreError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(false),
        Ok(_) => return Err(not_a_directory(dir)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(unavailable("read", dir, &e)),
    }
    let parent = match dir.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => Path::new("/"),
    };
    create_dir_durably(parent)?;
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {
            sync_dir(parent)?;
            Ok(true)
        }
        // Another process was faster.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => Ok(false),
            _ => Err(not_a_directory(dir)),
        },
        Err(e) => Err(unavailable("create directory", dir, &e)),
    }
}

fn not_a_directory(path: &Path) -> StoreError {
    StoreError::Unavailable {
        reason: format!("{} exists and is not a directory", path.display()),
    }
}

/// Creates a new, empty temporary file in `dir` with mode [`FILE_MODE`].
fn create_temp(dir: &Path) -> Result<(PathBuf, File), StoreError> {
    let pid = std::process::id();
    let mut attempts = 0;
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{TEMP_PREFIX}{pid}-{n}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            // Left by a crashed process that had this pid.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                attempts += 1;
            }
            Err(e) => return Err(unavailable("create", &path, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["site", "a", "link1", "a.b-c", "800A", "0", &"a".repeat(250)] {
            assert_eq!(valid_name(good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/abs",
            ".lock",
            ".tmp-1-2",
            "-a",
            "a b",
            "a_b",
            "a\0b",
            "é",
            "a\\b",
            &"a".repeat(251),
        ] {
            assert!(valid_name(bad).is_err(), "{bad:?}");
        }
    }
}
