//! The listening side: accepting connections, the TLS handshake with the
//! client certificate checked by the core, the hello, and the life of an
//! accepted incoming link.

use std::io::{self, Read as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConnection;
use skupper_token::site::PeerHello;
use time::OffsetDateTime;

use super::conn::{Conn, ConnEnd};
use super::event::{LinkEvent, ListenerKind};
use super::frame::{Frame, FrameBuf, PROTOCOL_VERSION};
use super::tls::explain_server_error;
use super::{fmt_duration, lock, remaining, Incoming, Inner};

/// Where to connect to reach a listener bound to `addr` (to wake it).
pub(crate) fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

pub(crate) fn accept_loop(inner: &Arc<Inner>, kind: ListenerKind, listener: &TcpListener) {
    let mut failures = 0u32;
    loop {
        let accepted = listener.accept();
        if inner.stopping() {
            return;
        }
        let (socket, remote) = match accepted {
            Ok(pair) => {
                failures = 0;
                pair
            }
            Err(e) => {
                inner.error(format!("accepting a connection on the {kind} port"), e);
                failures = failures.saturating_add(1);
                std::thread::sleep(Duration::from_millis(10 * u64::from(failures.min(50))));
                continue;
            }
        };
        let Ok(handle) = socket.try_clone() else {
            continue;
        };
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        // At a cap, the oldest connection still in its handshake is closed
        // to make room (its thread reports it); the new one is refused only
        // when every open connection is linked.
        let admitted = lock(&inner.conns).admit(id, handle, remote.ip(), Instant::now());
        if let Err(full) = admitted {
            let _ = socket.shutdown(Shutdown::Both);
            inner.event(LinkEvent::Busy {
                listener: kind,
                remote,
                full,
            });
            continue;
        }
        let spawned = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("link-incoming".into())
                .stack_size(512 * 1024)
                .spawn(move || {
                    serve(&inner, kind, socket, remote, id);
                    // Last: after this, shutdown no longer waits for us.
                    lock(&inner.conns).remove(id);
                })
        };
        match spawned {
            Ok(thread) => {
                if let Some(c) = lock(&inner.conns).get_mut(id) {
                    c.thread = Some(thread);
                }
            }
            Err(e) => {
                if let Some(c) = lock(&inner.conns).remove(id) {
                    let _ = c.socket.shutdown(Shutdown::Both);
                }
                inner.event(LinkEvent::IncomingRefused {
                    listener: kind,
                    remote,
                    reason: format!("cannot start a thread for it: {e}"),
                });
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Checks a name a dialing site sent.
fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 253 {
        return Err(format!("the hello's {what} must be 1 to 253 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("the hello's {what} has control characters"));
    }
    Ok(())
}

/// One incoming connection, from accept to close.
fn serve(
    inner: &Arc<Inner>,
    kind: ListenerKind,
    mut socket: TcpStream,
    remote: SocketAddr,
    id: u64,
) {
    let refused = |reason: String| {
        // A connection closed to make room says so, whatever its read saw.
        let reason = match lock(&inner.conns).evicted(id) {
            Some(full) => format!("closed to make room for a newer connection: {full}"),
            None => reason,
        };
        inner.event(LinkEvent::IncomingRefused {
            listener: kind,
            remote,
            reason,
        })
    };
    let timeout = inner.options.incoming_handshake_timeout;
    let deadline = Instant::now() + timeout;
    let _ = socket.set_nodelay(true);
    let (config, auth) = match inner.server_tls.config(&inner.site) {
        Ok(c) => c,
        Err(reason) => return refused(reason),
    };
    let mut tls = match ServerConnection::new(config) {
        Ok(tls) => tls,
        Err(e) => return refused(format!("cannot start TLS: {e}")),
    };
    while tls.is_handshaking() {
        let Some(left) = remaining(deadline) else {
            return refused(format!(
                "the TLS handshake did not finish within {}",
                fmt_duration(timeout)
            ));
        };
        let _ = socket.set_read_timeout(Some(left));
        let _ = socket.set_write_timeout(Some(left));
        if let Err(e) = tls.complete_io(&mut socket) {
            let reason = match (
                auth.refusal(),
                e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
            ) {
                (Some(refusal), _) => format!("certificate refused: {refusal}"),
                (None, Some(t)) => format!("TLS handshake failed: {}", explain_server_error(t)),
                (None, None) if is_timeout(&e) => format!(
                    "the TLS handshake did not finish within {}",
                    fmt_duration(timeout)
                ),
                (None, None) => format!("TLS handshake failed: {e}"),
            };
            refused(reason);
            // The alert is on its way: close gently so it is not lost to a
            // reset.
            return linger_close(&mut socket);
        }
    }
    if inner.stopping() {
        return;
    }
    // Its certificate authenticated: no longer closed to make room.
    if !lock(&inner.conns).settle(id) {
        return refused("closed to make room".into());
    }
    let chain: Vec<Vec<u8>> = tls
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect())
        .unwrap_or_default();
    let conn = match Conn::new(socket, tls.into(), remote, inner.timing()) {
        Ok(c) => Arc::new(c),
        Err(e) => return refused(format!("cannot set up the connection: {e}")),
    };
    let mut buf = FrameBuf::new();

    // The hello.
    let hello = match conn.read_frame(&mut buf, deadline) {
        Ok(Frame::Hello {
            site_id,
            site_name,
            link,
            ..
        }) => {
            // The same rule as for the site id a claim's certificate is
            // issued to.
            let checked = skupper_token::site_id::check(&site_id)
                .map_err(|e| format!("the hello's site id is not usable: {e}"))
                .and(check_name("site name", &site_name))
                .and(check_name("link name", &link));
            if let Err(reason) = checked {
                return refuse(inner, &conn, &mut buf, kind, remote, reason);
            }
            PeerHello {
                site_id,
                site_name,
                link,
            }
        }
        Ok(other) => {
            let reason = format!(
                "expected a hello, got a {} frame: the dialing side does not speak this link protocol",
                other.kind()
            );
            return refuse(inner, &conn, &mut buf, kind, remote, reason);
        }
        Err(end) => {
            conn.abort();
            return refused(match end {
                ConnEnd::Dead => format!(
                    "no hello within {} of the connection",
                    fmt_duration(timeout)
                ),
                ConnEnd::Tls(e) => format!("TLS error before the hello: {e}"),
                ConnEnd::Frame(e) => e.to_string(),
                ConnEnd::Eof => "the dialing side closed the connection before its hello".into(),
                other => format!("the connection ended before the hello: {other:?}"),
            });
        }
    };

    // Accept it.
    let now = OffsetDateTime::now_utc();
    let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let ca_generation = inner.ca_generation_of(&refs, now);
    let accepted = {
        let mut incoming = lock(&inner.incoming);
        if inner.stopping() {
            drop(incoming);
            conn.abort();
            return;
        }
        match inner.site.accept_incoming(&refs, &hello, now) {
            Ok(link) => {
                let entry = Incoming {
                    conn: conn.clone(),
                    listener: kind,
                    peer_site_id: hello.site_id.clone(),
                    peer_site_name: hello.site_name.clone(),
                    link: hello.link.clone(),
                    chain: chain.clone(),
                    certificate: link.certificate.clone(),
                    ca_generation,
                    since: now,
                };
                let older: Vec<Arc<Conn>> = incoming
                    .values()
                    .filter(|o| o.same_link(&entry))
                    .map(|o| o.conn.clone())
                    .collect();
                incoming.insert(id, entry);
                Ok((link, older))
            }
            Err(e) => Err(e),
        }
    };
    let (link, older) = match accepted {
        Ok(a) => a,
        Err(e) => {
            return refuse(
                inner,
                &conn,
                &mut buf,
                kind,
                remote,
                format!("certificate refused: {e}"),
            )
        }
    };
    for old in older {
        old.close(&[Frame::Bye {
            reason: "replaced by a new connection for the same link".into(),
        }]);
    }
    // Logged before the answer, so the line is there when the peer is
    // linked.
    inner.event(LinkEvent::IncomingAccepted {
        listener: kind,
        remote,
        peer_site_id: hello.site_id.clone(),
        peer_site_name: hello.site_name.clone(),
        link: hello.link.clone(),
        certificate_cn: link.certificate.common_name.clone(),
        certificate_serial: link.certificate.serial_hex.clone(),
    });
    let ack = conn.send(&Frame::HelloAck {
        protocol: PROTOCOL_VERSION,
        site_id: inner.site_id.clone(),
        site_name: inner.site_name.clone(),
    });
    let end = match ack {
        Ok(()) => {
            // Only pings, pongs, heartbeats and goodbyes are expected from
            // here on; anything else is ignored.
            conn.pump(&mut buf, |_, _| None)
        }
        Err(e) => {
            conn.abort();
            ConnEnd::Io(e)
        }
    };

    // Whoever removes the entry reports it: a revocation sweep may have
    // done so already.
    if let Some(entry) = inner.remove_incoming(id) {
        let reason = match end {
            ConnEnd::Eof => "the remote site closed the connection".to_owned(),
            ConnEnd::Bye(r) => format!(
                "the remote site closed the link: {}",
                skupper_token::protocol::printable::printable_text(&r)
            ),
            ConnEnd::Dead => format!(
                "heartbeat timeout: nothing received for {}",
                fmt_duration(inner.options.dead_after)
            ),
            ConnEnd::Tls(e) => format!("TLS error: {e}"),
            ConnEnd::Io(e) => format!("connection lost: {e}"),
            ConnEnd::Frame(e) => e.to_string(),
            ConnEnd::Local => "closed by this site".to_owned(),
            ConnEnd::Handler(r) => r,
        };
        inner.event(LinkEvent::IncomingClosed {
            remote,
            peer_site_id: entry.peer_site_id,
            peer_site_name: entry.peer_site_name,
            link: entry.link,
            reason,
        });
    }
}

/// Closes our side and reads (briefly, boundedly) until the other side
/// closes too, so what was sent last (an alert) is not destroyed by a TCP
/// reset.
fn linger_close(socket: &mut TcpStream) {
    let _ = socket.shutdown(Shutdown::Write);
    let until = Instant::now() + Duration::from_millis(500);
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    while drained < 64 * 1024 {
        let Some(left) = remaining(until) else {
            break;
        };
        let _ = socket.set_read_timeout(Some(left));
        match socket.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Tells the dialing side why its link is not accepted, and closes.
fn refuse(
    inner: &Inner,
    conn: &Conn,
    buf: &mut FrameBuf,
    kind: ListenerKind,
    remote: SocketAddr,
    reason: String,
) {
    inner.event(LinkEvent::IncomingRefused {
        listener: kind,
        remote,
        reason: reason.clone(),
    });
    conn.close(&[Frame::Refused { reason }]);
    // Read until the other side closes (bounded), so the refusal is not
    // lost to a reset.
    let _ = conn.pump(buf, |_, _| None);
}
