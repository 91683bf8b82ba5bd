//! The dialing side: one task per outgoing link with credentials, which
//! connects, runs the core's link protocol over tokio-rustls, waits on the
//! core's [`Redial`] schedule (jitter from [`OsRandom`]) when the
//! connection fails or ends, and dials again. What each dial and
//! connection came to goes to the core ([`Site::handle_dial`],
//! [`Site::handle_link_closed`], [`Site::handle_revoke_notice`]), which
//! records the link's state and says why, in the same words as for the
//! in-memory harness.
//!
//! [`Site::handle_dial`]: skupper_token::site::Site::handle_dial
//! [`Site::handle_link_closed`]: skupper_token::site::Site::handle_link_closed
//! [`Site::handle_revoke_notice`]: skupper_token::site::Site::handle_revoke_notice

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use skupper_token::link::{LinkInstance, LinkRecord, LinkState};
use skupper_token::link_ops::{Dial, LinkClosed, NoticeRejected};
use skupper_token::protocol::notice::SignedNotice;
use skupper_token::protocol::{Backoff, CloseReason, Connection, Event, Redial};
use skupper_token::site::LinkError;
use skupper_token::transport::TransportError;
use time::OffsetDateTime;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::event::LinkEvent;
use super::tls::{client_config, explain_client_error, server_name};
use super::{blocking, core_duration, fmt_duration, lock, Inner};
use crate::os_random::OsRandom;
use crate::runtime::driver::{drive, Clock, Command, Handler};

/// The reason recorded for the links of a site whose runtime stopped.
pub(crate) const NOT_RUNNING: &str = "site not running (its link runtime stopped)";

/// Why a dialer stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopWhy {
    /// The link was deleted.
    Deleted,
    /// The link was made again or got new credentials (a new dialer
    /// takes over).
    Replaced,
    /// The runtime is stopping.
    Shutdown,
}

impl fmt::Display for StopWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopWhy::Deleted => "the link was deleted",
            StopWhy::Replaced => "the link was made again or has new credentials",
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
    stop: watch::Sender<Option<StopWhy>>,
    /// The driver of the current connection, while there is one.
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    status: Mutex<DialStatus>,
}

