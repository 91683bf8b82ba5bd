//! The listening side: one task per listener accepts connections (the
//! admission rule decides which it keeps), one task per connection runs
//! the TLS handshake (the client certificate checked by the core) and then
//! the core's link protocol, whose hello this side accepts or refuses.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skupper_token::protocol::printable::printable_text;
use skupper_token::protocol::{CloseReason, Connection, Event};
use skupper_token::site::PeerHello;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::event::{LinkEvent, ListenerKind};
use super::follow::NotAccepted;
use super::tls::explain_server_error;
use super::{blocking, fmt_duration, lock, ConnTask, Inner};
use crate::admission::{Admitted, Gate};
use crate::runtime::driver::{drive, Clock, Command, Handler};

pub(crate) async fn accept_loop(
    inner: Arc<Inner>,
    kind: ListenerKind,
    listener: TcpListener,
    gate: Gate,
) {
    let mut failures = 0u32;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = inner.stopped() => return,
        };
        let (socket, remote) = match accepted {
            Ok(pair) => {
                failures = 0;
                pair
            }
            Err(e) => {
                inner.error(format!("accepting a connection on the {kind} port"), e);
                failures = failures.saturating_add(1);
                let pause = Duration::from_millis(10 * u64::from(failures.min(50)));
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        // At a cap, the oldest connection still in its handshake is closed
        // to make room (its task reports it); the new one is refused only
        // when every open connection is linked.
        let admitted = match gate.admit(remote.ip(), Instant::now()) {
            Ok(admitted) => admitted,
            Err(full) => {
                drop(socket);
                inner.event(LinkEvent::Busy {
                    listener: kind,
                    remote,
                    full,
                });
                continue;
            }
        };
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        // The task removes its entry at its end, which waits for this lock:
        // the entry is in before that.
        let mut conns = lock(&inner.conns);
        let task = inner
            .handle
            .spawn(serve(inner.clone(), kind, socket, remote, admitted, id));
        conns.insert(
            id,
            ConnTask {
                task: Some(task),
                commands: None,
            },
        );
    }
}

/// One incoming connection, from accept to close.
async fn serve(
    inner: Arc<Inner>,
    kind: ListenerKind,
    socket: TcpStream,
    remote: SocketAddr,
    admitted: Admitted,
    id: u64,
) {
    serve_connection(&inner, kind, socket, remote, admitted, id).await;
    lock(&inner.conns).remove(&id);
}

async fn serve_connection(
    inner: &Arc<Inner>,
    kind: ListenerKind,
    socket: TcpStream,
    remote: SocketAddr,
    admitted: Admitted,
    id: u64,
) {
    let refused = |reason: String| {
        inner.event(LinkEvent::IncomingRefused {
            listener: kind,
            remote,
            reason,
        })
    };
    let timeout = inner.options.incoming_handshake_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let _ = socket.set_nodelay(true);
    // The handshake's state (5.6 KiB: rustls mid-handshake, the
    // acceptor) lives in a box freed when it ends, not inline in this
    // task's future, which stays allocated as long as the link is up.
    let handshake = tokio::select! {
        done = tokio::time::timeout_at(deadline, Box::pin(handshake(inner, socket))) => match done {
            Ok(done) => done,
            Err(_) => Err(format!(
                "the TLS handshake did not finish within {}",
                fmt_duration(timeout)
            )),
        },
        full = admitted.evicted() => Err(format!(
            "closed to make room for a newer connection: {full}"
        )),
        () = inner.stopped() => return,
    };
    let tls = match handshake {
        Ok(tls) => tls,
        Err(reason) => return refused(reason),
    };
    // Its certificate authenticated: no longer closed to make room.
    if !admitted.settle() {
        let reason = match admitted.eviction() {
            Some(full) => format!("closed to make room for a newer connection: {full}"),
            None => "closed to make room for a newer connection".into(),
        };
        return refused(reason);
    }
    let chain: Vec<Vec<u8>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect())
        .unwrap_or_default();
    let (commands, receiver) = mpsc::channel(16);
    {
        let mut conns = lock(&inner.conns);
        // Registered before the stop check: a shutdown either sees the
        // driver (and says goodbye through it) or is seen here.
        if let Some(c) = conns.get_mut(&id) {
            c.commands = Some(commands.clone());
        }
    }
    if inner.stopping() {
        return;
    }
    let clock = Clock::new(OffsetDateTime::now_utc());
    let setup = deadline.saturating_duration_since(tokio::time::Instant::now());
    let conn = Connection::listen(clock.now(), inner.local(), inner.timing(setup));
    let mut handler = Listening {
        inner: inner.clone(),
        kind,
        remote,
        id,
        chain,
        commands,
        last_rtt: Arc::new(Mutex::new(None)),
        accepted: false,
        refused: false,
    };
    let end = drive(
        conn,
        tls,
        clock,
        inner.options.dead_after,
        receiver,
        &mut handler,
    )
    .await;
    if handler.accepted {
        // Whoever removes the entry reports it: a revocation sweep may
        // have done so already.
        let removing = inner.clone();
        let Some(entry) = blocking(move || removing.remove_incoming(id)).await else {
            return;
        };
        let reason = match end {
            CloseReason::Bye { reason } => {
                format!(
                    "the remote site closed the link: {}",
                    printable_text(&reason)
                )
            }
            CloseReason::Dead { .. } => format!(
                "heartbeat timeout: nothing received for {}",
                fmt_duration(inner.options.dead_after)
            ),
            other => other.to_string(),
        };
        inner.event(LinkEvent::IncomingClosed {
            remote,
            peer_site_id: entry.peer_site_id,
            peer_site_name: entry.peer_site_name,
            link: entry.link,
            reason,
        });
    } else if !handler.refused {
        refused(match end {
            CloseReason::SetupTimeout { .. } => format!(
                "no hello within {} of the connection",
                fmt_duration(timeout)
            ),
            CloseReason::PeerClosed => {
                "the dialing side closed the connection before its hello".into()
            }
            // The core refused the hello itself (its site id, say).
            CloseReason::Local { reason } => match reason.strip_prefix("link refused: ") {
                Some(refusal) => refusal.to_owned(),
                None => reason,
            },
            other => other.to_string(),
        });
    }
}

