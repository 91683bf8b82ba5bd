//! # skupper-token-cli
//!
//! The parts of the `skupper-token` command that touch the operating
//! system, as a library: the [`file_store::FileStore`], which keeps a
//! site's records in a directory so that several processes (a `serve`
//! daemon and CLI commands) can share one site; on tokio
//! ([`runtime`]): the claims endpoint on hyper ([`runtime::claims`]), the
//! redemption client ([`runtime::redeem`]) and the driver of the core's link
//! protocol ([`runtime::driver`]); live mutual-TLS links
//! ([`links::LinkRuntime`], one task per connection); the [`control`]
//! socket; and [`os_random::OsRandom`].
//!
//! With the `etcd` feature (on by default), [`etcd_store::EtcdStore`]
//! keeps a site in etcd instead, for sites shared by several machines.
//!
//! The core crate `skupper-token` does no I/O; this crate supplies it.
//!
//! The `skupper-token` binary is built with the default `cli` feature,
//! which brings what only the binary uses (clap, YAML output, signal
//! handling, progress display). An embedder that wants only the adapters
//! depends on this crate with `default-features = false`.
// The CLI is where the OS is allowed in: lift the workspace's I/O bans.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admission;
pub mod control;
#[cfg(feature = "etcd")]
pub mod etcd_store;
pub mod file_store;
pub mod fs_util;
pub mod https;
pub mod links;
pub mod listen;
pub mod log_summary;
pub mod os_random;
pub mod runtime;
pub mod site_lock;
pub mod user_file;

#[cfg(feature = "etcd")]
pub use etcd_store::EtcdStore;
pub use file_store::FileStore;
