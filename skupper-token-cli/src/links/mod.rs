//! Live links: mutual-TLS connections between running sites, on tokio.
//!
//! A [`LinkRuntime`] is what a running site (`skupper-token serve`, or a
//! tokio application that embeds a site) does with its links, as tasks on
//! the caller's tokio runtime ([`LinkRuntime::start`] takes its
//! [`Handle`]):
//!
//! - **Listens** (interior sites) on the inter-router and edge ports with
//!   tokio-rustls, TLS 1.3 only, presenting the site's server certificate
//!   and requiring a client certificate, which the core checks
//!   ([`Site::authenticate_peer`]: the current CA, validity, clientAuth,
//!   not revoked). After the handshake the dialing site says who it is
//!   (a `hello`) and the link is recorded ([`Site::accept_incoming`]): in
//!   the store, so other processes see it, with a lease this runtime
//!   renews; at start (and every sweep) it clears the records an earlier
//!   run left behind ([`Site::reconcile_incoming`]). Connections still in
//!   their handshake have a short deadline
//!   ([`RuntimeOptions::incoming_handshake_timeout`]) and are capped in
//!   total and per address; at a cap the oldest of them makes room
//!   ([`crate::admission::Gate`]).
//! - **Dials** every outgoing link that has credentials, trusting only the
//!   CA in the link's token and presenting the token's certificate; keeps
//!   each one up (heartbeats both ways, dead peers detected after
//!   [`RuntimeOptions::dead_after`], reconnection on the core's
//!   [`Backoff`](skupper_token::protocol::Backoff) schedule with jitter from
//!   [`OsRandom`](crate::os_random::OsRandom), driven by the core's
//!   [`Redial`](skupper_token::protocol::Redial)), and has the core record
//!   what every dial and connection came to ([`Site::handle_dial`],
//!   [`Site::handle_link_closed`], [`Site::handle_revoke_notice`]) with a
//!   reason a user can act on, the same as in the in-memory harness.
//! - **Follows the store**: every [`RuntimeOptions::poll`] it re-reads the
//!   site record and the links, so links created or deleted by other
//!   commands are dialed or dropped, and a `revoke-access` (new CA) or
//!   `revoke-access --site` (revoked serials) closes the incoming links it
//!   cuts off, after telling each peer in a signed notice (the core's
//!   [`skupper_token::protocol::notice`], signed through the site's key
//!   backend), so the peer's link is [`LinkState::Revoked`] and says
//!   `access revoked by west (site <id>) at <time>` rather than a TLS
//!   error.
//! - **Carries messages both ways**: either side can ping the other
//!   ([`LinkRuntime::ping_link`], [`LinkRuntime::ping_site`]).
//!
//! Every connection, incoming or outgoing, is one task that runs the core's
//! link protocol ([`skupper_token::protocol::Connection`]) through
//! [`crate::runtime::driver::drive`] over tokio-rustls; every outgoing link
//! is one task (dial, drive, wait, dial again); one task per listener and
//! one poller. Store calls (the file store reads and fsyncs) run on tokio's
//! blocking pool (`spawn_blocking`), so a slow disk never holds up another
//! link's heartbeats. The wire protocol is in [`frame`].

pub mod event;
pub use skupper_token::protocol::frame;

mod dialer;
mod follow;
mod listener;
mod tls;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use skupper_token::keys::KeyBackend;
use skupper_token::link::{LinkChange, LinkInstance, LinkRecord, LinkState};
use skupper_token::link_ops::{Dial, LinkClosed, NoticeRejected};
use skupper_token::pki::{AuthError, CertifiedKey, PeerCertificate};
use skupper_token::protocol::{LocalSite, RevokeNotice, SignedNotice, Timing};
use skupper_token::site::{
    IncomingError, IncomingLink, LinkError, LoadError, PeerHello, Site, SiteMode, SiteRecord,
};
use skupper_token::store::{Store, StoreError};
use skupper_token::transport::TransportError;
use time::OffsetDateTime;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use event::{LinkEvent, ListenerKind};

use crate::admission::{ConnLimits, Gate};
use crate::runtime::driver::{self, Command};
use dialer::{DialerShared, StopWhy};
use follow::Known;

