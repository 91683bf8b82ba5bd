//! [`serve`]: the claims server `serve` runs, on tokio. TLS 1.3 with the
//! site's current certificate, HTTP/1.1 and HTTP/2 by ALPN, keep-alive,
//! deadlines, the admission rule of [`crate::admission`], one log event per
//! answer or dropped connection, and graceful shutdown.
//!
//! A connection's life:
//!
//! 1. Accepted, it asks the [`Gate`]: at a cap the oldest pending
//!    connection is closed to make room; if every open connection is
//!    answering, the new one is closed at once ([`ServerEvent::Busy`]).
//! 2. The TLS handshake, within [`EndpointOptions::handshake_timeout`].
//! 3. Requests. While one runs the connection is settled (never closed to
//!    make room); a connection with no request running for
//!    [`EndpointOptions::head_timeout`] is closed: before its first request
//!    that is the deadline for the request head, between requests the
//!    keep-alive idle time. Idle, it is pending again, so idle keep-alive
//!    connections cannot fill the server either.
//!
//! Shutdown stops accepting, closes connections that are not answering,
//! lets answers in progress finish (at most
//! [`EndpointOptions::shutdown_grace`]), then [`serve`] returns.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::current_cert::CurrentCertificate;
use super::endpoint::{Activity, EventSink};
use super::{ClaimsEndpoint, EndpointOptions, ServerEvent};
use crate::admission::{Admitted, Gate};
use crate::https::{describe_io_error, tls_error};
use crate::links::fmt_duration;

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

/// The HTTP connection settings of the claims server: HTTP/1.1 with
/// keep-alive and HTTP/2, heads bounded by [`super::Limits::max_head_bytes`]
/// (HTTP/1.1 answers a larger head with 431), at most 16 requests at once
/// on one HTTP/2 connection. An HTTP/1.1 client that closes its sending
/// side after its request still gets the answer. Deadlines are the server's own (see the module
/// documentation), not hyper's.
pub fn connection_builder(options: &EndpointOptions) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        // hyper's smallest read buffer is 8 KiB.
        .max_buf_size(options.limits.max_head_bytes.max(8192))
        .half_close(true)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(16)
        .max_header_list_size(u32::try_from(options.limits.max_head_bytes).unwrap_or(u32::MAX));
    builder
}

/// Serves `endpoint` over TLS on `listener` until `stop` says so; every
/// answer and every connection closed without one goes to `on_event`.
pub async fn serve(
    listener: TcpListener,
    endpoint: ClaimsEndpoint,
    stop: watch::Receiver<bool>,
    on_event: Arc<dyn Fn(&ServerEvent) + Send + Sync>,
) {
    let gate = Gate::new(endpoint.options().conn_limits());
    serve_with_gate(listener, endpoint, gate, stop, on_event).await;
}

