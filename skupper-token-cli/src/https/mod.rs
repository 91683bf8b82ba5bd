//! Claim redemption over HTTPS, as Skupper 1.x does it: the network side of
//! [`skupper_token::site::Site::redeem_claim`] and of the core's
//! [`skupper_token::link_ops::Redemption`].
//!
//! - [`ClaimsServer`] serves a site's claims: `POST /<claim>?site-version=V`
//!   with the `skupper-site-name` header and the password as the body,
//!   answered with a cert token (200) or Skupper's status codes.
//! - [`client`] holds what the client side needs ([`ClaimUrl`],
//!   [`ClientOptions`]); the client is
//!   [`crate::runtime::redeem::RedeemClient`], on hyper: it trusts only the
//!   CA in the claim token, checks the host name (or IP address) in the
//!   token's URL, and retries what Skupper retries.
//! - [`http`] holds the HTTP/1.1 parsing and the request handling as pure
//!   functions, for tests and fuzzing.
//!
//! Both sides use rustls with the `ring` provider and TLS 1.3 only (Skupper
//! servers require TLS 1.3 since 1.7). The server is blocking `std::net` I/O
//! with a thread per connection: a claims endpoint sees a handful of
//! requests, and threads keep the timeouts simple.
//!
//! Wiring, in the CLI:
//!
//! ```no_run
//! use std::sync::Arc;
//! use skupper_token_cli::https::ClaimsServer;
//! use skupper_token_cli::runtime::redeem::RedeemClient;
//! # fn wire(site: Arc<skupper_token::site::Site<skupper_token::store::MemoryStore>>) -> std::io::Result<()> {
//! // `serve`: until stopped.
//! let server = ClaimsServer::for_site(site.clone(), "0.0.0.0:8081".parse().unwrap(), |event| {
//!     println!("{event}");
//! })?;
//! // `link create`: redeem the claim in a token.
//! let client = RedeemClient::default();
//! # let _ = client;
//! server.shutdown();
//! # Ok(()) }
//! ```

pub mod client;
pub(crate) mod current_cert;
pub mod http;
pub mod server;

use std::io;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use client::{ClaimUrl, ClientOptions};
pub use server::{ClaimService, ClaimsServer, Clock, ServerEvent, ServerOptions, SiteClaims};

/// The rustls crypto provider both sides use: `ring`.
fn tls_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls error inside an I/O error from a TLS stream, if that is what
/// it is.
fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// An I/O error in words: timeouts and closed connections said plainly,
/// anything else with the OS's text.
fn describe_io_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_owned(),
        io::ErrorKind::UnexpectedEof => "the connection was closed by the other side".to_owned(),
        _ => e.to_string(),
    }
}