impl DialerShared {
    pub fn new(link: &LinkRecord) -> DialerShared {
        DialerShared {
            link: link.name.clone(),
            remote_site_id: link.remote_site_id.clone(),
            target: link.target().to_owned(),
            stop: watch::Sender::new(None),
            commands: Mutex::new(None),
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
        lock(&self.status).clone()
    }

    /// The driver of the connection, when the link is up.
    pub fn connected(&self) -> Option<mpsc::Sender<Command>> {
        let connected = lock(&self.status).connected_since.is_some();
        connected.then(|| lock(&self.commands).clone()).flatten()
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
        *self.stop.borrow()
    }

    /// Asks the dialer to stop: ends its wait or its dial, or says goodbye
    /// on its connection. Does not wait.
    pub fn stop(&self, why: StopWhy) {
        let first = self.stop.send_if_modified(|stop| {
            if stop.is_some() {
                return false;
            }
            *stop = Some(why);
            true
        });
        if !first {
            return;
        }
        if let Some(commands) = lock(&self.commands).as_ref() {
            let _ = commands.try_send(Command::Close {
                reason: why.to_string(),
            });
        }
    }
}

/// What a dialer needs for every attempt, made once from the token.
struct Prepared {
    dial: Dial,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

/// Why a link cannot be dialed at all.
enum Unusable {
    /// Its credentials cannot be read: there is no dial to report on.
    NoDial(String),
    /// They cannot be used for TLS.
    Credentials(Box<Dial>, String),
}

fn prepare(inner: &Inner, link: &LinkRecord) -> Result<Prepared, Unusable> {
    let dial = Dial::for_link(link, inner.local(), inner.mode)
        .map_err(|e| Unusable::NoDial(format!("the link's credentials cannot be read: {e}")))?;
    let config = match client_config(inner.provider.clone(), &dial.credentials) {
        Ok(config) => config,
        Err(e) => {
            let reason = format!("the link's credentials cannot be used: {e}");
            return Err(Unusable::Credentials(Box::new(dial), reason));
        }
    };
    let server_name = match server_name(&dial.endpoint.host) {
        Ok(name) => name,
        Err(reason) => return Err(Unusable::Credentials(Box::new(dial), reason)),
    };
    Ok(Prepared {
        dial,
        config,
        server_name,
    })
}

/// What a dial or connection came to, for the core to record.
enum Report {
    /// The dial failed before the link protocol started.
    Failed(TransportError),
    /// The link protocol ran and ended.
    Closed(LinkClosed),
    /// The dialer stopped, or cannot dial, for this reason.
    Stopped(String),
}

/// The dialer's memory across attempts.
struct Memory {
    /// The link is revoked ([`LinkState::Revoked`], terminal in the
    /// record): the reason shown until it connects.
    revoked: Option<String>,
    last_reported: Option<String>,
}

impl Memory {
    /// Has the core record `report` on the link of `dial` (on the blocking
    /// pool), then shows the link down for the reason it recorded (a
    /// revoked link stays revoked).
    async fn down(&mut self, inner: &Arc<Inner>, d: &DialerShared, dial: &Dial, report: Report) {
        let mut reason = match &report {
            Report::Failed(e) => dial.failure_reason(e),
            Report::Closed(c) => dial.closed_reason(c),
            Report::Stopped(reason) => reason.clone(),
        };
        let site = inner.site.clone();
        let reporting = dial.clone();
        let recorded = blocking(move || {
            let now = OffsetDateTime::now_utc();
            match report {
                Report::Failed(e) => site.handle_dial(&reporting, Err(e), now),
                Report::Closed(c) => site.handle_link_closed(&reporting, &c, now),
                Report::Stopped(reason) => site.handle_dial_stopped(&reporting, &reason, now),
            }
        })
        .await;
        match recorded {
            Ok(link) if link.state().is_revoked() => {
                self.revoked = link.state().reason().or(self.revoked.take());
            }
            Ok(_) => self.revoked = None,
            Err(LinkError::NoSuchLink { .. } | LinkError::LinkReplaced { .. }) => {}
            Err(e) => inner.error(format!("recording the state of link {}", d.link), e),
        }
        if let Some(revoked) = &self.revoked {
            reason = revoked.clone();
        }
        self.show_down(inner, d, reason);
    }

