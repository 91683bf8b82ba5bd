//! The dialing side: one thread per outgoing link with credentials, which
//! connects, keeps the connection up, reconnects with capped exponential
//! backoff and jitter, and records every state change in the store.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use skupper_token::link::{dial_endpoint, LinkRecord, LinkState, RemoteSite};
use skupper_token::pki::{certificate_info, pem_to_der};
use skupper_token::protocol::notice::SignedNotice;
use skupper_token::protocol::printable::{printable, printable_text};
use skupper_token::random::Random as _;
use skupper_token::site::{SiteError, SiteMode};
use skupper_token::token::{CertToken, Endpoint};
use time::OffsetDateTime;

use super::conn::{Conn, ConnEnd};
use super::event::LinkEvent;
use super::frame::{Frame, FrameBuf, PROTOCOL_VERSION};
use super::tls::{client_config, explain_client_error, server_name};
use super::{fmt_duration, lock, remaining, Inner};
use crate::os_random::OsRandom;

/// The reason recorded for the links of a site whose runtime stopped.
pub(crate) const NOT_RUNNING: &str = "site not running (its link runtime stopped)";

/// Why a dialer stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopWhy {
    /// The link was deleted.
    Deleted,
    /// The link got new credentials (a new dialer takes over).
    Replaced,
    /// The runtime is stopping.
    Shutdown,
}

impl fmt::Display for StopWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopWhy::Deleted => "the link was deleted",
            StopWhy::Replaced => "the link has new credentials",
            StopWhy::Shutdown => "the site is stopping",
        })
    }
}

/// What a dialer shows the rest of the runtime.
#[derive(Debug, Clone, Default)]
pub(crate) struct DialStatus {
    pub connected_since: Option<OffsetDateTime>,
    pub reason: Option<String>,
    /// The remote site revoked this link's access (a verified notice, now
    /// or before this runtime started): it will not connect again.
    pub revoked: bool,
    pub remote_site_name: Option<String>,
    pub last_rtt: Option<Duration>,
}

pub(crate) struct DialerShared {
    pub link: String,
    pub remote_site_id: String,
    pub target: String,
    stop: Mutex<Option<StopWhy>>,
    wake: Condvar,
    /// The socket being connected (to close it on stop).
    socket: Mutex<Option<TcpStream>>,
    conn: Mutex<Option<Arc<Conn>>>,
    status: Mutex<DialStatus>,
}

impl DialerShared {
    pub fn new(link: &LinkRecord) -> DialerShared {
        DialerShared {
            link: link.name.clone(),
            remote_site_id: link.remote_site_id.clone(),
            target: link.target().to_owned(),
            stop: Mutex::new(None),
            wake: Condvar::new(),
            socket: Mutex::new(None),
            conn: Mutex::new(None),
            status: Mutex::new(match link.state() {
                // Revoked before this runtime started: it stays so.
                revoked @ LinkState::Revoked { .. } => DialStatus {
                    reason: revoked.reason(),
                    revoked: true,
                    ..DialStatus::default()
                },
                _ => DialStatus::default(),
            }),
        }
    }

    pub fn status(&self) -> DialStatus {
        let mut status = lock(&self.status).clone();
        if let Some(conn) = lock(&self.conn).as_ref() {
            status.last_rtt = conn.last_rtt().or(status.last_rtt);
        }
        status
    }

    pub fn conn(&self) -> Option<Arc<Conn>> {
        lock(&self.conn).clone()
    }

    /// This link, as a ping's path.
    pub fn ping_path(&self) -> super::PingPath {
        super::PingPath {
            direction: super::Direction::Outgoing,
            link: self.link.clone(),
            remote_site_id: self.remote_site_id.clone(),
            remote_site_name: self.status().remote_site_name,
        }
    }

    pub fn set_rtt(&self, rtt: Duration) {
        lock(&self.status).last_rtt = Some(rtt);
    }

    fn stopped(&self) -> Option<StopWhy> {
        *lock(&self.stop)
    }

    /// Asks the dialer to stop: wakes its backoff wait, closes its socket
    /// or connection. Does not wait.
    pub fn stop(&self, why: StopWhy) {
        {
            let mut stop = lock(&self.stop);
            if stop.is_some() {
                return;
            }
            *stop = Some(why);
        }
        self.wake.notify_all();
        if let Some(s) = lock(&self.socket).as_ref() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        let conn = lock(&self.conn).clone();
        if let Some(conn) = conn {
            conn.close(&[Frame::Bye {
                reason: why.to_string(),
            }]);
        }
    }

