//! The dialing side: one task per outgoing link with credentials, which
//! connects, runs the core's link protocol over tokio-rustls, waits on the
//! core's [`Backoff`] schedule (jitter from [`OsRandom`]) when the
//! connection fails or ends, and dials again; it records every state
//! change in the store.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use skupper_token::link::{dial_endpoint, LinkRecord, LinkState, RemoteSite};
use skupper_token::pki::{certificate_info, pem_to_der};
use skupper_token::protocol::notice::SignedNotice;
use skupper_token::protocol::printable::{printable, printable_text};
use skupper_token::protocol::{Backoff, CloseReason, Connection, Event};
use skupper_token::site::{SiteError, SiteMode};
use skupper_token::token::{CertToken, Endpoint};
use time::OffsetDateTime;
use tokio::net::TcpStream;
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

/// The dialer's memory across attempts.
struct Memory {
    /// A verified revocation ([`LinkState::Revoked`], terminal in the
    /// record): what failed attempts record from then on, and the reason
    /// shown until the link connects.
    sticky: Option<LinkState>,
    last_reported: Option<String>,
    /// The credentials this dialer dials with: it records states only on
    /// the link that still holds them.
    credentials: String,
}

/// Records `next` for the dialer's link (on the blocking pool), unless the
/// dialer was stopped because its link is gone or replaced.
async fn record(inner: &Arc<Inner>, d: &DialerShared, credentials: &str, next: LinkState) {
    if d.stopped().is_some_and(|w| w != StopWhy::Shutdown) {
        return;
    }
    let why = match next {
        LinkState::Connected { .. } => "connected",
        LinkState::Revoked { .. } => "access revoked",
        _ if d.stopped().is_some() => "the site stopped",
        _ => "not connected",
    };
    let site = inner.site.clone();
    let (name, credentials) = (d.link.clone(), credentials.to_owned());
    let recorded = blocking(move || {
        site.set_dialed_link_state(&name, &credentials, next, why, OffsetDateTime::now_utc())
    })
    .await;
    match recorded {
        Ok(_) | Err(SiteError::NoSuchLink { .. } | SiteError::LinkReplaced { .. }) => {}
        Err(e) => inner.error(format!("recording the state of link {}", d.link), e),
    }
}

impl Memory {
    /// The link is not connected, for `reason` (or the revocation).
    async fn down(&mut self, inner: &Arc<Inner>, d: &DialerShared, reason: String) {
        let revoked = self.sticky.is_some();
        let reason = self
            .sticky
            .as_ref()
            .and_then(LinkState::reason)
            .unwrap_or(reason);
        {
            let mut status = lock(&d.status);
            status.connected_since = None;
            status.reason = Some(reason.clone());
            status.revoked = revoked;
        }
        if self.last_reported.as_deref() != Some(reason.as_str()) {
            inner.event(LinkEvent::LinkDisconnected {
                link: d.link.clone(),
                reason: reason.clone(),
            });
            self.last_reported = Some(reason.clone());
        }
        let next = match self.sticky.clone() {
            Some(revoked) => revoked,
            None => LinkState::NotConnected { reason },
        };
        record(inner, d, &self.credentials, next).await;
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

/// The dialer of one link, until it is stopped.
pub(crate) async fn run(inner: Arc<Inner>, d: Arc<DialerShared>, link: LinkRecord) {
    let prepared = prepare(&inner, &link);
    let mut memory = Memory {
        sticky: Some(link.state().clone()).filter(LinkState::is_revoked),
        last_reported: None,
        credentials: link.credentials().unwrap_or_default().to_owned(),
    };
    let options = &inner.options;
    let mut backoff = Backoff::new(
        core_duration(options.backoff_initial),
        core_duration(options.backoff_max),
    );
    let mut random = OsRandom::new();
    let mut stop = d.stop.subscribe();
    loop {
        if d.stopped().is_some() {
            break;
        }
        let outcome = match &prepared {
            Ok(p) => attempt(&inner, &d, &mut memory, p).await,
            Err(reason) => Outcome::Failed(reason.clone()),
        };
        match outcome {
            Outcome::Stopped => break,
            Outcome::Failed(_) if d.stopped().is_some() => break,
            Outcome::Failed(reason) => memory.down(&inner, &d, reason).await,
            Outcome::Ended(reason) => {
                if d.stopped().is_some() {
                    break;
                }
                memory.down(&inner, &d, reason).await;
                // A link that connected starts the schedule over; one whose
                // access was revoked waits the longest.
                if memory.sticky.is_some() {
                    backoff.hold_at_max();
                } else {
                    backoff.reset();
                }
            }
        }
        let wait = Duration::try_from(backoff.next_delay(&mut random)).unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(Option::is_some) => break,
        }
    }
    *lock(&d.commands) = None;
    if d.stopped() == Some(StopWhy::Shutdown) && memory.sticky.is_none() {
        lock(&d.status).connected_since = None;
        let reason = NOT_RUNNING.to_owned();
        record(
            &inner,
            &d,
            &memory.credentials,
            LinkState::NotConnected { reason },
        )
        .await;
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

/// TCP to the first address of the link's host that answers, then the TLS
/// handshake (within [`super::RuntimeOptions::handshake_timeout`]).
async fn connect(
    inner: &Inner,
    p: &Prepared,
) -> Result<(TlsStream<TcpStream>, SocketAddr, tokio::time::Instant), String> {
    let options = &inner.options;
    let host = p.endpoint.host.as_str();
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, p.endpoint.port)).await {
        Ok(a) => a.collect(),
        Err(e) => return Err(format!("peer unreachable: cannot resolve {host}: {e}")),
    };
    if addrs.is_empty() {
        return Err(format!("peer unreachable: {host} has no addresses"));
    }
    let mut errors = Vec::new();
    let mut connected = None;
    for addr in &addrs {
        let timeout = options.connect_timeout;
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
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
        return Err(format!("peer unreachable: {}", errors.join("; ")));
    };
    let _ = socket.set_nodelay(true);
    let timeout = options.handshake_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let connector = TlsConnector::from(p.config.clone());
    let handshake = connector.connect(p.server_name.clone(), socket);
    match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(tls)) => Ok((tls, addr, deadline)),
        Ok(Err(e)) => Err(match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            Some(t) => explain_client_error(t, &addr.to_string()),
            None if e.kind() == io::ErrorKind::UnexpectedEof => format!(
                "TLS handshake failed: {addr} closed the connection during the handshake (is it a skupper-token site's link port?)"
            ),
            None => format!("TLS handshake failed: {e} (with {addr})"),
        }),
        Err(_) => Err(format!(
            "TLS handshake failed: no answer from {addr} within {}",
            fmt_duration(timeout)
        )),
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
        Err(reason) => return Outcome::Failed(reason),
    };
    let clock = Clock::new(OffsetDateTime::now_utc());
    let setup = deadline.saturating_duration_since(tokio::time::Instant::now());
    let conn = Connection::dial(
        clock.now(),
        inner.local(),
        d.link.clone(),
        d.remote_site_id.clone(),
        inner.timing(setup),
    );
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
        revoked: None,
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
    if let Some(reason) = dialing.revoked.take() {
        return Outcome::Ended(reason);
    }
    if d.stopped().is_some() {
        return Outcome::Stopped;
    }
    match &dialing.remote_site_name {
        Some(name) => Outcome::Ended(dialing.ended(end, name)),
        None => Outcome::Failed(dialing.failed(end)),
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
    /// A verified revocation notice arrived: the link's reason.
    revoked: Option<String>,
    /// The TLS error that broke the connection (a listener's alert).
    tls_error: Option<rustls::Error>,
}