    /// The link is not connected, for `reason`.
    fn show_down(&mut self, inner: &Inner, d: &DialerShared, reason: String) {
        {
            let mut status = lock(&d.status);
            status.connected_since = None;
            status.reason = Some(reason.clone());
            status.revoked = self.revoked.is_some();
        }
        if self.last_reported.as_deref() != Some(reason.as_str()) {
            inner.event(LinkEvent::LinkDisconnected {
                link: d.link.clone(),
                reason: reason.clone(),
            });
            self.last_reported = Some(reason);
        }
    }
}

/// Records `reason` for a link that has no dial (its credentials cannot be
/// read), while it is still the instance `held`.
async fn record_unusable(inner: &Arc<Inner>, d: &DialerShared, held: LinkInstance, reason: &str) {
    let site = inner.site.clone();
    let name = d.link.clone();
    let next = LinkState::NotConnected {
        reason: reason.to_owned(),
    };
    let recorded = blocking(move || {
        site.set_dialed_link_state(
            &name,
            &held,
            next,
            "not connected",
            OffsetDateTime::now_utc(),
        )
    })
    .await;
    match recorded {
        Ok(_) | Err(LinkError::NoSuchLink { .. } | LinkError::LinkReplaced { .. }) => {}
        Err(e) => inner.error(format!("recording the state of link {}", d.link), e),
    }
}

enum Outcome {
    /// The attempt failed or its connection ended; `was_up`: the remote
    /// site had accepted the link.
    Down { report: Report, was_up: bool },
    /// The dialer was asked to stop.
    Stopped,
}

/// The dialer of one link, until it is stopped.
pub(crate) async fn run(inner: Arc<Inner>, d: Arc<DialerShared>, link: LinkRecord) {
    let prepared = prepare(&inner, &link);
    let mut memory = Memory {
        revoked: Some(link.state())
            .filter(|s| s.is_revoked())
            .and_then(LinkState::reason),
        last_reported: None,
    };
    let options = &inner.options;
    let mut redial = Redial::new(Backoff::new(
        core_duration(options.backoff_initial),
        core_duration(options.backoff_max),
    ));
    let mut random = OsRandom::new();
    let mut stop = d.stop.subscribe();
    loop {
        if d.stopped().is_some() {
            break;
        }
        let was_up = match &prepared {
            Ok(p) => match attempt(&inner, &d, &mut memory, p).await {
                Outcome::Stopped => break,
                Outcome::Down { .. } if d.stopped().is_some() => break,
                Outcome::Down { report, was_up } => {
                    memory.down(&inner, &d, &p.dial, report).await;
                    was_up
                }
            },
            Err(Unusable::NoDial(reason)) => {
                if let Some(held) = link.dial_instance() {
                    record_unusable(&inner, &d, held, reason).await;
                }
                memory.show_down(&inner, &d, reason.clone());
                false
            }
            Err(Unusable::Credentials(dial, reason)) => {
                let report = Report::Stopped(reason.clone());
                memory.down(&inner, &d, dial, report).await;
                false
            }
        };
        if was_up {
            redial.connected();
        }
        let now = OffsetDateTime::now_utc();
        let wait = redial.down(now, memory.revoked.is_some(), &mut random);
        let wait = Duration::try_from(wait).unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(Option::is_some) => break,
        }
    }
    *lock(&d.commands) = None;
    if d.stopped() == Some(StopWhy::Shutdown) && memory.revoked.is_none() {
        lock(&d.status).connected_since = None;
        let dial = match &prepared {
            Ok(p) => Some(&p.dial),
            Err(Unusable::Credentials(dial, _)) => Some(&**dial),
            Err(Unusable::NoDial(_)) => None,
        };
        if let Some(dial) = dial.cloned() {
            let site = inner.site.clone();
            let recorded = blocking(move || {
                site.handle_dial_stopped(&dial, NOT_RUNNING, OffsetDateTime::now_utc())
            })
            .await;
            match recorded {
                Ok(_) | Err(LinkError::NoSuchLink { .. } | LinkError::LinkReplaced { .. }) => {}
                Err(e) => inner.error(format!("recording the state of link {}", d.link), e),
            }
        }
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

/// A TCP connection to `addr`, from `from` when it is given
/// ([`super::RuntimeOptions::dial_from`]).
async fn open(addr: SocketAddr, from: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(from) = from else {
        return TcpStream::connect(addr).await;
    };
    let socket = match (from, addr) {
        (IpAddr::V4(_), SocketAddr::V4(_)) => TcpSocket::new_v4()?,
        (IpAddr::V6(_), SocketAddr::V6(_)) => TcpSocket::new_v6()?,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("links are dialed from {from}, another address family"),
            ))
        }
    };
    socket
        .bind(SocketAddr::new(from, 0))
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot dial from {from}: {e}")))?;
    socket.connect(addr).await
}

