//! A [`Store`](skupper_token::store::Store) kept in etcd (v3 API), so that
//! a site can outlive one machine and be shared by processes on several.
//! Built with the `etcd` feature.
//!
//! # Keys and values
//!
//! ```text
//! PREFIX/site/site            the site record
//! PREFIX/claim/<name>         one key per claim
//! PREFIX/link/<name>          one key per outgoing link
//! PREFIX/issued/<serial>      ... one key per record, as the file store
//! PREFIX/incoming/<name>      has one file per record
//! PREFIX/claim-issued/<serial>
//! PREFIX/grant/<id>
//! ```
//!
//! `PREFIX` comes from the URL ([`EtcdUrl`]). A value is the record's JSON,
//! byte for byte what the file store writes in its `record` field (pretty,
//! a newline at the end). Record names follow the file store's rule
//! ([`crate::file_store::valid_name`]), so a site can move between the two.
//!
//! # Versions
//!
//! A record's [`Version`](skupper_token::store::Version) is its key's
//! `mod_revision`: the etcd revision of the write that last changed it.
//! It is positive, grows with every write of the key, and is never reused,
//! not even after the key is deleted and created again. It is not 1 on
//! creation, and it grows by more than 1 when other keys are written in
//! between (revisions count every write to etcd). The store trait promises
//! only this (monotonic per key, opaque); nothing relies on `+1`.
//!
//! # Guarantees
//!
//! - **One transaction per compare-and-swap.** A create is a transaction
//!   `create_revision(key) == 0 → put`, an update
//!   `mod_revision(key) == expected → put`, a delete
//!   `mod_revision(key) == expected → delete`; the `else` branch reads the
//!   key, whose `mod_revision` is the [`Cas::Conflict`] version.
//!   [`Cas::Done`] comes only from a transaction etcd reported as
//!   succeeded: the write is committed on a quorum (and fsynced by each of
//!   its members).
//! - **Safe retries.** A request has a timeout (5 s by default) and one
//!   that fails in a way that can pass (etcd unreachable, no leader, leader
//!   changed, timed out) is retried for a few seconds ([`EtcdOptions`]).
//!   etcd can commit a write and still report an error (a leader lost at
//!   the wrong moment), so a compare-and-swap retried after such a failure
//!   first reads the key back: if it holds exactly the bytes written, at a
//!   new revision, the earlier try was applied and the call reports
//!   [`Cas::Done`] with that revision; if it is still at `expected`, the
//!   transaction is sent again; otherwise it is a [`Cas::Conflict`]. A
//!   claim redemption's record holds the fresh certificate it issues, so
//!   another writer's record never has the same bytes. If the earlier try
//!   was applied and someone changed the key again before the read, the
//!   call reports a conflict: a use may be wasted, never granted twice.
//! - **Clear failures.** When etcd cannot be reached, has no quorum, or
//!   refuses (authentication, permissions, a request too large), the call
//!   fails with [`StoreError::Unavailable`] naming the endpoints, the
//!   prefix and the cause, after the retries (about 10 s at most with the
//!   default options).
//! - **Consistent lists.** [`Store::list`](skupper_token::store::Store::list)
//!   and `names` read page by page at the revision of the first page, so a
//!   list is a snapshot.
//!
//! # Threads and runtime
//!
//! The trait is synchronous; the client is async: each
//! store owns a one-worker tokio runtime, and a call sends its request there
//! and waits on a channel, so it never blocks a worker of the caller's
//! runtime (call it from `spawn_blocking` in async code, like any store).
//!
//! # Security
//!
//! TLS (`etcds://...?ca=FILE`) with an optional client certificate
//! (`&cert=FILE&key=FILE`, etcd's `--client-cert-auth`), and etcd's
//! user/password authentication (URL user information or
//! [`url::USER_ENV`]/[`url::PASSWORD_ENV`]). The password is never
//! displayed. Records hold the site's private keys: give the etcd user
//! access to the prefix only, and use TLS off loopback.
//!
//! [`StoreError::Unavailable`]: skupper_token::store::StoreError::Unavailable
//! [`Cas::Done`]: skupper_token::store::Cas::Done
//! [`Cas::Conflict`]: skupper_token::store::Cas::Conflict

mod connection;
mod retry;
mod runtime;
mod store;
pub mod url;
pub mod watch;

pub use retry::EtcdOptions;
pub use store::EtcdStore;
pub use url::{EtcdUrl, EtcdUrlError};
pub use watch::EtcdWatch;