/// The TLS handshake: the ClientHello first (a connection that sends none
/// costs no store read), then the site's current server certificate and CA
/// (read for each connection, so a revoke-access takes effect for the very
/// next handshake), the client certificate checked by the core.
///
/// The stream comes boxed: it is 1.2 KiB of rustls state, and a link's task
/// keeps every value it moves through in its future for as long as the
/// link is up (the handshake's result, the driver's argument and its
/// local), 3.6 KiB a link when moved by value.
async fn handshake(
    inner: &Arc<Inner>,
    socket: TcpStream,
) -> Result<Box<TlsStream<TcpStream>>, String> {
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), socket)
        .await
        .map_err(|e| format!("TLS handshake failed: {}", describe(&e)))?;
    let reading = inner.clone();
    let (config, auth) = blocking(move || reading.server_tls.config(&reading.site)).await?;
    match start.into_stream(config).into_fallible().await {
        Ok(tls) => Ok(Box::new(tls)),
        Err((e, mut socket)) => {
            let reason = match auth.refusal() {
                Some(refusal) => format!("certificate refused: {refusal}"),
                None => format!("TLS handshake failed: {}", describe(&e)),
            };
            // The alert is on its way: close gently so it is not lost to a
            // reset.
            linger_close(&mut socket).await;
            Err(reason)
        }
    }
}

fn describe(e: &io::Error) -> String {
    match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(tls) => explain_server_error(tls),
        None => e.to_string(),
    }
}

/// Closes our side and reads (briefly, boundedly) until the other side
/// closes too, so what was sent last (an alert) is not destroyed by a TCP
/// reset.
async fn linger_close(socket: &mut TcpStream) {
    let _ = socket.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut drained = 0usize;
        while drained < 64 * 1024 {
            match socket.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
}

/// What the listener does with the events of one connection: decides on
/// the hello and records the link.
struct Listening {
    inner: Arc<Inner>,
    kind: ListenerKind,
    remote: SocketAddr,
    id: u64,
    chain: Vec<Vec<u8>>,
    commands: mpsc::Sender<Command>,
    last_rtt: Arc<Mutex<Option<Duration>>>,
    /// The hello was accepted: the link is in the runtime's table.
    accepted: bool,
    /// The refusal is logged already.
    refused: bool,
}

impl Listening {
    fn refuse(&mut self, conn: &mut Connection, now: OffsetDateTime, reason: String) {
        self.inner.event(LinkEvent::IncomingRefused {
            listener: self.kind,
            remote: self.remote,
            reason: reason.clone(),
        });
        self.refused = true;
        let _ = conn.refuse(now, &reason);
    }

    async fn hello(&mut self, hello: PeerHello, conn: &mut Connection, now: OffsetDateTime) {
        let asked = tokio::time::Instant::now();
        let accepting = {
            let inner = self.inner.clone();
            let (id, kind, remote) = (self.id, self.kind, self.remote);
            let (chain, commands, last_rtt) = (
                // Needed once, for this hello: not kept for the life of
                // the link.
                std::mem::take(&mut self.chain),
                self.commands.clone(),
                self.last_rtt.clone(),
            );
            let hello = hello.clone();
            blocking(move || {
                inner.accept_link(id, kind, remote, chain, &hello, commands, last_rtt, now)
            })
            .await
        };
        // The store may have taken a while: the connection goes on from
        // now.
        let now = now + asked.elapsed();
        let (link, older) = match accepting {
            Ok(accepted) => accepted,
            Err(NotAccepted::Stopping) => return conn.close(now, "the site is stopping"),
            Err(NotAccepted::Refused(e)) => {
                return self.refuse(conn, now, format!("certificate refused: {e}"))
            }
        };
        self.accepted = true;
        for old in older {
            let _ = old.try_send(Command::Close {
                reason: "replaced by a new connection for the same link".into(),
            });
        }
        // Logged before the answer, so the line is there when the peer is
        // linked.
        self.inner.event(LinkEvent::IncomingAccepted {
            listener: self.kind,
            remote: self.remote,
            peer_site_id: hello.site_id,
            peer_site_name: hello.site_name,
            link: hello.link,
            certificate_cn: link.certificate.common_name,
            certificate_serial: link.certificate.serial_hex,
        });
        let _ = conn.accept(now);
    }
}

impl Handler for Listening {
    async fn on_event(&mut self, event: Event, conn: &mut Connection, now: OffsetDateTime) {
        if let Event::Hello(hello) = event {
            self.hello(hello, conn, now).await;
        }
    }

    fn on_rtt(&mut self, rtt: Duration) {
        *lock(&self.last_rtt) = Some(rtt);
    }
}
