//! The claims endpoint on hyper: Skupper's claim redemption over HTTPS
//! (HTTP/1.1 and HTTP/2 by ALPN, as Skupper's Go server speaks both).
//!
//! Two layers, each usable alone:
//!
//! - [`ClaimsEndpoint`]: the HTTP service. Request in, response out, the
//!   body read under a size limit and a deadline, the redemption run on
//!   tokio's blocking pool (a durable store write must not stall the
//!   runtime). It is a [`tower_service::Service`] and a
//!   [`hyper::service::Service`], so a tokio application mounts it in its
//!   own hyper or axum server. The mapping from request to response is
//!   [`crate::https::http::handle`], a pure function.
//! - [`serve`]: the server `serve` runs. TLS 1.3 with the site's current
//!   certificate (asked for at every handshake, so a revoke-access applies
//!   to the next connection), a deadline for the TLS handshake and for the
//!   request head, keep-alive, limits on connections in total and per
//!   client address, and graceful shutdown.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::https::current_cert::CurrentCertificate;
use crate::https::http::{self as wire, Body, Limits};
use crate::https::server::ClaimService;

/// Limits and deadlines of the claims endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointOptions {
    /// Request size limits (head and body).
    pub limits: Limits,
    /// Time for the TLS handshake (default 5 s).
    pub handshake_timeout: Duration,
    /// Time from the start of a request to the end of its head (default
    /// 2 s): a client that sends its headers a byte at a time is cut off.
    pub head_timeout: Duration,
    /// Time to receive the body once the head is in (default 2 s).
    pub body_timeout: Duration,
    /// Connections served at once (default 1024); more wait in the
    /// kernel's backlog.
    pub max_connections: usize,
    /// Connections served at once from one client address (default 32);
    /// more are closed at once.
    pub max_connections_per_address: usize,
    /// How long shutdown waits for requests in progress (default 5 s).
    pub shutdown_grace: Duration,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            limits: Limits::default(),
            handshake_timeout: Duration::from_secs(5),
            head_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(2),
            max_connections: 1024,
            max_connections_per_address: 32,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The claims HTTP service over a [`ClaimService`] (normally
/// [`crate::https::server::SiteClaims`]). Cheap to clone.
pub struct ClaimsEndpoint {
    service: Arc<dyn ClaimService>,
    options: EndpointOptions,
}

impl Clone for ClaimsEndpoint {
    fn clone(&self) -> Self {
        ClaimsEndpoint {
            service: self.service.clone(),
            options: self.options,
        }
    }
}

impl fmt::Debug for ClaimsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimsEndpoint")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The response body type.
pub type ResponseBody = Full<Bytes>;

impl ClaimsEndpoint {
    /// The endpoint for `service`.
    pub fn new(service: Arc<dyn ClaimService>, options: EndpointOptions) -> ClaimsEndpoint {
        ClaimsEndpoint { service, options }
    }

    /// The service's options.
    pub fn options(&self) -> &EndpointOptions {
        &self.options
    }

    /// Answers one request.
    pub async fn respond<B>(&self, request: http::Request<B>) -> http::Response<ResponseBody>
    where
        B: hyper::body::Body + Send,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = request.into_parts();
        let limit = self.options.limits.max_body_bytes;
        let body = match tokio::time::timeout(
            self.options.body_timeout,
            Limited::new(body, limit).collect(),
        )
        .await
        {
            Ok(Ok(collected)) => Body::Complete(collected.to_bytes().to_vec()),
            Ok(Err(e)) => Body::Invalid {
                reason: format!("the body could not be read: {e}"),
            },
            Err(_) => Body::Invalid {
                reason: format!(
                    "the body did not arrive within {:?}",
                    self.options.body_timeout
                ),
            },
        };
        let request = wire::Request {
            method: parts.method.as_str().to_owned(),
            target: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
            minor_version: u8::from(parts.version != http::Version::HTTP_10),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).trim().to_owned(),
                    )
                })
                .collect(),
            body,
        };
        let service = self.service.clone();
        let answer = tokio::task::spawn_blocking(move || {
            wire::handle(&request, |redeem| service.redeem(redeem))
        })
        .await
        .unwrap_or_else(|_| wire::Response::text(500, "Internal error"));
        to_hyper(answer)
    }
}

