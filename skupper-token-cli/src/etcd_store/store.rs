//! [`EtcdStore`]: the [`Store`] implementation on etcd.

use std::sync::Arc;

use etcd_client::{Compare, CompareOp, GetOptions, KeyValue, KvClient, Txn, TxnOp, TxnOpResponse};
use skupper_token::store::{Cas, Key, Record, RecordKind, Store, StoreError, Version, Versioned};

use super::connection::Connection;
use super::retry::{with_retries, EtcdOptions};
use super::runtime::PrivateRuntime;
use super::url::EtcdUrl;
use crate::file_store::{valid_name, MAX_RECORD_BYTES};

/// How many records one page of [`Store::list`] reads.
pub(super) const LIST_PAGE: i64 = 32;

/// How many names one page of [`Store::names`] reads.
const NAMES_PAGE: i64 = 1000;

/// A site's records in etcd. See the [module documentation](super) for the
/// keys, values, versions and guarantees.
///
/// Cloning is cheap and shares the connection and runtime.
#[derive(Clone)]
pub struct EtcdStore {
    shared: Arc<Connection>,
    runtime: Arc<PrivateRuntime>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("url", self.shared.url())
            .finish()
    }
}

impl EtcdStore {
    /// A store on `url` with the default timeouts. Does not contact etcd:
    /// the connection is made by the first request (see
    /// [`EtcdStore::check`]). Fails only when a TLS file cannot be read
    /// or the runtime cannot start.
    pub fn open(url: &EtcdUrl) -> Result<EtcdStore, StoreError> {
        EtcdStore::with_options(url, EtcdOptions::default())
    }

    /// A store on `url` with these timeouts and retries.
    pub fn with_options(url: &EtcdUrl, options: EtcdOptions) -> Result<EtcdStore, StoreError> {
        let shared =
            Connection::new(url.clone(), options).map_err(|reason| StoreError::Unavailable {
                reason: format!("etcd store {url}: {reason}"),
            })?;
        let runtime = PrivateRuntime::new().map_err(|e| StoreError::Unavailable {
            reason: format!("etcd store {url}: cannot start its runtime: {e}"),
        })?;
        Ok(EtcdStore {
            shared: Arc::new(shared),
            runtime: Arc::new(runtime),
        })
    }

    /// The store's URL (its `Display` hides the password).
    pub fn url(&self) -> &EtcdUrl {
        self.shared.url()
    }

    /// The etcd key of a record: `PREFIX/KIND/NAME`.
    pub fn etcd_key(&self, key: &Key) -> String {
        format!("{}/{}/{}", self.url().prefix(), key.kind, key.name)
    }

    /// Contacts etcd (one read), so that a command can report an
    /// unreachable etcd before it starts.
    pub fn check(&self) -> Result<(), StoreError> {
        self.load(&Key::site()).map(|_| ())
    }

    /// Removes every record of the site (everything under the prefix).
    /// Returns how many keys were removed.
    pub fn delete_all(&self) -> Result<u64, StoreError> {
        let prefix = format!("{}/", self.url().prefix());
        let shown = prefix.clone();
        self.run(
            format!("cannot remove the records under {shown}"),
            move |mut kv, _| {
                let prefix = prefix.clone();
                async move {
                    let r = kv
                        .delete(
                            prefix,
                            Some(etcd_client::DeleteOptions::new().with_prefix()),
                        )
                        .await?;
                    Ok(r.deleted().max(0) as u64)
                }
            },
        )
    }

