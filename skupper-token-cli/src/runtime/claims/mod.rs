//! The claims endpoint on hyper: Skupper's claim redemption over HTTPS
//! (HTTP/1.1 and HTTP/2 by ALPN, as Skupper's Go server speaks both).
//!
//! - [`ClaimsEndpoint`]: the HTTP service. Request in, response out, the
//!   body read under a size limit and a deadline, the redemption run on
//!   tokio's blocking pool (a durable store write must not stall the
//!   runtime). It is a [`tower_service::Service`] and a
//!   [`hyper::service::Service`], so a tokio application mounts it in its
//!   own hyper or axum server. The rules from request to status are pure
//!   functions in [`answer`], and [`grant_answer`] for Skupper 2.x grant
//!   redemptions, which the same endpoint answers (how a request is routed
//!   to a claim or a grant: [`grant_answer`]).
//! - [`serve`]: the server the `serve` command runs. TLS 1.3 with the
//!   site's current certificate (asked for at every handshake, so a
//!   revoke-access applies to the next connection), deadlines for the TLS
//!   handshake and the request head, keep-alive, the admission rule of
//!   [`crate::admission`] (caps in total and per client address, the
//!   oldest connection that is not answering closed to make room), a log
//!   event per answer ([`ServerEvent`]), and graceful shutdown.
//! - [`ClaimService`] and [`SiteClaims`]: what the endpoint needs from a
//!   site, and the implementation over a [`skupper_token::site::Site`].

pub mod answer;
mod current_cert;
mod endpoint;
mod event;
pub mod grant_answer;
mod server;
mod service;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

pub use endpoint::{ClaimsEndpoint, ResponseBody};
pub use event::ServerEvent;
pub use server::{connection_builder, serve, serve_with_gate, Shutdown};
pub use service::{ClaimService, Clock, SiteClaims};

use crate::admission::ConnLimits;

/// Size limits for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The request line and headers (default 16 KiB; hyper reads at least
    /// 8 KiB of an HTTP/1.1 head before it gives up).
    pub max_head_bytes: usize,
    /// The body (default 4 KiB; a claim password is 24 bytes).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 16 * 1024,
            max_body_bytes: 4 * 1024,
        }
    }
}

/// Limits and deadlines of the claims endpoint and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointOptions {
    /// Request size limits (head and body).
    pub limits: Limits,
    /// Time from accepting a connection to the end of its TLS handshake
    /// (default 2 s).
    pub handshake_timeout: Duration,
    /// Time a connection may go without a request running (default 2 s):
    /// from the handshake to the end of the first request head, and
    /// between the answer and the next request head (keep-alive). A client
    /// that sends its headers a byte at a time is cut off.
    pub head_timeout: Duration,
    /// Time to receive the body once the head is in (default 2 s).
    pub body_timeout: Duration,
    /// Connections open at once (default 64). At the cap, the oldest
    /// connection that is not answering a request is closed to make room;
    /// when every open connection is answering, the new one is closed as
    /// soon as it is accepted (the client sees the connection close during
    /// the TLS handshake, and may retry).
    pub max_connections: usize,
    /// Connections from one IP address that are not answering a request
    /// (default 32: more than the 16 honest clients of one address that
    /// redeem at once in the tests, far fewer than a slowloris needs). A
    /// new one over the cap closes the oldest of them.
    pub max_pending_per_address: usize,
    /// How long shutdown waits for answers in progress (default 5 s).
    pub shutdown_grace: Duration,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            limits: Limits::default(),
            handshake_timeout: Duration::from_secs(2),
            head_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(2),
            max_connections: 64,
            max_pending_per_address: 32,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl EndpointOptions {
    /// Refuses caps of zero and zero timeouts.
    pub fn check(&self) -> io::Result<()> {
        self.conn_limits().check()?;
        if self.handshake_timeout.is_zero()
            || self.head_timeout.is_zero()
            || self.body_timeout.is_zero()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the claims server's timeouts must be positive",
            ));
        }
        Ok(())
    }

    /// The admission caps.
    pub fn conn_limits(&self) -> ConnLimits {
        ConnLimits {
            max_connections: self.max_connections,
            max_pending_per_address: self.max_pending_per_address,
        }
    }
}

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