/// Timing and limits of a [`LinkRuntime`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Where to accept interior sites' links; default `0.0.0.0:<the site's
    /// inter-router port>`. Ignored on an edge site (it accepts no links).
    pub inter_router_listen: Option<SocketAddr>,
    /// Where to accept edge sites' links; default `0.0.0.0:<the site's edge
    /// port>`.
    pub edge_listen: Option<SocketAddr>,
    /// How often each side sends a heartbeat (default 1 s).
    pub heartbeat: Duration,
    /// A connection with nothing received for this long is dead (default
    /// 3 s). Must be longer than `heartbeat`.
    pub dead_after: Duration,
    /// How often the site record and links are re-read (default 250 ms).
    pub poll: Duration,
    /// First wait before dialing a link again (default 250 ms).
    pub backoff_initial: Duration,
    /// Longest wait between dials (default 8 s).
    pub backoff_max: Duration,
    /// Time to open a TCP connection (default 5 s).
    pub connect_timeout: Duration,
    /// Time for the TLS handshake and the hello exchange when dialing
    /// (default 10 s).
    pub handshake_timeout: Duration,
    /// Time an incoming connection has, from being accepted, for its TLS
    /// handshake and its hello (default 3 s).
    pub incoming_handshake_timeout: Duration,
    /// Incoming connections open at once, handshaking or linked (default
    /// [`DEFAULT_MAX_CONNECTIONS`], 16,384). At the cap, the oldest connection still in its TLS handshake
    /// is closed to make room for a new one; when every one is linked, the
    /// new one is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Incoming connections from one IP address still in their TLS
    /// handshake (default 16). A new one over the cap closes the oldest of
    /// them.
    pub max_pending_per_address: usize,
    /// The local address outgoing links are dialed from (default `None`:
    /// the operating system chooses). For a host with several addresses
    /// whose peers expect one of them; the load tool gives each of its
    /// in-process sites a loopback address of its own, as separate
    /// machines would have. An endpoint of the other address family is
    /// refused as unreachable.
    pub dial_from: Option<IpAddr>,
}

/// Default cap on a site's incoming link connections: room for 10,000
/// linked sites and more (each one socket; `serve` raises its open-file
/// limit at start), while the per-address cap on connections still in
/// their handshake and the eviction of the oldest of them keep idle
/// floods from filling it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            inter_router_listen: None,
            edge_listen: None,
            heartbeat: Duration::from_secs(1),
            dead_after: Duration::from_secs(3),
            poll: Duration::from_millis(250),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            incoming_handshake_timeout: Duration::from_secs(3),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_pending_per_address: 16,
            dial_from: None,
        }
    }
}

impl RuntimeOptions {
    fn check(&self) -> io::Result<()> {
        let bad = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()));
        if self.heartbeat.is_zero() || self.poll.is_zero() || self.backoff_initial.is_zero() {
            return bad("heartbeat, poll and backoff_initial must be positive");
        }
        if self.dead_after <= self.heartbeat {
            return bad("dead_after must be longer than heartbeat");
        }
        if self.backoff_max < self.backoff_initial {
            return bad("backoff_max must be at least backoff_initial");
        }
        if self.connect_timeout.is_zero()
            || self.handshake_timeout.is_zero()
            || self.incoming_handshake_timeout.is_zero()
        {
            return bad(
                "connect_timeout, handshake_timeout and incoming_handshake_timeout must be positive",
            );
        }
        self.conn_limits().check()
    }

    fn conn_limits(&self) -> ConnLimits {
        ConnLimits {
            max_connections: self.max_connections,
            max_pending_per_address: self.max_pending_per_address,
        }
    }

    /// Where a site with `record` listens: the inter-router and edge
    /// listeners (`0.0.0.0` and the site's ports unless set), none on an
    /// edge site.
    pub fn listen_addrs(&self, record: &SiteRecord) -> Vec<(ListenerKind, SocketAddr)> {
        if record.mode != SiteMode::Interior {
            return Vec::new();
        }
        let any = |port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        vec![
            (
                ListenerKind::InterRouter,
                self.inter_router_listen
                    .unwrap_or(any(record.inter_router.port)),
            ),
            (
                ListenerKind::Edge,
                self.edge_listen.unwrap_or(any(record.edge.port)),
            ),
        ]
    }
}

/// The live state of a running site's links ([`LinkRuntime::snapshot`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Snapshot {
    /// This site's id.
    pub site_id: String,
    /// This site's name.
    pub site_name: String,
    /// When the snapshot was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub taken_at: OffsetDateTime,
    /// The listeners.
    pub listening: Vec<ListenerSnapshot>,
    /// Links this site dials (every link in the store, dialed or not).
    pub outgoing: Vec<OutgoingSnapshot>,
    /// Links other sites dialed to this one.
    pub incoming: Vec<IncomingSnapshot>,
    /// Distinct remote sites with a live link either way.
    pub linked_sites: usize,
}

/// A listener in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ListenerSnapshot {
    /// Which port.
    pub kind: ListenerKind,
    /// The bound address.
    pub addr: SocketAddr,
}