    /// Waits `d` or until stopped; returns whether it was stopped.
    fn wait(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut stop = lock(&self.stop);
        while stop.is_none() {
            let Some(left) = remaining(deadline) else {
                break;
            };
            stop = self
                .wake
                .wait_timeout(stop, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        stop.is_some()
    }
}

/// What a dialer needs for every attempt, made once from the token.
struct Prepared {
    token: CertToken,
    endpoint: Endpoint,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    own_serial: String,
}

fn prepare(inner: &Inner, link: &LinkRecord) -> Result<Prepared, String> {
    let token = link
        .cert_token()
        .map_err(|e| format!("the link's credentials cannot be read: {e}"))?
        .ok_or("the link has no credentials yet")?;
    let endpoint = dial_endpoint(&token, inner.mode == SiteMode::Edge).clone();
    let config = client_config(inner.provider.clone(), &token)
        .map_err(|e| format!("the link's credentials cannot be used: {e}"))?;
    let server_name = server_name(&endpoint.host)?;
    let own_serial = pem_to_der(&token.cert_pem)
        .and_then(|der| certificate_info(&der))
        .map(|i| i.serial_hex)
        .map_err(|e| format!("the link's certificate cannot be read: {e}"))?;
    Ok(Prepared {
        token,
        endpoint,
        config,
        server_name,
        own_serial,
    })
}

/// A small PRNG for backoff jitter, seeded from the OS.
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let mut seed = [0u8; 8];
        OsRandom::new().fill(&mut seed);
        Jitter(u64::from_le_bytes(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        // xorshift64
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Between half of `base` and `base`.
    fn spread(&mut self, base: Duration) -> Duration {
        let half = u64::try_from(base.as_nanos() / 2).unwrap_or(u64::MAX / 2);
        Duration::from_nanos(half + self.next() % (half + 1))
    }
}

/// The dialer's memory across attempts.
struct State<'a> {
    inner: &'a Inner,
    d: &'a DialerShared,
    /// A verified revocation ([`LinkState::Revoked`], terminal in the
    /// record): what failed attempts record from then on, and the reason
    /// shown until the link connects.
    sticky: Option<LinkState>,
    last_reported: Option<String>,
    /// The credentials this dialer dials with: it records states only on
    /// the link that still holds them.
    credentials: String,
}

impl State<'_> {
    fn set_state(&self, next: LinkState, why: &str) {
        if self.d.stopped().is_some_and(|w| w != StopWhy::Shutdown) {
            return;
        }
        match self.inner.site.set_dialed_link_state(
            &self.d.link,
            &self.credentials,
            next,
            why,
            OffsetDateTime::now_utc(),
        ) {
            Ok(_) | Err(SiteError::NoSuchLink { .. } | SiteError::LinkReplaced { .. }) => {}
            Err(e) => self
                .inner
                .error(format!("recording the state of link {}", self.d.link), e),
        }
    }

    fn down(&mut self, reason: String) {
        let revoked = self.sticky.is_some();
        let reason = self
            .sticky
            .as_ref()
            .and_then(LinkState::reason)
            .unwrap_or(reason);
        {
            let mut status = lock(&self.d.status);
            status.connected_since = None;
            status.reason = Some(reason.clone());
            status.revoked = revoked;
        }
        if self.last_reported.as_deref() != Some(reason.as_str()) {
            self.inner.event(LinkEvent::LinkDisconnected {
                link: self.d.link.clone(),
                reason: reason.clone(),
            });
            self.last_reported = Some(reason.clone());
        }
        if let Some(revoked) = self.sticky.clone() {
            self.set_state(revoked, "access revoked");
        } else {
            self.set_state(LinkState::NotConnected { reason }, "not connected");
        }
    }
}

enum Outcome {
    /// The attempt failed before the link was accepted.
    Failed(String),
    /// The link was up and ended.
    Ended(String),
    /// The dialer was asked to stop.
    Stopped,
}

pub(crate) fn run(inner: &Inner, d: &DialerShared, link: &LinkRecord) {
    let prepared = prepare(inner, link);
    let mut state = State {
        inner,
        d,
        sticky: Some(link.state().clone()).filter(LinkState::is_revoked),
        last_reported: None,
        credentials: link.credentials().unwrap_or_default().to_owned(),
    };
    let options = &inner.options;
    let mut jitter = Jitter::new();
    let mut backoff = options.backoff_initial;
    loop {
        if d.stopped().is_some() {
            break;
        }
        let outcome = match &prepared {
            Ok(p) => attempt(&mut state, p),
            Err(reason) => Outcome::Failed(reason.clone()),
        };
        match outcome {
            Outcome::Stopped => break,
            Outcome::Failed(_) if d.stopped().is_some() => break,
            Outcome::Failed(reason) => state.down(reason),
            Outcome::Ended(reason) => {
                if d.stopped().is_some() {
                    break;
                }
                state.down(reason);
                backoff = if state.sticky.is_some() {
                    options.backoff_max
                } else {
                    options.backoff_initial
                };
            }
        }
        if d.wait(jitter.spread(backoff)) {
            break;
        }
        backoff = (backoff * 2).min(options.backoff_max);
    }
    *lock(&d.conn) = None;
    if d.stopped() == Some(StopWhy::Shutdown) && state.sticky.is_none() {
        lock(&d.status).connected_since = None;
        state.set_state(
            LinkState::NotConnected {
                reason: NOT_RUNNING.into(),
            },
            "the site stopped",
        );
    }
}

fn describe_connect_error(addr: &SocketAddr, e: &io::Error, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => format!("connection to {addr} refused"),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("no answer from {addr} within {}", fmt_duration(timeout))
        }
        _ => format!("cannot connect to {addr}: {e}"),
    }
}

