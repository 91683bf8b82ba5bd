//! Where a site keeps its state: a versioned key-value store with
//! compare-and-swap, injected by the caller.
//!
//! A [`crate::site::Site`] keeps everything durable in one [`Store`]: its
//! own record (identity, CA, server certificate, revocations), one record per
//! outstanding claim and one per Skupper 2.x access grant (each with the
//! certificates its latest redemptions issued),
//! one per outgoing link, one per cert token certificate it has issued, one
//! per batch of older certificates of a claim with many uses, and one per
//! live incoming link ([`crate::incoming`]). The record types are in
//! [`crate::records`]. Every update is a compare-and-swap on the record's
//! version, so several handles on one store (threads, or processes sharing
//! a directory through the CLI's file store) never overwrite each other's
//! changes.
//!
//! [`MemoryStore`] is the in-process implementation, for embedding and test
//! harnesses. The CLI crate implements the same trait over files.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::records::{
    ClaimRecord, GrantRecord, IncomingRecord, IssuedBatch, IssuedRecord, LinkRecord, SiteRecord,
};

/// A record's version in its store: opaque, positive, and larger after
/// every write of the key (each successful [`Store::compare_and_swap`]
/// that writes it gives it a version it has never had while it exists).
/// That is all every store guarantees: compare versions for equality (and
/// order), never compute one. [`MemoryStore`] and the CLI's file store
/// count 1 on creation and +1 per update (a deleted key created again
/// starts at 1 again); the etcd store uses the key's `mod_revision`, which
/// grows by the number of writes to the whole etcd in between and is never
/// reused.
pub type Version = u64;

/// The kinds of record a site keeps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    /// The site itself (one record, named [`SITE_RECORD_NAME`]).
    Site,
    /// A claim this site issued, named after the claim.
    Claim,
    /// An outgoing link, named after the link.
    Link,
    /// A certificate this site's CA issued, named by its serial (hex).
    Issued,
    /// A live link from another site, named by
    /// [`IncomingRecord::key_name`].
    Incoming,
    /// Certificates issued by redeeming one claim, moved out of its claim
    /// record ([`IssuedBatch`]), named by the serial of the first.
    ClaimIssued,
    /// A Skupper 2.x access grant this site issued ([`GrantRecord`]),
    /// named by its id.
    Grant,
}

impl RecordKind {
    /// Every kind, in a fixed order.
    pub const ALL: [RecordKind; 7] = [
        RecordKind::Site,
        RecordKind::Claim,
        RecordKind::Link,
        RecordKind::Issued,
        RecordKind::Incoming,
        RecordKind::ClaimIssued,
        RecordKind::Grant,
    ];

    /// A short lowercase name: `site`, `claim`, `link`, `issued`,
    /// `incoming`, `claim-issued`, `grant`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Site => "site",
            RecordKind::Claim => "claim",
            RecordKind::Link => "link",
            RecordKind::Issued => "issued",
            RecordKind::Incoming => "incoming",
            RecordKind::ClaimIssued => "claim-issued",
            RecordKind::Grant => "grant",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of the one [`RecordKind::Site`] record.
pub const SITE_RECORD_NAME: &str = "site";

/// The address of a record: its kind and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// What kind of record.
    pub kind: RecordKind,
    /// Its name within the kind (claim name, link name, serial).
    pub name: String,
}

impl Key {
    /// A key of `kind` named `name`.
    pub fn new(kind: RecordKind, name: impl Into<String>) -> Key {
        Key {
            kind,
            name: name.into(),
        }
    }