/// [`serve`] admitting connections through `gate` (keep a clone to see
/// how many are open: [`Gate::open`]). The gate's caps apply, not the
/// endpoint's.
pub async fn serve_with_gate(
    listener: TcpListener,
    endpoint: ClaimsEndpoint,
    gate: Gate,
    mut stop: watch::Receiver<bool>,
    on_event: Arc<dyn Fn(&ServerEvent) + Send + Sync>,
) {
    let options = *endpoint.options();
    let Some(acceptor) = acceptor(&endpoint, &on_event) else {
        return;
    };
    let builder = Arc::new(connection_builder(&options));
    let mut connections = JoinSet::new();
    let mut failures = 0u32;
    loop {
        while connections.try_join_next().is_some() {}
        if *stop.borrow_and_update() {
            break;
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => {
                failures = 0;
                pair
            }
            Err(e) => {
                // EMFILE and friends: say so, back off a little, go on.
                on_event(&ServerEvent::AcceptFailed {
                    reason: e.to_string(),
                });
                failures = failures.saturating_add(1);
                let pause = Duration::from_millis(10 * u64::from(failures.min(50)));
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    _ = stop.changed() => break,
                }
            }
        };
        let admitted = match gate.admit(peer.ip(), Instant::now().into_std()) {
            Ok(admitted) => admitted,
            Err(full) => {
                drop(tcp);
                on_event(&ServerEvent::Busy { peer, full });
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let activity = Activity::new(peer, admitted, on_event.clone(), Instant::now());
        connections.spawn(connection(
            tcp,
            activity,
            acceptor.clone(),
            builder.clone(),
            endpoint.clone(),
            stop.clone(),
        ));
    }
    drop(listener);
    let finished = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(options.shutdown_grace, finished)
        .await
        .is_err()
    {
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// The TLS side: TLS 1.3 only, the site's current certificate at every
/// handshake, `h2` and `http/1.1` by ALPN, no session tickets (a resumed
/// session would skip the certificate, and so a revoke-access).
fn acceptor(endpoint: &ClaimsEndpoint, on_event: &EventSink) -> Option<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = {
        let on_event = on_event.clone();
        Arc::new(CurrentCertificate::new(
            endpoint.service().clone(),
            provider.clone(),
            move |reason| on_event(&ServerEvent::CertificateUnavailable { reason }),
        ))
    };
    match ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
    {
        Ok(builder) => {
            let mut config = builder.with_no_client_auth().with_cert_resolver(resolver);
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            config.send_tls13_tickets = 0;
            Some(TlsAcceptor::from(Arc::new(config)))
        }
        Err(e) => {
            on_event(&ServerEvent::CertificateUnavailable {
                reason: format!("cannot set up TLS: {e}"),
            });
            None
        }
    }
}

/// Completes when `stop` says stop (or its sender is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Serves one accepted connection to its end.
async fn connection(
    tcp: TcpStream,
    activity: Activity,
    acceptor: TlsAcceptor,
    builder: Arc<Builder<TokioExecutor>>,
    endpoint: ClaimsEndpoint,
    mut stop: watch::Receiver<bool>,
) {
    let options = *endpoint.options();
    let peer = activity.peer;
    let events = activity.events.clone();
    let dropped = |admitted: &Admitted, reason: String| {
        let reason = match admitted.eviction() {
            Some(full) => format!("closed to make room for a newer connection: {full}"),
            None => reason,
        };
        events(&ServerEvent::Dropped { peer, reason });
    };

    let handshake = tokio::time::timeout(options.handshake_timeout, acceptor.accept(tcp));
    let tls = tokio::select! {
        done = handshake => match done {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return dropped(&activity.admitted, handshake_failure(&e)),
            Err(_) => return dropped(
                &activity.admitted,
                format!(
                    "the TLS handshake did not finish within {}",
                    fmt_duration(options.handshake_timeout)
                ),
            ),
        },
        _ = activity.admitted.evicted() => return dropped(&activity.admitted, String::new()),
        () = stopping(&mut stop) => return,
    };

    let activity = Arc::new(activity);
    let service = endpoint.for_connection(activity.clone());
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    let mut conn = std::pin::pin!(conn);
    let mut shutting_down = false;
    loop {
        let idle_until = activity.idle_deadline(options.head_timeout);
        let idle = async {
            match idle_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    ended_with_error(&activity, &*e, &dropped);
                } else if activity.requests() == 0 {
                    dropped(&activity.admitted, "the client closed the connection without a request".into());
                }
                return;
            }
            _ = activity.admitted.evicted() => {
                return dropped(&activity.admitted, String::new());
            }
            () = idle => {
                // A request may have started meanwhile.
                if activity
                    .idle_deadline(options.head_timeout)
                    .is_none_or(|at| at > Instant::now())
                {
                    continue;
                }
                // Keep-alive connections that answered end quietly.
                if activity.requests() == 0 {
                    dropped(
                        &activity.admitted,
                        format!(
                            "no complete request head within {} of the handshake",
                            fmt_duration(options.head_timeout)
                        ),
                    );
                }
                return;
            }
            () = activity.changed() => {}
            () = stopping(&mut stop), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Logs how a connection ended in an error: a request hyper refused before
/// it reached the endpoint (hyper answered it: 431 for a head over the
/// limit, 400 for a malformed one), or a connection lost before its
/// answer.
fn ended_with_error(
    activity: &Activity,
    e: &(dyn std::error::Error + 'static),
    dropped: &impl Fn(&Admitted, String),
) {
    if let Some(e) = e.downcast_ref::<hyper::Error>() {
        let status = if e.is_parse_too_large() {
            Some(431)
        } else if e.is_parse() && !e.is_parse_status() {
            Some(400)
        } else {
            None
        };
        if let Some(status) = status {
            return (activity.events)(&ServerEvent::Answered {
                peer: activity.peer,
                site: None,
                claim: None,
                status,
                detail: format!("malformed request: {e}"),
            });
        }
    }
    if activity.requests() == 0 {
        let reason = match e.downcast_ref::<io::Error>() {
            Some(io) => match tls_error(io) {
                Some(tls) => format!("TLS error while reading the request: {tls}"),
                None => format!("reading the request failed: {}", describe_io_error(io)),
            },
            None => format!("reading the request failed: {e}"),
        };
        dropped(&activity.admitted, reason);
    }
}

/// A failed handshake in words, with what a client's alert most likely
/// means.
fn handshake_failure(e: &io::Error) -> String {
    use rustls::AlertDescription as A;
    let Some(tls) = tls_error(e) else {
        return format!("TLS handshake failed: {}", describe_io_error(e));
    };
    let hint = match tls {
        rustls::Error::AlertReceived(
            A::BadCertificate | A::UnknownCA | A::DecryptError | A::CertificateUnknown,
        ) => " (the client refused this site's certificate: it may hold a token from before a revoke-access, or from another site)",
        rustls::Error::PeerIncompatible(_) | rustls::Error::AlertReceived(A::ProtocolVersion) => {
            " (the client does not offer TLS 1.3, which this server requires)"
        }
        _ => "",
    };
    format!("TLS handshake failed: {tls}{hint}")
}