/// TCP to the first address of the link's host that answers, then the TLS
/// handshake (within [`super::RuntimeOptions::handshake_timeout`]).
async fn connect(
    inner: &Inner,
    p: &Prepared,
) -> Result<(Box<TlsStream<TcpStream>>, SocketAddr, tokio::time::Instant), TransportError> {
    let options = &inner.options;
    let endpoint = &p.dial.endpoint;
    let host = endpoint.host.as_str();
    let unreachable = |reason| TransportError::Unreachable { reason };
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, endpoint.port)).await {
        Ok(a) => a.collect(),
        Err(e) => return Err(unreachable(format!("cannot resolve {host}: {e}"))),
    };
    if addrs.is_empty() {
        return Err(unreachable(format!("{host} has no addresses")));
    }
    let mut errors = Vec::new();
    let mut connected = None;
    for addr in &addrs {
        let timeout = options.connect_timeout;
        match tokio::time::timeout(timeout, open(*addr, options.dial_from)).await {
            Ok(Ok(s)) => {
                connected = Some((s, *addr));
                break;
            }
            Ok(Err(e)) => errors.push(describe_connect_error(addr, &e, timeout)),
            Err(_) => errors.push(format!(
                "no answer from {addr} within {}",
                fmt_duration(timeout)
            )),
        }
    }
    let Some((socket, addr)) = connected else {
        return Err(unreachable(errors.join("; ")));
    };
    let _ = socket.set_nodelay(true);
    let timeout = options.handshake_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let connector = TlsConnector::from(p.config.clone());
    let handshake = connector.connect(p.server_name.clone(), socket);
    let failed = |reason| TransportError::Handshake { reason };
    match tokio::time::timeout_at(deadline, handshake).await {
        // Boxed: the stream (1.2 KiB of rustls state) is moved into the
        // driver, and a pointer moves without leaving copies in each
        // future it passes through.
        Ok(Ok(tls)) => Ok((Box::new(tls), addr, deadline)),
        Ok(Err(e)) => Err(match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            Some(t) => explain_client_error(t, &addr.to_string()),
            None if e.kind() == io::ErrorKind::UnexpectedEof => failed(format!(
                "{addr} closed the connection during the handshake (is it a skupper-token site's link port?)"
            )),
            None => failed(format!("{e} (with {addr})")),
        }),
        Err(_) => Err(failed(format!(
            "no answer from {addr} within {}",
            fmt_duration(timeout)
        ))),
    }
}

/// One connection, from dialing to its end.
async fn attempt(
    inner: &Arc<Inner>,
    d: &DialerShared,
    memory: &mut Memory,
    p: &Prepared,
) -> Outcome {
    let mut stop = d.stop.subscribe();
    let connected = tokio::select! {
        connected = connect(inner, p) => connected,
        _ = stop.wait_for(Option::is_some) => return Outcome::Stopped,
    };
    let (tls, addr, deadline) = match connected {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Down {
                report: Report::Failed(e),
                was_up: false,
            }
        }
    };
    let clock = Clock::new(OffsetDateTime::now_utc());
    let setup = deadline.saturating_duration_since(tokio::time::Instant::now());
    let conn = p.dial.connection(clock.now(), inner.timing(setup));
    let (commands, receiver) = mpsc::channel(16);
    *lock(&d.commands) = Some(commands.clone());
    // A stop before the driver was visible to it.
    if let Some(why) = d.stopped() {
        let _ = commands.try_send(Command::Close {
            reason: why.to_string(),
        });
    }
    let mut dialing = Dialing {
        inner: inner.clone(),
        d,
        memory,
        p,
        where_: addr.to_string(),
        remote_site_name: None,
        tls_error: None,
    };
    let end = drive(
        conn,
        tls,
        clock,
        inner.options.dead_after,
        receiver,
        &mut dialing,
    )
    .await;
    *lock(&d.commands) = None;
    if d.stopped().is_some() {
        return Outcome::Stopped;
    }
    let was_up = dialing.remote_site_name.is_some();
    Outcome::Down {
        report: Report::Closed(dialing.closed(end)),
        was_up,
    }
}

/// What the dialer does with the events of one connection.
struct Dialing<'a> {
    inner: Arc<Inner>,
    d: &'a DialerShared,
    memory: &'a mut Memory,
    p: &'a Prepared,
    /// The address connected to.
    where_: String,
    /// Once connected: the remote site's name from its answer.
    remote_site_name: Option<String>,
    /// The TLS error that broke the connection (a listener's alert).
    tls_error: Option<rustls::Error>,
}