    /// The key of the site record.
    pub fn site() -> Key {
        Key::new(RecordKind::Site, SITE_RECORD_NAME)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Record {
    /// The site itself.
    Site(Box<SiteRecord>),
    /// A claim this site issued.
    Claim(ClaimRecord),
    /// An outgoing link.
    Link(Box<LinkRecord>),
    /// A certificate this site issued.
    Issued(IssuedRecord),
    /// A live link from another site.
    Incoming(IncomingRecord),
    /// Certificates a claim's redemptions issued, moved out of its record.
    ClaimIssued(IssuedBatch),
    /// A Skupper 2.x access grant this site issued.
    Grant(Box<GrantRecord>),
}

impl Record {
    /// The kind of this record.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Site(_) => RecordKind::Site,
            Record::Claim(_) => RecordKind::Claim,
            Record::Link(_) => RecordKind::Link,
            Record::Issued(_) => RecordKind::Issued,
            Record::Incoming(_) => RecordKind::Incoming,
            Record::ClaimIssued(_) => RecordKind::ClaimIssued,
            Record::Grant(_) => RecordKind::Grant,
        }
    }
}

/// A record and the version it had when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The version the record had when it was read.
    pub version: Version,
    /// The record.
    pub record: T,
}

/// What a [`Store::compare_and_swap`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Cas {
    /// The change was made. The record now has this version (`None` after a
    /// delete).
    Done(Option<Version>),
    /// The record was not at the expected version, so nothing was changed.
    /// It is now at this version (`None`: it does not exist).
    Conflict(Option<Version>),
}

/// Why a store could not do what was asked. Never a conflict: conflicts are
/// [`Cas::Conflict`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be read or written (disk full, permissions, a
    /// lost connection). The message names the place and the cause.
    #[error("store unavailable: {reason}")]
    Unavailable {
        /// What failed, naming the file or resource.
        reason: String,
    },
    /// A stored record cannot be read back (corrupt or hand-edited). It
    /// can still be removed with [`Store::delete`].
    #[error("record {key} in {location} is corrupt: {reason}")]
    Corrupt {
        /// Which record.
        key: Key,
        /// Where it is kept (for a file store, its file).
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// This store cannot keep a record under that name (for example a file
    /// store refusing a name that is not a safe file name).
    #[error("record {key} cannot be stored: {reason}")]
    InvalidKey {
        /// Which record.
        key: String,
        /// Why the name is refused.
        reason: String,
    },
    /// A record was stored under a key of another kind (for example a link
    /// record under a claim key).
    #[error("record {key} holds a {found} record")]
    WrongKind {
        /// Which record.
        key: String,
        /// The kind found.
        found: RecordKind,
    },
}

/// Durable, versioned storage for one site, shared by every handle on that
/// site.
///
/// # Contract
///
/// - [`Store::load`] returns the latest committed record and its version.
/// - [`Store::compare_and_swap`] is atomic: it writes (or deletes) only if
///   the record is still at `expected` (`None` = must not exist), and a
///   reader never sees a half-written record.
/// - A write that returned [`Cas::Done`] is durable.
///
/// # Which failure is safe
///
/// Claim redemption spends the claim's use and records the certificate it
/// issues in one compare-and-swap of the claim record, and hands the
/// certificate out only after that write is done. If the process dies, or
/// the store fails, after the write but before the answer, a use is lost:
/// the claim allows one redemption fewer than it said. The opposite can
/// never happen: no certificate is handed out without its use having been
/// durably counted (and the certificate recorded) first, so a lost or
/// failed update may waste a use but never grants an extra one. An
/// implementation must therefore never report [`Cas::Done`] for a write
/// that may not have happened.
pub trait Store: Send + Sync {
    /// Reads one record.
    fn load(&self, key: &Key) -> Result<Option<Versioned<Record>>, StoreError>;

    /// Reads every record of `kind`, ordered by name.
    fn list(&self, kind: RecordKind) -> Result<Vec<(String, Versioned<Record>)>, StoreError>;

    /// Writes `new` at `key` (or deletes it when `new` is `None`) if, and
    /// only if, the record's current version is `expected` (`None`: the
    /// record must not exist).
    fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Version>,
        new: Option<Record>,
    ) -> Result<Cas, StoreError>;

    /// Removes the record at `key` whatever it holds, without reading it,
    /// so that a corrupt record can be removed too. Returns whether there
    /// was one. A compare-and-swap that read the record before it was
    /// removed then finds it gone ([`Cas::Conflict`]).
    fn delete(&self, key: &Key) -> Result<bool, StoreError>;

    /// The names of the records of `kind`, ordered, without reading the
    /// records (a corrupt one is named too).
    fn names(&self, kind: RecordKind) -> Result<Vec<String>, StoreError>;
}