/// One connection, from dialing to its end.
fn attempt(state: &mut State<'_>, p: &Prepared) -> Outcome {
    let inner = state.inner;
    let d = state.d;
    let options = &inner.options;
    let host = p.endpoint.host.as_str();
    let addrs: Vec<SocketAddr> = match (host, p.endpoint.port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            return Outcome::Failed(format!("peer unreachable: cannot resolve {host}: {e}"));
        }
    };
    if addrs.is_empty() {
        return Outcome::Failed(format!("peer unreachable: {host} has no addresses"));
    }
    let mut errors = Vec::new();
    let mut connected = None;
    for addr in &addrs {
        if d.stopped().is_some() {
            return Outcome::Stopped;
        }
        match TcpStream::connect_timeout(addr, options.connect_timeout) {
            Ok(s) => {
                connected = Some((s, *addr));
                break;
            }
            Err(e) => errors.push(describe_connect_error(addr, &e, options.connect_timeout)),
        }
    }
    let Some((mut socket, addr)) = connected else {
        return Outcome::Failed(format!("peer unreachable: {}", errors.join("; ")));
    };
    let _ = socket.set_nodelay(true);
    *lock(&d.socket) = socket.try_clone().ok();
    if d.stopped().is_some() {
        *lock(&d.socket) = None;
        return Outcome::Stopped;
    }
    let outcome = handshake_and_run(state, p, &mut socket, addr);
    *lock(&d.socket) = None;
    outcome
}