    /// Runs one operation with retries on the private runtime and waits
    /// for it.
    fn run<T, F, Fut>(&self, what: String, attempt: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(KvClient, bool) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>> + Send,
    {
        let shared = self.shared.clone();
        let endpoints = self.url().endpoints().join(", ");
        let prefix = self.url().prefix().to_owned();
        let done = self.runtime.run(async move {
            with_retries(
                &shared,
                || format!("{what} (etcd at {endpoints}, prefix {prefix})"),
                attempt,
            )
            .await
        });
        done.unwrap_or_else(|| {
            Err(StoreError::Unavailable {
                reason: format!("etcd store {}: its runtime stopped", self.url()),
            })
        })
    }

    /// The connection, for a watch.
    pub(super) fn connection(&self) -> Arc<Connection> {
        self.shared.clone()
    }

    /// The private runtime, for a watch.
    pub(super) fn private_runtime(&self) -> Arc<PrivateRuntime> {
        self.runtime.clone()
    }

    /// The key's etcd key, after checking its name.
    pub(super) fn checked_key(&self, key: &Key) -> Result<String, StoreError> {
        valid_name(&key.name).map_err(|why| StoreError::InvalidKey {
            key: key.to_string(),
            reason: format!("it cannot be kept in etcd: {why}"),
        })?;
        Ok(self.etcd_key(key))
    }

    /// Where a record is, for errors.
    fn location(&self, etcd_key: &str) -> String {
        format!(
            "etcd key {etcd_key} at {}",
            self.url().endpoints().join(", ")
        )
    }

    /// Decodes a stored value.
    fn decode(&self, key: &Key, kv: &KeyValue) -> Result<Versioned<Record>, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            key: key.clone(),
            location: self.location(&String::from_utf8_lossy(kv.key())),
            reason,
        };
        if kv.value().len() as u64 > MAX_RECORD_BYTES {
            return Err(corrupt(format!("larger than {MAX_RECORD_BYTES} bytes")));
        }
        let record: Record =
            serde_json::from_slice(kv.value()).map_err(|e| corrupt(e.to_string()))?;
        if record.kind() != key.kind {
            return Err(corrupt(format!(
                "holds a {} record, not a {} record",
                record.kind(),
                key.kind
            )));
        }
        Ok(Versioned {
            version: version_of(kv),
            record,
        })
    }

    /// Every key-value under `kind`, in key order, read page by page at
    /// one revision (a consistent snapshot).
    fn range(&self, kind: RecordKind, keys_only: bool) -> Result<Vec<KeyValue>, StoreError> {
        let start = format!("{}/{kind}/", self.url().prefix());
        // The end of the range: the prefix with its last byte ('/') + 1.
        let end = format!("{}/{kind}0", self.url().prefix());
        let page = if keys_only { NAMES_PAGE } else { LIST_PAGE };
        self.run(
            format!("cannot list the {kind} records"),
            move |mut kv, _| {
                let (start, end) = (start.clone(), end.clone());
                async move {
                    let mut out = Vec::new();
                    let mut from = start.into_bytes();
                    let mut revision = 0;
                    loop {
                        let mut options = GetOptions::new()
                            .with_range(end.clone())
                            .with_limit(page)
                            .with_revision(revision);
                        if keys_only {
                            options = options.with_keys_only();
                        }
                        let mut r = kv.get(from.clone(), Some(options)).await?;
                        if revision == 0 {
                            revision = r.header().map_or(0, |h| h.revision());
                        }
                        let more = r.more();
                        let kvs = r.take_kvs();
                        if let Some(last) = kvs.last() {
                            from = last.key().to_vec();
                            from.push(0);
                        }
                        out.extend(kvs);
                        if !more || out.is_empty() {
                            return Ok(out);
                        }
                    }
                }
            },
        )
    }

    /// The record name of an etcd key of `kind`, if it is one.
    fn name_of(&self, kind: RecordKind, kv: &KeyValue) -> Option<String> {
        let start = format!("{}/{kind}/", self.url().prefix());
        let name = std::str::from_utf8(kv.key()).ok()?.strip_prefix(&start)?;
        valid_name(name).is_ok().then(|| name.to_owned())
    }
}

/// A record's [`Version`]: the key's `mod_revision` (always positive for a
/// key that exists).
fn version_of(kv: &KeyValue) -> Version {
    kv.mod_revision().max(0) as Version
}