impl Dialing<'_> {
    /// Why the link could not be set up, for the link's record.
    fn failed(&self, end: CloseReason) -> String {
        let where_ = &self.where_;
        if let Some(e) = &self.tls_error {
            return explain_client_error(e, where_);
        }
        match end {
            CloseReason::Refused { reason } => {
                format!("certificate rejected by the remote site: {reason} ({where_})")
            }
            CloseReason::WrongSite { expected, actual } => format!(
                "the site at {where_} is {actual}, not {expected} (the site this link's token is from)"
            ),
            CloseReason::SetupTimeout { .. } => format!(
                "no answer from {where_} within {} after the TLS handshake",
                fmt_duration(self.inner.options.handshake_timeout)
            ),
            CloseReason::PeerClosed | CloseReason::Bye { .. } => format!(
                "link refused by the remote site: {where_} closed the connection before accepting the link"
            ),
            CloseReason::Protocol { reason } => format!(
                "the remote side at {where_} does not speak this link protocol: {reason}"
            ),
            CloseReason::Transport { reason } => {
                format!("connection to {where_} lost during link setup: {reason}")
            }
            other => format!("connection to {where_} ended during link setup: {other}"),
        }
    }

    /// Why a link that was up ended, for the link's record.
    fn ended(&self, end: CloseReason, remote_site_name: &str) -> String {
        let peer = format!("{} (site {})", self.where_, printable(remote_site_name));
        if let Some(e) = &self.tls_error {
            return match e {
                rustls::Error::AlertReceived(_) => explain_client_error(e, &self.where_),
                _ => format!("TLS error on the link to {peer}: {e}"),
            };
        }
        match end {
            CloseReason::Dead { .. } => format!(
                "heartbeat timeout: no answer from {peer} for {}",
                fmt_duration(self.inner.options.dead_after)
            ),
            CloseReason::PeerClosed => {
                format!("the connection to {peer} was closed by the remote site")
            }
            CloseReason::Bye { reason } => format!(
                "the remote site {peer} closed the link: {}",
                printable_text(&reason)
            ),
            CloseReason::Transport { reason } => format!("connection to {peer} lost: {reason}"),
            CloseReason::Local { .. } => {
                format!("the connection to {peer} was closed by this site")
            }
            other => format!("{peer}: {other}"),
        }
    }

    async fn connected(
        &mut self,
        remote_site_name: String,
        conn: &mut Connection,
        now: OffsetDateTime,
    ) {
        let d = self.d;
        let since = OffsetDateTime::now_utc();
        self.memory.sticky = None;
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
        record(
            &self.inner,
            d,
            &self.memory.credentials,
            LinkState::Connected { since },
        )
        .await;
    }

    async fn revoke_notice(
        &mut self,
        signed: SignedNotice,
        conn: &mut Connection,
        now: OffsetDateTime,
    ) {
        let d = self.d;
        let p = self.p;
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
                self.inner.event(LinkEvent::RevocationReceived {
                    link: d.link.clone(),
                    reason: reason.clone(),
                });
                self.memory.sticky = Some(revocation);
                let asked = tokio::time::Instant::now();
                self.memory.down(&self.inner, d, reason.clone()).await;
                self.revoked = Some(reason);
                conn.close(now + asked.elapsed(), "access revoked");
            }
            Err(why) => self.inner.event(LinkEvent::RevocationIgnored {
                link: d.link.clone(),
                reason: why.to_string(),
            }),
        }
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
