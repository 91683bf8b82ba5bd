//! Claim redemption over HTTPS, as Skupper 1.x does it: what the client
//! side of the core's [`skupper_token::link_ops::Redemption`] needs.
//!
//! - [`client`] holds [`ClaimUrl`] and [`ClientOptions`]; the client itself
//!   is [`crate::runtime::redeem::RedeemClient`], on hyper: it trusts only
//!   the CA in the claim token, checks the host name (or IP address) in the
//!   token's URL, and retries what Skupper retries.
//! - [`http`] holds the names of the request's parts.
//! - [`response`] reads a raw HTTP/1.x answer, for tests and fuzzing that
//!   check exactly what a server sent.
//!
//! The server is [`crate::runtime::claims`] (hyper on tokio); its
//! [`ClaimService`] and [`SiteClaims`] are re-exported here for code that
//! names them from this module.
//!
//! Both sides use rustls with the `ring` provider and TLS 1.3 only (Skupper
//! servers require TLS 1.3 since 1.7).

pub mod client;
pub mod http;
pub mod response;

use std::io;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use crate::runtime::claims::{ClaimService, Clock, SiteClaims};
pub use client::{ClaimUrl, ClientOptions};

/// The rustls crypto provider both sides use: `ring`.
fn tls_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls error inside an I/O error from a TLS stream, if that is what
/// it is.
pub(crate) fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// An I/O error in words: timeouts and closed connections said plainly,
/// anything else with the OS's text.
pub(crate) fn describe_io_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_owned(),
        io::ErrorKind::UnexpectedEof => "the connection was closed by the other side".to_owned(),
        _ => e.to_string(),
    }
}