/// The bytes stored for a record: its JSON exactly as the file store writes
/// it (pretty, then a newline).
fn encode(key: &Key, record: &Record) -> Result<Vec<u8>, StoreError> {
    let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Unavailable {
        reason: format!("cannot encode record {key}: {e}"),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// One try of a compare-and-swap of `key` from `expected` to `value`
/// (`None`: delete). `retrying`: an earlier try may have been applied, so
/// the record is read first (see the module documentation).
async fn cas_once(
    kv: &mut KvClient,
    key: String,
    expected: Option<Version>,
    value: Option<Vec<u8>>,
    retrying: bool,
) -> Result<Cas, etcd_client::Error> {
    if retrying {
        let r = kv.get(key.clone(), None).await?;
        let current = r.kvs().first();
        match (&value, current) {
            // The earlier try wrote it (the bytes hold a fresh certificate
            // or id, so another writer's record differs).
            (Some(bytes), Some(kv))
                if kv.value() == bytes.as_slice() && Some(version_of(kv)) != expected =>
            {
                return Ok(Cas::Done(Some(version_of(kv))));
            }
            // Deleted, by the earlier try or by someone: gone either way.
            (None, None) if expected.is_some() => return Ok(Cas::Done(None)),
            _ => {}
        }
        let current = current.map(version_of);
        if current != expected {
            return Ok(Cas::Conflict(current));
        }
    }
    let compare = match expected {
        None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
        Some(v) => Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            i64::try_from(v).unwrap_or(i64::MAX),
        ),
    };
    let then = match (&value, expected) {
        (Some(bytes), _) => vec![TxnOp::put(key.clone(), bytes.clone(), None)],
        (None, Some(_)) => vec![TxnOp::delete(key.clone(), None)],
        // "Delete if absent": nothing to do when it is absent.
        (None, None) => vec![],
    };
    let txn = Txn::new()
        .when([compare])
        .and_then(then)
        .or_else([TxnOp::get(key, None)]);
    let r = kv.txn(txn).await?;
    if r.succeeded() {
        let revision = r.header().map_or(0, |h| h.revision()).max(0) as Version;
        return Ok(Cas::Done(value.map(|_| revision)));
    }
    let current = r.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => Some(get.kvs().first().map(version_of)),
        _ => None,
    });
    Ok(Cas::Conflict(current.flatten()))
}

impl Store for EtcdStore {
    fn load(&self, key: &Key) -> Result<Option<Versioned<Record>>, StoreError> {
        let etcd_key = self.checked_key(key)?;
        let shown = key.to_string();
        let found = self.run(format!("cannot read record {shown}"), move |mut kv, _| {
            let etcd_key = etcd_key.clone();
            async move {
                let mut r = kv.get(etcd_key, None).await?;
                Ok(r.take_kvs().into_iter().next())
            }
        })?;
        found.map(|kv| self.decode(key, &kv)).transpose()
    }

    fn list(&self, kind: RecordKind) -> Result<Vec<(String, Versioned<Record>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.range(kind, false)? {
            if let Some(name) = self.name_of(kind, &kv) {
                let key = Key::new(kind, name);
                let record = self.decode(&key, &kv)?;
                out.push((key.name, record));
            }
        }
        Ok(out)
    }

    fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Version>,
        new: Option<Record>,
    ) -> Result<Cas, StoreError> {
        let etcd_key = self.checked_key(key)?;
        if let Some(record) = &new {
            if record.kind() != key.kind {
                return Err(StoreError::WrongKind {
                    key: key.to_string(),
                    found: record.kind(),
                });
            }
        }
        let value = new.as_ref().map(|r| encode(key, r)).transpose()?;
        let shown = key.to_string();
        self.run(
            format!("cannot write record {shown}"),
            move |mut kv, retrying| {
                let (etcd_key, value) = (etcd_key.clone(), value.clone());
                async move { cas_once(&mut kv, etcd_key, expected, value, retrying).await }
            },
        )
    }

    fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        let etcd_key = self.checked_key(key)?;
        let shown = key.to_string();
        self.run(format!("cannot remove record {shown}"), move |mut kv, _| {
            let etcd_key = etcd_key.clone();
            async move { Ok(kv.delete(etcd_key, None).await?.deleted() > 0) }
        })
    }

    fn names(&self, kind: RecordKind) -> Result<Vec<String>, StoreError> {
        Ok(self
            .range(kind, true)?
            .iter()
            .filter_map(|kv| self.name_of(kind, kv))
            .collect())
    }
}