fn to_hyper(answer: wire::Response) -> http::Response<ResponseBody> {
    let mut builder = http::Response::builder()
        .status(answer.status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8");
    for (name, value) in &answer.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(answer.body)))
        .unwrap_or_else(|_| {
            let mut fallback =
                http::Response::new(Full::new(Bytes::from_static(b"Internal error\n")));
            *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, Infallible>> + Send>>;

impl<B> tower_service::Service<http::Request<B>> for ClaimsEndpoint
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> ResponseFuture {
        let endpoint = self.clone();
        Box::pin(async move { Ok(endpoint.respond(request).await) })
    }
}

impl<B> hyper::service::Service<http::Request<B>> for ClaimsEndpoint
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: http::Request<B>) -> ResponseFuture {
        let endpoint = self.clone();
        Box::pin(async move { Ok(endpoint.respond(request).await) })
    }
}

/// Something the server did with a connection, for the log. Never holds a
/// password or a key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// Closed at once: the client address has too many connections open.
    TooManyFromAddress {
        /// The client.
        peer: SocketAddr,
        /// The limit.
        limit: usize,
    },
    /// The TLS handshake failed or timed out.
    HandshakeFailed {
        /// The client.
        peer: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The site has no certificate to present.
    CertificateUnavailable {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for ConnectionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionEvent::TooManyFromAddress { peer, limit } => write!(
                f,
                "claims: connection from {peer} closed: {limit} connections from {} already open",
                peer.ip()
            ),
            ConnectionEvent::HandshakeFailed { peer, reason } => {
                write!(f, "claims: TLS handshake with {peer} failed: {reason}")
            }
            ConnectionEvent::CertificateUnavailable { reason } => {
                write!(f, "claims: no certificate to present: {reason}")
            }
        }
    }
}

/// Stops a running [`serve`].
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Sender<bool>);

impl Shutdown {
    /// A handle, and what [`serve`] watches.
    pub fn new() -> (Shutdown, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (Shutdown(tx), rx)
    }

    /// Stops accepting, finishes requests in progress (up to
    /// [`EndpointOptions::shutdown_grace`]), then [`serve`] returns.
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

/// Serves `endpoint` over TLS on `listener` until `stop` says so.
pub async fn serve(
    listener: TcpListener,
    endpoint: ClaimsEndpoint,
    mut stop: watch::Receiver<bool>,
    on_event: Arc<dyn Fn(&ConnectionEvent) + Send + Sync>,
) {
    let options = endpoint.options;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = {
        let on_event = on_event.clone();
        Arc::new(CurrentCertificate::new(
            endpoint.service.clone(),
            provider.clone(),
            move |reason| on_event(&ConnectionEvent::CertificateUnavailable { reason }),
        ))
    };
    let config = match ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
    {
        Ok(builder) => {
            let mut config = builder.with_no_client_auth().with_cert_resolver(resolver);
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Arc::new(config)
        }
        Err(e) => {
            on_event(&ConnectionEvent::CertificateUnavailable {
                reason: format!("cannot set up TLS: {e}"),
            });
            return;
        }
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let per_address = Arc::new(PerAddress::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.head_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: wait a moment.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let Some(address_slot) = per_address.take(peer.ip(), options.max_connections_per_address)
        else {
            on_event(&ConnectionEvent::TooManyFromAddress {
                peer,
                limit: options.max_connections_per_address,
            });
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let endpoint = endpoint.clone();
        let on_event = on_event.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let _address_slot = address_slot;
            let tls =
                match tokio::time::timeout(options.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        return on_event(&ConnectionEvent::HandshakeFailed {
                            peer,
                            reason: e.to_string(),
                        })
                    }
                    Err(_) => {
                        return on_event(&ConnectionEvent::HandshakeFailed {
                            peer,
                            reason: format!("no handshake within {:?}", options.handshake_timeout),
                        })
                    }
                };
            let connection = builder.serve_connection(TokioIo::new(tls), endpoint);
            let _ = watcher.watch(connection.into_owned()).await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(options.shutdown_grace, graceful.shutdown()).await;
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection from an address; closing it frees the slot.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<AddressSlot> {
        let mut open = lock(&self.open);
        let count = open.entry(ip).or_insert(0);
        if *count >= limit.max(1) {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.table.open);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