fn handshake_and_run(
    state: &mut State<'_>,
    p: &Prepared,
    socket: &mut TcpStream,
    addr: SocketAddr,
) -> Outcome {
    let inner = state.inner;
    let d = state.d;
    let timeout = inner.options.handshake_timeout;
    let deadline = Instant::now() + timeout;
    let where_ = addr.to_string();
    let mut tls = match ClientConnection::new(p.config.clone(), p.server_name.clone()) {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(format!("TLS handshake failed: cannot start TLS: {e}")),
    };
    while tls.is_handshaking() {
        let Some(left) = remaining(deadline) else {
            return Outcome::Failed(format!(
                "TLS handshake failed: no answer from {where_} within {}",
                fmt_duration(timeout)
            ));
        };
        let _ = socket.set_read_timeout(Some(left));
        let _ = socket.set_write_timeout(Some(left));
        if let Err(e) = tls.complete_io(socket) {
            if d.stopped().is_some() {
                return Outcome::Stopped;
            }
            return Outcome::Failed(match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                Some(t) => explain_client_error(t, &where_),
                None => match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!(
                        "TLS handshake failed: no answer from {where_} within {}",
                        fmt_duration(timeout)
                    ),
                    io::ErrorKind::UnexpectedEof => format!(
                        "TLS handshake failed: {where_} closed the connection during the handshake (is it a skupper-token site's link port?)"
                    ),
                    _ => format!("TLS handshake failed: {e} (with {where_})"),
                },
            });
        }
    }
    let stream = match socket.try_clone() {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(format!("connection to {where_} failed: {e}")),
    };
    let conn = match Conn::new(stream, tls.into(), addr, inner.timing()) {
        Ok(c) => Arc::new(c),
        Err(e) => return Outcome::Failed(format!("connection to {where_} failed: {e}")),
    };
    let mut buf = FrameBuf::new();
    let hello = Frame::Hello {
        protocol: PROTOCOL_VERSION,
        site_id: inner.site_id.clone(),
        site_name: inner.site_name.clone(),
        link: d.link.clone(),
    };
    if let Err(e) = conn.send(&hello) {
        conn.abort();
        return Outcome::Failed(format!(
            "connection to {where_} lost during link setup: {e}"
        ));
    }
    let remote_name = match conn.read_frame(&mut buf, deadline) {
        Ok(Frame::HelloAck {
            site_id, site_name, ..
        }) => {
            if site_id != d.remote_site_id {
                conn.close(&[Frame::Bye {
                    reason: "wrong site".into(),
                }]);
                return Outcome::Failed(format!(
                    "the site at {where_} is {}, not {} (the site this link's token is from)",
                    printable(&site_id),
                    d.remote_site_id
                ));
            }
            site_name
        }
        Ok(Frame::Refused { reason }) => {
            conn.abort();
            return Outcome::Failed(format!(
                "certificate rejected by the remote site: {} ({where_})",
                printable_text(&reason)
            ));
        }
        Ok(other) => {
            conn.abort();
            return Outcome::Failed(format!(
                "the remote side at {where_} answered the hello with a {} frame: it does not speak this link protocol",
                other.kind()
            ));
        }
        Err(end) => {
            conn.abort();
            if d.stopped().is_some() {
                return Outcome::Stopped;
            }
            return Outcome::Failed(match end {
                ConnEnd::Tls(e) => explain_client_error(&e, &where_),
                ConnEnd::Eof | ConnEnd::Bye(_) => format!(
                    "link refused by the remote site: {where_} closed the connection before accepting the link"
                ),
                ConnEnd::Dead => format!(
                    "no answer from {where_} within {} after the TLS handshake",
                    fmt_duration(timeout)
                ),
                ConnEnd::Frame(e) => format!("{where_}: {e}"),
                other => format!("connection to {where_} lost during link setup: {other:?}"),
            });
        }
    };

    // Connected.
    let since = OffsetDateTime::now_utc();
    state.sticky = None;
    state.last_reported = None;
    {
        let mut status = lock(&d.status);
        status.connected_since = Some(since);
        status.reason = None;
        status.revoked = false;
        status.remote_site_name = Some(remote_name.clone());
    }
    conn.measure_rtt();
    // From now on stop closes the connection gracefully (with a goodbye)
    // rather than cutting the socket.
    *lock(&d.socket) = None;
    *lock(&d.conn) = Some(conn.clone());
    if d.stopped().is_some() {
        // Stop ran before the connection was visible to it.
        conn.close(&[]);
    }
    inner.event(LinkEvent::LinkConnected {
        link: d.link.clone(),
        remote_site_id: d.remote_site_id.clone(),
        remote_site_name: remote_name.clone(),
        target: where_.clone(),
    });
    state.set_state(LinkState::Connected { since }, "connected");

    let mut revoked: Option<String> = None;
    let end = conn.pump(&mut buf, |conn, frame| {
        if let Frame::RevokeNotice { payload, signature } = frame {
            let signed = SignedNotice { payload, signature };
            match signed.verify(&p.token.ca_pem, &d.remote_site_id, &p.own_serial) {
                Ok(n) => {
                    let revocation = LinkState::Revoked {
                        by: RemoteSite {
                            id: n.issuer_site_id.clone(),
                            name: n.issuer_site_name.clone(),
                        },
                        at: n.at,
                    };
                    let reason = revocation.reason().unwrap_or_default();
                    inner.event(LinkEvent::RevocationReceived {
                        link: d.link.clone(),
                        reason: reason.clone(),
                    });
                    state.sticky = Some(revocation);
                    state.down(reason.clone());
                    revoked = Some(reason);
                    conn.close(&[]);
                }
                Err(why) => inner.event(LinkEvent::RevocationIgnored {
                    link: d.link.clone(),
                    reason: why.to_string(),
                }),
            }
        }
        None
    });
    *lock(&d.conn) = None;
    if let Some(r) = revoked {
        return Outcome::Ended(r);
    }
    if d.stopped().is_some() {
        return Outcome::Stopped;
    }
    let peer = format!("{where_} (site {})", printable(&remote_name));
    Outcome::Ended(match end {
        ConnEnd::Dead => format!(
            "heartbeat timeout: no answer from {peer} for {}",
            fmt_duration(inner.options.dead_after)
        ),
        ConnEnd::Eof => format!("the connection to {peer} was closed by the remote site"),
        ConnEnd::Bye(r) => format!(
            "the remote site {peer} closed the link: {}",
            printable_text(&r)
        ),
        ConnEnd::Tls(e) => match &e {
            rustls::Error::AlertReceived(_) => explain_client_error(&e, &where_),
            _ => format!("TLS error on the link to {peer}: {e}"),
        },
        ConnEnd::Io(e) => format!("connection to {peer} lost: {e}"),
        ConnEnd::Frame(e) => format!("{peer}: {e}"),
        ConnEnd::Local => format!("the connection to {peer} was closed by this site"),
        ConnEnd::Handler(r) => r,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_all_of_the_backoff() {
        let mut j = Jitter::new();
        let base = Duration::from_millis(800);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let d = j.spread(base);
            assert!(d >= base / 2 && d <= base, "{d:?}");
            seen.insert(d.as_millis());
        }
        assert!(seen.len() > 100, "the waits should vary");
        assert_eq!(j.spread(Duration::ZERO), Duration::ZERO);
    }
}