impl<T: Store + ?Sized> Store for Arc<T> {
    fn load(&self, key: &Key) -> Result<Option<Versioned<Record>>, StoreError> {
        (**self).load(key)
    }
    fn list(&self, kind: RecordKind) -> Result<Vec<(String, Versioned<Record>)>, StoreError> {
        (**self).list(kind)
    }
    fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Version>,
        new: Option<Record>,
    ) -> Result<Cas, StoreError> {
        (**self).compare_and_swap(key, expected, new)
    }
    fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        (**self).delete(key)
    }
    fn names(&self, kind: RecordKind) -> Result<Vec<String>, StoreError> {
        (**self).names(kind)
    }
}

impl<T: Store + ?Sized> Store for &T {
    fn load(&self, key: &Key) -> Result<Option<Versioned<Record>>, StoreError> {
        (**self).load(key)
    }
    fn list(&self, kind: RecordKind) -> Result<Vec<(String, Versioned<Record>)>, StoreError> {
        (**self).list(kind)
    }
    fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Version>,
        new: Option<Record>,
    ) -> Result<Cas, StoreError> {
        (**self).compare_and_swap(key, expected, new)
    }
    fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        (**self).delete(key)
    }
    fn names(&self, kind: RecordKind) -> Result<Vec<String>, StoreError> {
        (**self).names(kind)
    }
}

/// An in-memory [`Store`]: a map behind a mutex. For embedding, tests and
/// harnesses that run many sites in one process. Clone an `Arc<MemoryStore>`
/// to give several handles the same site.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<Key, Versioned<Record>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// How many records the store holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Versioned<Record>>> {
        // Every critical section below leaves the map consistent, so a panic
        // elsewhere while the lock was held cannot have corrupted it.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("records", &self.len())
            .finish()
    }
}

impl Store for MemoryStore {
    fn load(&self, key: &Key) -> Result<Option<Versioned<Record>>, StoreError> {
        Ok(self.lock().get(key).cloned())
    }

    fn list(&self, kind: RecordKind) -> Result<Vec<(String, Versioned<Record>)>, StoreError> {
        let records = self.lock();
        let start = Key::new(kind, String::new());
        Ok(records
            .range(start..)
            .take_while(|(k, _)| k.kind == kind)
            .map(|(k, v)| (k.name.clone(), v.clone()))
            .collect())
    }

    fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Version>,
        new: Option<Record>,
    ) -> Result<Cas, StoreError> {
        if let Some(record) = &new {
            if record.kind() != key.kind {
                return Err(StoreError::WrongKind {
                    key: key.to_string(),
                    found: record.kind(),
                });
            }
        }
        let mut records = self.lock();
        let current = records.get(key).map(|v| v.version);
        if current != expected {
            return Ok(Cas::Conflict(current));
        }
        Ok(match new {
            Some(record) => {
                let version = current.map_or(1, |v| v + 1);
                records.insert(key.clone(), Versioned { version, record });
                Cas::Done(Some(version))
            }
            None => {
                records.remove(key);
                Cas::Done(None)
            }
        })
    }

    fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        Ok(self.lock().remove(key).is_some())
    }

    fn names(&self, kind: RecordKind) -> Result<Vec<String>, StoreError> {
        let records = self.lock();
        let start = Key::new(kind, String::new());
        Ok(records
            .range(start..)
            .take_while(|(k, _)| k.kind == kind)
            .map(|(k, _)| k.name.clone())
            .collect())
    }
}

/// A record that could not be read while listing its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Which record.
    pub key: Key,
    /// Why it could not be read ([`StoreError::Corrupt`] or
    /// [`StoreError::WrongKind`]).
    pub error: StoreError,
}