impl Dialing<'_> {
    /// How the connection ended, for the core.
    fn closed(&self, end: CloseReason) -> LinkClosed {
        let mut closed = LinkClosed::new(self.where_.clone(), end);
        // With TLS 1.3 the listener refuses this side's certificate after
        // this side's handshake is done: its alert explains the end.
        let explains = match (&self.tls_error, &self.remote_site_name) {
            (Some(e @ rustls::Error::AlertReceived(_)), _) | (Some(e), None) => Some(e),
            _ => None,
        };
        if let Some(e) = explains {
            closed = closed.broken_by(explain_client_error(e, &self.where_));
        }
        if let Some(name) = &self.remote_site_name {
            closed = closed.after_connected(name.clone());
        }
        closed
    }

    async fn connected(
        &mut self,
        remote_site_name: String,
        conn: &mut Connection,
        now: OffsetDateTime,
    ) {
        let d = self.d;
        let since = OffsetDateTime::now_utc();
        self.memory.revoked = None;
        self.memory.last_reported = None;
        {
            let mut status = lock(&d.status);
            status.connected_since = Some(since);
            status.reason = None;
            status.revoked = false;
            status.remote_site_name = Some(remote_site_name.clone());
        }
        self.remote_site_name = Some(remote_site_name.clone());
        // A first round trip for the snapshot.
        let _ = conn.ping(now);
        self.inner.event(LinkEvent::LinkConnected {
            link: d.link.clone(),
            remote_site_id: d.remote_site_id.clone(),
            remote_site_name,
            target: self.where_.clone(),
        });
        let site = self.inner.site.clone();
        let dial = self.p.dial.clone();
        // A link from a Skupper 2.x file learns the remote site's id here.
        let remote = conn.remote_site_id().unwrap_or_default().to_owned();
        let recorded = blocking(move || site.handle_connected(&dial, &remote, since)).await;
        match recorded {
            Ok(_)
            | Err(
                LinkError::NoSuchLink { .. }
                | LinkError::LinkReplaced { .. }
                | LinkError::Transition(_),
            ) => {}
            Err(e) => self
                .inner
                .error(format!("recording the state of link {}", d.link), e),
        }
    }

    async fn revoke_notice(
        &mut self,
        signed: SignedNotice,
        conn: &mut Connection,
        now: OffsetDateTime,
    ) {
        let d = self.d;
        let site = self.inner.site.clone();
        let dial = self.p.dial.clone();
        let asked = tokio::time::Instant::now();
        // The core checks the notice against the link's token and records
        // the revocation; the link's reason is what it recorded.
        let checked = blocking(move || {
            let checked = site.handle_revoke_notice(&dial, &signed, OffsetDateTime::now_utc())?;
            let recorded = site
                .link(&dial.link)
                .ok()
                .filter(|l| l.state().is_revoked())
                .and_then(|l| l.state().reason());
            Ok::<_, NoticeRejected>(recorded.unwrap_or_else(|| checked.reason()))
        })
        .await;
        let reason = match checked {
            Ok(reason) => reason,
            Err(NoticeRejected::NotGenuine { source, .. }) => {
                return self.inner.event(LinkEvent::RevocationIgnored {
                    link: d.link.clone(),
                    reason: source.to_string(),
                })
            }
            Err(NoticeRejected::Site(
                LinkError::NoSuchLink { .. } | LinkError::LinkReplaced { .. },
            )) => return,
            Err(NoticeRejected::Site(e)) => {
                return self
                    .inner
                    .error(format!("recording the revocation of link {}", d.link), e)
            }
            Err(other) => {
                return self.inner.event(LinkEvent::RevocationIgnored {
                    link: d.link.clone(),
                    reason: other.to_string(),
                })
            }
        };
        self.inner.event(LinkEvent::RevocationReceived {
            link: d.link.clone(),
            reason: reason.clone(),
        });
        self.memory.revoked = Some(reason.clone());
        self.memory.show_down(&self.inner, d, reason);
        conn.close(now + asked.elapsed(), "access revoked");
    }
}

impl Handler for Dialing<'_> {
    async fn on_event(&mut self, event: Event, conn: &mut Connection, now: OffsetDateTime) {
        match event {
            Event::Connected {
                remote_site_name, ..
            } => self.connected(remote_site_name, conn, now).await,
            Event::RevokeNotice { payload, signature } => {
                let signed = SignedNotice { payload, signature };
                self.revoke_notice(signed, conn, now).await;
            }
            _ => {}
        }
    }

    fn on_rtt(&mut self, rtt: Duration) {
        self.d.set_rtt(rtt);
    }

    fn on_transport_error(&mut self, error: &io::Error) -> String {
        if let Some(e) = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            self.tls_error = Some(e.clone());
        }
        error.to_string()
    }
}