/// One outgoing link in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct OutgoingSnapshot {
    /// The link name.
    pub name: String,
    /// The remote site's id.
    pub remote_site_id: String,
    /// The remote site's name, once it has answered.
    pub remote_site_name: Option<String>,
    /// Where the link goes.
    pub target: String,
    /// Whether it is connected now.
    pub connected: bool,
    /// Since when it is connected.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub since: Option<OffsetDateTime>,
    /// Why it is not connected.
    pub reason: Option<String>,
    /// The last measured round trip, in microseconds.
    pub last_rtt_us: Option<u64>,
    /// Whether this site is dialing it (it has credentials).
    pub dialing: bool,
    /// The remote site revoked this link's access, in a notice signed by
    /// the CA that issued the link's certificate: it will not connect with
    /// these credentials again (`reason` says who and when).
    pub revoked: bool,
}

/// One incoming link in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IncomingSnapshot {
    /// The remote site's id (from its hello).
    pub peer_site_id: String,
    /// The remote site's name (from its hello).
    pub peer_site_name: String,
    /// The remote site's name for the link.
    pub link: String,
    /// Since when it is connected.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// The connection's address.
    pub remote_addr: SocketAddr,
    /// Which port it came in on.
    pub listener: ListenerKind,
    /// The certificate's common name.
    pub certificate_cn: String,
    /// The certificate's serial number, uppercase hex.
    pub certificate_serial: String,
    /// When the certificate expires.
    #[serde(with = "time::serde::rfc3339")]
    pub certificate_not_after: OffsetDateTime,
    /// The last measured round trip, in microseconds.
    pub last_rtt_us: Option<u64>,
}

/// Which way a link goes, seen from this site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// A link this site made (it dials).
    Outgoing,
    /// A link another site made to this one.
    Incoming,
}

/// The link a ping went over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PingPath {
    /// Which way the link goes.
    pub direction: Direction,
    /// The link's name (for an incoming link, the remote site's name for
    /// it).
    pub link: String,
    /// The remote site's id.
    pub remote_site_id: String,
    /// The remote site's name, from the hello exchange.
    pub remote_site_name: Option<String>,
}

impl fmt::Display for PingPath {
    /// `link link1 to site <id>`, `the incoming link "link1" from site
    /// "east"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let site = self
            .remote_site_name
            .as_deref()
            .unwrap_or(&self.remote_site_id);
        match self.direction {
            Direction::Outgoing => write!(f, "link {} to site {site:?}", self.link),
            Direction::Incoming => {
                write!(f, "the incoming link {:?} from site {site:?}", self.link)
            }
        }
    }
}

/// A ping's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pong {
    /// The round trip.
    pub rtt: Duration,
    /// The link it went over.
    pub path: PingPath,
}

/// Why a ping got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PingError {
    /// No link of that name.
    NoSuchLink {
        /// The name asked for.
        link: String,
    },
    /// The link is not connected now.
    NotConnected {
        /// The link.
        link: String,
        /// Why.
        reason: String,
    },
    /// No live link from (or to) that site.
    NoLinkWith {
        /// The site id or name asked for.
        site: String,
    },
    /// No answer in time.
    Timeout {
        /// What was pinged.
        over: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// The connection closed while waiting.
    Lost {
        /// What was pinged.
        over: String,
    },
    /// The ping could not be sent.
    SendFailed {
        /// What was pinged.
        over: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for PingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PingError::NoSuchLink { link } => write!(f, "No such link \"{link}\""),
            PingError::NotConnected { link, reason } => {
                write!(f, "Link {link} not connected ({reason})")
            }
            PingError::NoLinkWith { site } => write!(
                f,
                "no live link from or to site {site:?}: 'link status' lists the connected sites"
            ),
            PingError::Timeout { over, timeout } => {
                write!(f, "no answer over {over} within {}", fmt_duration(*timeout))
            }
            PingError::Lost { over } => {
                write!(f, "the connection of {over} closed before the answer came")
            }
            PingError::SendFailed { over, reason } => {
                write!(f, "the ping could not be sent over {over}: {reason}")
            }
        }
    }
}

impl std::error::Error for PingError {}

/// A duration for messages: `3s`, `600ms`, `1.5s`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every guarded value is changed in single statements: a panicking
    // task cannot leave one half-changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs a store call (which may read files and fsync) on tokio's blocking
/// pool, so no worker waits for the disk.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only when the tokio runtime shuts down, which drops this
            // task as well.
            Err(e) => panic!("a store call was cancelled: {e}"),
        },
    }
}