/// The records of one kind that could be read, and those that could not,
/// so that a report can show the rest and name each damaged record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing<T> {
    /// The records read, by name.
    pub records: Vec<T>,
    /// The records that are there but cannot be read, by name.
    pub unreadable: Vec<Unreadable>,
}

/// Typed access on top of a [`Store`], used by the site.
pub(crate) mod typed {
    use super::*;

    /// Reads a record and checks its kind with `pick`.
    pub(crate) fn load<T>(
        store: &dyn Store,
        key: &Key,
        pick: impl FnOnce(Record) -> Result<T, RecordKind>,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        match store.load(key)? {
            None => Ok(None),
            Some(Versioned { version, record }) => match pick(record) {
                Ok(record) => Ok(Some(Versioned { version, record })),
                Err(found) => Err(StoreError::WrongKind {
                    key: key.to_string(),
                    found,
                }),
            },
        }
    }

    /// Lists records of `kind`, checking each with `pick`.
    pub(crate) fn list<T>(
        store: &dyn Store,
        kind: RecordKind,
        pick: impl Fn(Record) -> Result<T, RecordKind>,
    ) -> Result<Vec<Versioned<T>>, StoreError> {
        store
            .list(kind)?
            .into_iter()
            .map(|(name, Versioned { version, record })| match pick(record) {
                Ok(record) => Ok(Versioned { version, record }),
                Err(found) => Err(StoreError::WrongKind {
                    key: Key::new(kind, name).to_string(),
                    found,
                }),
            })
            .collect()
    }

    /// Lists records of `kind` one by one: a record that cannot be read
    /// (corrupt, or of another kind) is set aside in
    /// [`Listing::unreadable`] instead of failing the whole list. Any other
    /// error (the store is unavailable) fails it.
    pub(crate) fn list_readable<T>(
        store: &dyn Store,
        kind: RecordKind,
        pick: impl Fn(Record) -> Result<T, RecordKind>,
    ) -> Result<Listing<T>, StoreError> {
        let mut listing = Listing {
            records: Vec::new(),
            unreadable: Vec::new(),
        };
        for name in store.names(kind)? {
            let key = Key::new(kind, name);
            match load(store, &key, &pick) {
                Ok(Some(v)) => listing.records.push(v.record),
                // Deleted since it was named.
                Ok(None) => {}
                Err(error @ (StoreError::Corrupt { .. } | StoreError::WrongKind { .. })) => {
                    listing.unreadable.push(Unreadable { key, error });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(listing)
    }

    pub(crate) fn site(r: Record) -> Result<SiteRecord, RecordKind> {
        match r {
            Record::Site(s) => Ok(*s),
            other => Err(other.kind()),
        }
    }
    pub(crate) fn claim(r: Record) -> Result<ClaimRecord, RecordKind> {
        match r {
            Record::Claim(c) => Ok(c),
            other => Err(other.kind()),
        }
    }
    pub(crate) fn link(r: Record) -> Result<LinkRecord, RecordKind> {
        match r {
            Record::Link(l) => Ok(*l),
            other => Err(other.kind()),
        }
    }
    pub(crate) fn issued(r: Record) -> Result<IssuedRecord, RecordKind> {
        match r {
            Record::Issued(i) => Ok(i),
            other => Err(other.kind()),
        }
    }
    pub(crate) fn incoming(r: Record) -> Result<IncomingRecord, RecordKind> {
        match r {
            Record::Incoming(i) => Ok(i),
            other => Err(other.kind()),
        }
    }
    pub(crate) fn claim_issued(r: Record) -> Result<IssuedBatch, RecordKind> {
        match r {
            Record::ClaimIssued(b) => Ok(b),
            other => Err(other.kind()),
        }
    }
    pub(crate) fn grant(r: Record) -> Result<GrantRecord, RecordKind> {
        match r {
            Record::Grant(g) => Ok(*g),
            other => Err(other.kind()),
        }
    }
}
