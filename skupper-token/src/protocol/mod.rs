//! The link protocol: what two sites say to each other over the mutual-TLS
//! connection of a link, as code that does no I/O.
//!
//! - [`frame`]: the frames on the wire (length-prefixed JSON).
//! - [`connection`]: one connection as a state machine
//!   ([`connection::Connection`]): hello and its checks, heartbeats both
//!   ways, dead-peer detection, pings, goodbyes and revocation notices.
//!   The driver runs TLS and feeds it plaintext.
//! - [`backoff`]: when an outgoing link dials again.

pub mod backoff;
pub mod connection;
pub mod frame;

pub use backoff::Backoff;
pub use connection::{CloseReason, Connection, Event, LocalSite, StateError, Timing};