/// A std duration as the core's.
pub(crate) fn core_duration(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// What the runtime needs from a site (so the runtime is not generic over
/// the store).
pub(crate) trait SiteOps: Send + Sync {
    fn record(&self) -> Result<SiteRecord, LoadError>;
    fn server_credentials(&self) -> Result<Option<(String, CertifiedKey)>, LoadError>;
    fn links(&self) -> Result<Vec<LinkRecord>, StoreError>;
    fn link(&self, name: &str) -> Result<LinkRecord, LinkError>;
    fn set_dialed_link_state(
        &self,
        name: &str,
        held: &LinkInstance,
        next: LinkState,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LinkChange>, LinkError>;
    fn handle_dial(
        &self,
        dial: &Dial,
        outcome: Result<(), TransportError>,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError>;
    fn handle_connected(
        &self,
        dial: &Dial,
        remote_site_id: &str,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError>;
    fn handle_link_closed(
        &self,
        dial: &Dial,
        closed: &LinkClosed,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError>;
    fn handle_dial_stopped(
        &self,
        dial: &Dial,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError>;
    fn handle_revoke_notice(
        &self,
        dial: &Dial,
        notice: &SignedNotice,
        now: OffsetDateTime,
    ) -> Result<RevokeNotice, NoticeRejected>;
    fn authenticate_peer(
        &self,
        chain: &[&[u8]],
        now: OffsetDateTime,
    ) -> Result<PeerCertificate, AuthError>;
    fn accept_incoming(
        &self,
        chain: &[&[u8]],
        hello: &PeerHello,
        now: OffsetDateTime,
    ) -> Result<IncomingLink, AuthError>;
    fn drop_incoming(
        &self,
        peer_site_id: &str,
        link: &str,
    ) -> Result<Option<IncomingLink>, IncomingError>;
    fn renew_incoming(&self, now: OffsetDateTime) -> Result<usize, IncomingError>;
    fn reconcile_incoming(&self, now: OffsetDateTime) -> Result<usize, IncomingError>;
    /// What loads the site's CA keys for signing (revocation notices).
    fn key_backend(&self) -> Arc<dyn KeyBackend>;
}

impl<S: Store> SiteOps for Site<S> {
    fn record(&self) -> Result<SiteRecord, LoadError> {
        Site::record(self)
    }
    fn server_credentials(&self) -> Result<Option<(String, CertifiedKey)>, LoadError> {
        Site::server_credentials(self)
    }
    fn links(&self) -> Result<Vec<LinkRecord>, StoreError> {
        Site::links(self)
    }
    fn link(&self, name: &str) -> Result<LinkRecord, LinkError> {
        Site::link(self, name)
    }
    fn set_dialed_link_state(
        &self,
        name: &str,
        held: &LinkInstance,
        next: LinkState,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LinkChange>, LinkError> {
        Site::set_dialed_link_state(self, name, held, next, why, now)
    }
    fn handle_dial(
        &self,
        dial: &Dial,
        outcome: Result<(), TransportError>,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError> {
        Site::handle_dial(self, dial, outcome, now)
    }
    fn handle_connected(
        &self,
        dial: &Dial,
        remote_site_id: &str,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError> {
        Site::handle_connected(self, dial, remote_site_id, now)
    }
    fn handle_link_closed(
        &self,
        dial: &Dial,
        closed: &LinkClosed,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError> {
        Site::handle_link_closed(self, dial, closed, now)
    }
    fn handle_dial_stopped(
        &self,
        dial: &Dial,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError> {
        Site::handle_dial_stopped(self, dial, reason, now)
    }
    fn handle_revoke_notice(
        &self,
        dial: &Dial,
        notice: &SignedNotice,
        now: OffsetDateTime,
    ) -> Result<RevokeNotice, NoticeRejected> {
        Site::handle_revoke_notice(self, dial, notice, now)
    }
    fn authenticate_peer(
        &self,
        chain: &[&[u8]],
        now: OffsetDateTime,
    ) -> Result<PeerCertificate, AuthError> {
        Site::authenticate_peer(self, chain, now)
    }
    fn accept_incoming(
        &self,
        chain: &[&[u8]],
        hello: &PeerHello,
        now: OffsetDateTime,
    ) -> Result<IncomingLink, AuthError> {
        Site::accept_incoming(self, chain, hello, now)
    }
    fn drop_incoming(
        &self,
        peer_site_id: &str,
        link: &str,
    ) -> Result<Option<IncomingLink>, IncomingError> {
        Site::drop_incoming(self, peer_site_id, link)
    }
    fn renew_incoming(&self, now: OffsetDateTime) -> Result<usize, IncomingError> {
        Site::renew_incoming(self, now)
    }
    fn reconcile_incoming(&self, now: OffsetDateTime) -> Result<usize, IncomingError> {
        Site::reconcile_incoming(self, now)
    }
    fn key_backend(&self) -> Arc<dyn KeyBackend> {
        Site::key_backend(self).clone()
    }
}

type EventSink = Arc<dyn Fn(&LinkEvent) + Send + Sync>;

/// An accepted incoming link.
pub(crate) struct Incoming {
    /// The connection's driver.
    commands: mpsc::Sender<Command>,
    remote: SocketAddr,
    listener: ListenerKind,
    peer_site_id: String,
    peer_site_name: String,
    link: String,
    chain: Vec<Vec<u8>>,
    certificate: PeerCertificate,
    ca_generation: Option<u32>,
    since: OffsetDateTime,
    last_rtt: Arc<Mutex<Option<Duration>>>,
}

impl Incoming {
    fn same_link(&self, other: &Incoming) -> bool {
        self.peer_site_id == other.peer_site_id && self.link == other.link
    }
}

/// An incoming connection's task, from accept to close.
struct ConnTask {
    task: Option<JoinHandle<()>>,
    /// Its driver, once the TLS handshake is done.
    commands: Option<mpsc::Sender<Command>>,
}

struct DialerHandle {
    shared: Arc<DialerShared>,
    held: LinkInstance,
    task: JoinHandle<()>,
}

pub(crate) struct Inner {
    site: Arc<dyn SiteOps>,
    site_id: String,
    site_name: String,
    mode: SiteMode,
    options: RuntimeOptions,
    on_event: EventSink,
    provider: Arc<CryptoProvider>,
    server_tls: tls::ServerTls,
    handle: Handle,
    /// `true` once the runtime stops.
    stopping: watch::Sender<bool>,
    next_id: AtomicU64,
    listening: Mutex<Vec<(ListenerKind, SocketAddr)>>,
    /// Incoming connections by id; each task removes itself at its end.
    conns: Mutex<HashMap<u64, ConnTask>>,
    /// The accepted links. Held only briefly (tasks on the workers read
    /// it): the store calls that go with it hold `record_lock` instead.
    incoming: Mutex<BTreeMap<u64, Incoming>>,
    /// Serializes writing and removing the records of incoming links with
    /// the changes to `incoming` they go with (on the blocking pool).
    record_lock: Mutex<()>,
    dialers: Mutex<BTreeMap<String, DialerHandle>>,
    /// Tasks of dialers that were stopped (deleted or replaced links).
    retired: Mutex<Vec<JoinHandle<()>>>,
    known: Mutex<Known>,
    reload_lock: Mutex<()>,
}

impl Inner {
    fn event(&self, event: LinkEvent) {
        (self.on_event)(&event);
    }

    fn error(&self, context: impl Into<String>, reason: impl fmt::Display) {
        self.event(LinkEvent::Error {
            context: context.into(),
            reason: reason.to_string(),
        });
    }

    fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Completes once the runtime stops.
    async fn stopped(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    fn local(&self) -> LocalSite {
        LocalSite {
            site_id: self.site_id.clone(),
            site_name: self.site_name.clone(),
        }
    }

    /// The connection timing, with `setup` for the hello exchange.
    fn timing(&self, setup: Duration) -> Timing {
        Timing {
            heartbeat: core_duration(self.options.heartbeat),
            dead_after: core_duration(self.options.dead_after),
            setup: core_duration(setup.max(Duration::from_millis(1))),
            linger: core_duration(
                self.options
                    .dead_after
                    .clamp(Duration::from_millis(100), Duration::from_secs(2)),
            ),
        }
    }
}

/// The live-link engine of a running site: tasks on a tokio runtime.
/// Stop it with [`LinkRuntime::shutdown`] (which waits for every task and
/// records the links as not running); dropping it only tells the tasks to
/// stop.
pub struct LinkRuntime {
    inner: Arc<Inner>,
    /// The listeners' and the poller's tasks (taken by the shutdown).
    tasks: Mutex<Vec<JoinHandle<()>>>,
    listeners: Vec<SocketAddr>,
}

impl fmt::Debug for LinkRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkRuntime")
            .field("site_id", &self.inner.site_id)
            .field("listeners", &self.listeners)
            .finish_non_exhaustive()
    }
}

impl LinkRuntime {
    /// Starts, on the tokio runtime of `handle`, the listeners (interior
    /// sites), the poller and (at its first reload, at once) the dialers of
    /// the site's links. `on_event` gets one [`LinkEvent`] per thing that
    /// happens, from the runtime's tasks.
    ///
    /// Fails when the site cannot be read, the options make no sense, or a
    /// port cannot be bound ([`RuntimeOptions::listen_addrs`]). It reads the
    /// site record once: from async code, a file store makes that a short
    /// blocking read.
    pub fn start<S: Store + 'static>(
        handle: &Handle,
        site: Arc<Site<S>>,
        options: RuntimeOptions,
        on_event: impl Fn(&LinkEvent) + Send + Sync + 'static,
    ) -> io::Result<LinkRuntime> {
        options.check()?;
        let record = site
            .record()
            .map_err(|e| io::Error::other(format!("cannot read the site: {e}")))?;
        let mut bound = Vec::new();
        for (kind, addr) in options.listen_addrs(&record) {
            let listener = crate::listen::listen(addr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen for {kind} links on {addr}: {e}"),
                )
            })?;
            bound.push((kind, listener));
        }
        LinkRuntime::start_on(handle, site, bound, options, on_event)
    }

    /// [`LinkRuntime::start`] on listeners that are already bound (one per
    /// kind; none on an edge site), for a caller that binds them itself.
    pub fn start_on<S: Store + 'static>(
        handle: &Handle,
        site: Arc<Site<S>>,
        bound: Vec<(ListenerKind, TcpListener)>,
        options: RuntimeOptions,
        on_event: impl Fn(&LinkEvent) + Send + Sync + 'static,
    ) -> io::Result<LinkRuntime> {
        options.check()?;
        let record = site
            .record()
            .map_err(|e| io::Error::other(format!("cannot read the site: {e}")))?;
        let provider = tls::provider();
        let gate = Gate::new(options.conn_limits());
        let site_ops: Arc<dyn SiteOps> = site;
        let inner = Arc::new(Inner {
            site: site_ops,
            site_id: record.id.clone(),
            site_name: record.name.clone(),
            mode: record.mode,
            options,
            on_event: Arc::new(on_event),
            server_tls: tls::ServerTls::new(provider.clone()),
            provider,
            handle: handle.clone(),
            stopping: watch::Sender::new(false),
            next_id: AtomicU64::new(1),
            listening: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
            incoming: Mutex::new(BTreeMap::new()),
            record_lock: Mutex::new(()),
            dialers: Mutex::new(BTreeMap::new()),
            retired: Mutex::new(Vec::new()),
            known: Mutex::new(Known::default()),
            reload_lock: Mutex::new(()),
        });
        let mut runtime = LinkRuntime {
            inner: inner.clone(),
            tasks: Mutex::new(Vec::new()),
            listeners: Vec::new(),
        };
        let _in_runtime = handle.enter();
        for (kind, listener) in bound {
            let addr = listener.local_addr()?;
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            lock(&runtime.tasks).push(handle.spawn(listener::accept_loop(
                inner.clone(),
                kind,
                listener,
                gate.clone(),
            )));
            runtime.listeners.push(addr);
            lock(&inner.listening).push((kind, addr));
            inner.event(LinkEvent::Listening {
                listener: kind,
                addr,
            });
        }
        lock(&runtime.tasks).push(handle.spawn(follow::poll(inner.clone())));
        Ok(runtime)
    }

    /// The addresses listened on: inter-router first, then edge (none on
    /// an edge site).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.clone()
    }

    /// Re-reads the site record and links now (the poller also does it
    /// every [`RuntimeOptions::poll`]), on the blocking pool.
    pub async fn reload(&self) {
        let inner = self.inner.clone();
        blocking(move || inner.reload()).await;
    }

    /// The live state of every link. Reads the store for the links that
    /// are not dialed: from async code, call it in `spawn_blocking`.
    pub fn snapshot(&self) -> Snapshot {
        let inner = &self.inner;
        let rtt_us =
            |d: Option<Duration>| d.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let mut outgoing: BTreeMap<String, OutgoingSnapshot> = BTreeMap::new();
        for (name, d) in lock(&inner.dialers).iter() {
            let status = d.shared.status();
            outgoing.insert(
                name.clone(),
                OutgoingSnapshot {
                    name: name.clone(),
                    remote_site_id: d.shared.remote_site_id.clone(),
                    remote_site_name: status.remote_site_name,
                    target: d.shared.target.clone(),
                    connected: status.connected_since.is_some(),
                    since: status.connected_since,
                    reason: if status.connected_since.is_some() {
                        None
                    } else {
                        Some(
                            status
                                .reason
                                .unwrap_or_else(|| format!("connecting to {}", d.shared.target)),
                        )
                    },
                    last_rtt_us: rtt_us(status.last_rtt),
                    dialing: true,
                    revoked: status.revoked,
                },
            );
        }
        if let Ok(links) = inner.site.links() {
            for l in links {
                if outgoing.contains_key(&l.name) {
                    continue;
                }
                let status = l.status();
                outgoing.insert(
                    l.name.clone(),
                    OutgoingSnapshot {
                        name: l.name.clone(),
                        remote_site_id: l.remote_site_id.clone(),
                        remote_site_name: None,
                        target: l.target().to_owned(),
                        connected: false,
                        since: None,
                        reason: status.reason.or_else(|| Some("not dialed".into())),
                        last_rtt_us: None,
                        dialing: false,
                        revoked: l.state().is_revoked(),
                    },
                );
            }
        }
        let incoming: Vec<IncomingSnapshot> = lock(&inner.incoming)
            .values()
            .map(|i| IncomingSnapshot {
                peer_site_id: i.peer_site_id.clone(),
                peer_site_name: i.peer_site_name.clone(),
                link: i.link.clone(),
                since: i.since,
                remote_addr: i.remote,
                listener: i.listener,
                certificate_cn: i.certificate.common_name.clone(),
                certificate_serial: i.certificate.serial_hex.clone(),
                certificate_not_after: i.certificate.not_after,
                last_rtt_us: rtt_us(*lock(&i.last_rtt)),
            })
            .collect();
        let mut sites: std::collections::BTreeSet<&str> = outgoing
            .values()
            .filter(|o| o.connected)
            .map(|o| o.remote_site_id.as_str())
            .collect();
        sites.extend(incoming.iter().map(|i| i.peer_site_id.as_str()));
        sites.remove(inner.site_id.as_str());
        let linked_sites = sites.len();
        Snapshot {
            site_id: inner.site_id.clone(),
            site_name: inner.site_name.clone(),
            taken_at: OffsetDateTime::now_utc(),
            listening: lock(&inner.listening)
                .iter()
                .map(|(kind, addr)| ListenerSnapshot {
                    kind: *kind,
                    addr: *addr,
                })
                .collect(),
            outgoing: outgoing.into_values().collect(),
            incoming,
            linked_sites,
        }
    }

    /// Sends a ping over this site's outgoing link `link` and waits (at most
    /// `timeout`) for the answer; returns the round trip.
    pub async fn ping_link(&self, link: &str, timeout: Duration) -> Result<Pong, PingError> {
        let dialer = lock(&self.inner.dialers)
            .get(link)
            .map(|d| d.shared.clone());
        let Some(dialer) = dialer else {
            let site = self.inner.site.clone();
            let name = link.to_owned();
            let found = blocking(move || site.link(&name)).await;
            return Err(match found {
                Ok(l) => PingError::NotConnected {
                    link: link.to_owned(),
                    reason: l
                        .status()
                        .reason
                        .unwrap_or_else(|| "it is not dialed".into()),
                },
                Err(_) => PingError::NoSuchLink {
                    link: link.to_owned(),
                },
            });
        };
        let Some(commands) = dialer.connected() else {
            return Err(PingError::NotConnected {
                link: link.to_owned(),
                reason: dialer
                    .status()
                    .reason
                    .unwrap_or_else(|| format!("connecting to {}", dialer.target)),
            });
        };
        let rtt = ping(&commands, &format!("link {link}"), timeout).await?;
        dialer.set_rtt(rtt);
        Ok(Pong {
            rtt,
            path: dialer.ping_path(),
        })
    }

    /// Sends a ping to site `site_id_or_name` over the link it made to this
    /// site (or, when there is none, over this site's link to it) and waits
    /// (at most `timeout`) for the answer; returns the round trip and the
    /// link it went over.
    pub async fn ping_site(
        &self,
        site_id_or_name: &str,
        timeout: Duration,
    ) -> Result<Pong, PingError> {
        let s = site_id_or_name;
        let incoming = lock(&self.inner.incoming)
            .values()
            .filter(|i| i.peer_site_id == s || i.peer_site_name == s)
            .max_by_key(|i| i.since)
            .map(|i| {
                (
                    i.commands.clone(),
                    i.last_rtt.clone(),
                    PingPath {
                        direction: Direction::Incoming,
                        link: i.link.clone(),
                        remote_site_id: i.peer_site_id.clone(),
                        remote_site_name: Some(i.peer_site_name.clone()),
                    },
                )
            });
        if let Some((commands, last_rtt, path)) = incoming {
            let rtt = ping(&commands, &path.to_string(), timeout).await?;
            *lock(&last_rtt) = Some(rtt);
            return Ok(Pong { rtt, path });
        }
        let outgoing = lock(&self.inner.dialers)
            .values()
            .map(|d| d.shared.clone())
            .find(|d| d.remote_site_id == s || d.status().remote_site_name.as_deref() == Some(s));
        if let Some(dialer) = outgoing {
            if let Some(commands) = dialer.connected() {
                let rtt = ping(&commands, &format!("link {}", dialer.link), timeout).await?;
                dialer.set_rtt(rtt);
                return Ok(Pong {
                    rtt,
                    path: dialer.ping_path(),
                });
            }
        }
        Err(PingError::NoLinkWith { site: s.to_owned() })
    }

    /// Stops: closes the listeners, says goodbye on every connection and
    /// closes it, stops the dialers (their links are recorded as not
    /// connected because the site is not running), and waits for every
    /// task. A second call waits for nothing.
    pub async fn shutdown(&self) {
        self.signal_stop();
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            let _ = task.await;
        }
        let inner = &self.inner;
        let conns: Vec<JoinHandle<()>> = lock(&inner.conns)
            .values_mut()
            .filter_map(|c| c.task.take())
            .collect();
        let dialers: Vec<DialerHandle> = std::mem::take(&mut *lock(&inner.dialers))
            .into_values()
            .collect();
        let retired = std::mem::take(&mut *lock(&inner.retired));
        for task in conns {
            let _ = task.await;
        }
        for d in dialers {
            let _ = d.task.await;
        }
        for task in retired {
            let _ = task.await;
        }
        // Whatever is left (connections that ended without removing
        // themselves) is no longer live.
        let inner = inner.clone();
        blocking(move || {
            let left: Vec<u64> = lock(&inner.incoming).keys().copied().collect();
            for id in left {
                inner.remove_incoming(id);
            }
        })
        .await;
    }

    /// Tells every task to stop (without waiting): the listeners and the
    /// poller end, each connection says goodbye, each dialer stops.
    fn signal_stop(&self) {
        let inner = &self.inner;
        {
            let _reload = lock(&inner.reload_lock);
            if inner.stopping.send_replace(true) {
                return;
            }
        }
        let bye = format!("site {} is stopping", inner.site_name);
        for c in lock(&inner.conns).values() {
            if let Some(commands) = &c.commands {
                let _ = commands.try_send(Command::Close {
                    reason: bye.clone(),
                });
            }
        }
        for d in lock(&inner.dialers).values() {
            d.shared.stop(StopWhy::Shutdown);
        }
    }
}

impl Drop for LinkRuntime {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// One ping through a connection's driver.
async fn ping(
    commands: &mpsc::Sender<Command>,
    over: &str,
    timeout: Duration,
) -> Result<Duration, PingError> {
    let lost = || PingError::Lost {
        over: over.to_owned(),
    };
    let asked = async {
        let (reply, answer) = oneshot::channel();
        commands
            .send(Command::Ping { reply })
            .await
            .map_err(|_| lost())?;
        match answer.await {
            Ok(Ok(rtt)) => Ok(rtt),
            Ok(Err(driver::PingError::NotConnected)) => Err(PingError::SendFailed {
                over: over.to_owned(),
                reason: "the link is not connected".into(),
            }),
            Ok(Err(_)) | Err(_) => Err(lost()),
        }
    };
    match tokio::time::timeout(timeout, asked).await {
        Ok(answer) => answer,
        Err(_) => Err(PingError::Timeout {
            over: over.to_owned(),
            timeout,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_can_be_shared_between_threads() {
        fn check<T: Send + Sync>() {}
        check::<LinkRuntime>();
        check::<Snapshot>();
    }

    #[test]
    fn options_that_make_no_sense_are_refused() {
        assert!(RuntimeOptions::default().check().is_ok());
        let bad = [
            RuntimeOptions {
                dead_after: Duration::from_secs(1),
                ..RuntimeOptions::default()
            },
            RuntimeOptions {
                heartbeat: Duration::ZERO,
                ..RuntimeOptions::default()
            },
            RuntimeOptions {
                backoff_max: Duration::from_millis(1),
                ..RuntimeOptions::default()
            },
            RuntimeOptions {
                max_connections: 0,
                ..RuntimeOptions::default()
            },
            RuntimeOptions {
                max_pending_per_address: 0,
                ..RuntimeOptions::default()
            },
            RuntimeOptions {
                incoming_handshake_timeout: Duration::ZERO,
                ..RuntimeOptions::default()
            },
        ];
        for o in bad {
            assert_eq!(
                o.check().unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "{o:?}"
            );
        }
    }

    #[test]
    fn a_site_holds_ten_thousand_links_by_default() {
        let o = RuntimeOptions::default();
        assert_eq!(o.max_connections, 16_384);
        // Idle floods are still stopped per address, long before the cap.
        assert_eq!(o.max_pending_per_address, 16);
        assert!(o.check().is_ok());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_duration(Duration::from_secs(3)), "3s");
        assert_eq!(fmt_duration(Duration::from_millis(600)), "600ms");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
    }
}
