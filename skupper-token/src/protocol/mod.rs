//! The link protocol: what two sites say to each other over the mutual-TLS
//! connection of a link, as code that does no I/O.
//!
//! - [`frame`]: the frames on the wire (length-prefixed JSON).
//! - [`connection`]: one connection as a state machine
//!   ([`connection::Connection`]): hello and its checks, heartbeats both
//!   ways, dead-peer detection, pings, goodbyes and revocation notices.
//!   The driver runs TLS and feeds it plaintext.
//! - [`notice`]: the signed revocation notice a listening site sends a
//!   dialing site whose certificate it no longer accepts, and its checks.
//! - [`backoff`]: when an outgoing link dials again ([`Redial`]).
//! - [`printable`]: strings a peer sent, made safe for a log line.

pub mod backoff;
pub mod connection;
pub mod frame;
pub mod notice;
pub mod printable;

pub use backoff::{Backoff, Redial};
pub use connection::{CloseReason, Connection, Event, LocalSite, StateError, Timing};
pub use notice::{NoticeError, OwedNotice, RevokeNotice, Revoked, SignedNotice};
