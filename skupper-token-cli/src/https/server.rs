//! The claims server: Skupper 1.x's claim redemption endpoint over HTTPS.
//!
//! One thread accepts connections; each connection gets its own thread,
//! one TLS 1.3 handshake and one request, then closes. Every connection has
//! short deadlines for the TLS handshake and for its request head
//! ([`ServerOptions::handshake_timeout`], [`ServerOptions::head_timeout`]),
//! and one for the whole request ([`ServerOptions::request_timeout`]); the
//! request head and body are bounded ([`Limits`]). Open connections are
//! capped, in all and per address while their request head has not arrived
//! ([`ServerOptions::max_connections`],
//! [`ServerOptions::max_pending_per_address`]); at a cap the oldest such
//! connection is closed to make room ([`crate::admission`]). So a slow or
//! garbage client holds one thread for a bounded time, and slow clients,
//! even many from the address of an honest one, cannot shut it out.
//!
//! The certificate is asked for at every handshake
//! ([`ClaimService::server_certificate`]), so after `revoke-access` the
//! next connection already gets the certificate from the new CA.

use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection};
use skupper_token::claim::{RedeemError, RedeemRequest};
use skupper_token::pki::{certificate_info, pem_to_der, CertifiedKey};
use skupper_token::site::Site;
use skupper_token::store::Store;
use skupper_token::token::CertToken;
use time::OffsetDateTime;

use super::current_cert::CurrentCertificate;
use super::http::{self, Limits, Response, SITE_NAME_HEADER};
use super::{describe_io_error, tls_error, tls_provider};
use crate::admission::{ConnLimits, Connections, Full};
use crate::os_random::OsRandom;

/// What the server needs from a site: its certificate and the redemption
/// rules. [`SiteClaims`] is the implementation over a
/// [`skupper_token::site::Site`]; tests can supply their own.
pub trait ClaimService: Send + Sync + 'static {
    /// The server certificate (leaf first) and key to present now. Called
    /// at every TLS handshake, so a new certificate is served as soon as
    /// the site has one.
    fn server_certificate(&self) -> Result<CertifiedKey, String>;

    /// Redeems a claim; the error decides the HTTP status and body.
    fn redeem(&self, request: &RedeemRequest) -> Result<CertToken, RedeemError>;
}

/// A clock: the time now.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// [`ClaimService`] over a site: its server certificate and
/// [`Site::redeem_claim`] with the OS random source and a clock.
///
/// Redemptions of one claim through this server's site handle take turns
/// in the core. Another process on the same site directory (a second
/// `serve`, or a command redeeming through the library) can still win the
/// claim record's compare-and-swap over and over, and then the core gives
/// up with [`RedeemError::Conflict`]; that is retried here after a short,
/// growing, randomized pause ([`SiteClaims::CONFLICT_PAUSES`]), so a client
/// gets 503 only if the record stays contended for all of them.
pub struct SiteClaims<S> {
    site: Arc<Site<S>>,
    clock: Clock,
}

impl<S> fmt::Debug for SiteClaims<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteClaims")
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

impl<S: Store + 'static> SiteClaims<S> {
    /// Serves `site`'s claims with the system clock.
    pub fn new(site: Arc<Site<S>>) -> SiteClaims<S> {
        SiteClaims::with_clock(site, Arc::new(OffsetDateTime::now_utc))
    }

    /// Serves `site`'s claims with `clock` (for tests that move time).
    pub fn with_clock(site: Arc<Site<S>>, clock: Clock) -> SiteClaims<S> {
        SiteClaims { site, clock }
    }

    /// The pauses before each new attempt after [`RedeemError::Conflict`]
    /// (each drawn between half and all of the value), about half a second
    /// in all at most.
    pub const CONFLICT_PAUSES: [Duration; 7] = [
        Duration::from_millis(2),
        Duration::from_millis(5),
        Duration::from_millis(10),
        Duration::from_millis(20),
        Duration::from_millis(40),
        Duration::from_millis(80),
        Duration::from_millis(160),
    ];
}

/// `pause` scaled by a random factor from 1/2 to 1, so processes that
/// collided do not collide again in step.
fn jittered(pause: Duration, rng: &mut OsRandom) -> Duration {
    let mut byte = [0u8; 1];
    skupper_token::random::Random::fill(rng, &mut byte);
    pause / 2 + pause * u32::from(byte[0]) / 510
}

impl<S: Store + 'static> ClaimService for SiteClaims<S> {
    fn server_certificate(&self) -> Result<CertifiedKey, String> {
        match self.site.server_credentials() {
            Ok(Some((_ca, server))) => Ok(server),
            Ok(None) => Err(
                "this is an edge site: it has no CA and no server certificate, so it serves no claims"
                    .into(),
            ),
            Err(e) => Err(format!("cannot read the site's server certificate: {e}")),
        }
    }

    fn redeem(&self, request: &RedeemRequest) -> Result<CertToken, RedeemError> {
        let mut rng = OsRandom::new();
        for pause in Self::CONFLICT_PAUSES {
            match self.site.redeem_claim(request, (self.clock)(), &mut rng) {
                Err(RedeemError::Conflict { .. }) => std::thread::sleep(jittered(pause, &mut rng)),
                other => return other,
            }
        }
        self.site.redeem_claim(request, (self.clock)(), &mut rng)
    }
}

/// Limits and timeouts of a [`ClaimsServer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// Connections open at once (default 64). At the cap, the oldest
    /// connection whose request head has not arrived is closed to make room
    /// for a new one; when every open connection is being answered, the new
    /// one is closed as soon as it is accepted (the client sees the
    /// connection close during the TLS handshake, and may retry).
    pub max_connections: usize,
    /// Connections from one IP address whose request head has not arrived
    /// (default 32: more than the 16 honest clients of one address that
    /// redeem at once in the tests, far fewer than a slowloris needs). A new
    /// one over the cap closes the oldest of them.
    pub max_pending_per_address: usize,
    /// Time from accepting a connection to the end of its TLS handshake
    /// (default 2 s).
    pub handshake_timeout: Duration,
    /// Time from the end of the TLS handshake to having the whole request
    /// head (default 2 s).
    pub head_timeout: Duration,
    /// Time from accepting a connection to having its whole request: TLS
    /// handshake, head and body (default 10 s). Also the time allowed for
    /// writing the answer.
    pub request_timeout: Duration,
    /// Request size limits.
    pub limits: Limits,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 64,
            max_pending_per_address: 32,
            handshake_timeout: Duration::from_secs(2),
            head_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            limits: Limits::default(),
        }
    }
}

impl ServerOptions {
    /// Refuses caps of zero and zero timeouts.
    pub fn check(&self) -> io::Result<()> {
        self.conn_limits().check()?;
        if self.handshake_timeout.is_zero()
            || self.head_timeout.is_zero()
            || self.request_timeout.is_zero()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the claims server's timeouts must be positive",
            ));
        }
        Ok(())
    }

    fn conn_limits(&self) -> ConnLimits {
        ConnLimits {
            max_connections: self.max_connections,
            max_pending_per_address: self.max_pending_per_address,
        }
    }
}

/// Something the server did, for a one-line log. `Display` gives the line;
/// no event ever holds a password or a key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A request was answered.
    Answered {
        /// The client's address.
        peer: SocketAddr,
        /// The `skupper-site-name` header (the redeeming site's id), as
        /// sent.
        site: Option<String>,
        /// The claim asked for (the URL path), when the request had one.
        claim: Option<String>,
        /// The HTTP status sent.
        status: u16,
        /// What happened: for a redemption the outcome with the reason, for
        /// other answers the body sent.
        detail: String,
    },
    /// A connection closed without an answer: the TLS handshake failed,
    /// the client sent nothing useful in time, or it went away.
    Dropped {
        /// The client's address.
        peer: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A connection was closed at once: a cap was reached and every open
    /// connection was being answered.
    Busy {
        /// The client's address.
        peer: SocketAddr,
        /// Which cap.
        full: Full,
    },
    /// The site's certificate could not be loaded for a handshake (the
    /// handshake fails).
    CertificateUnavailable {
        /// Why.
        reason: String,
    },
    /// Accepting connections failed (the server goes on).
    AcceptFailed {
        /// The OS error.
        reason: String,
    },
}

impl fmt::Display for ServerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerEvent::Answered {
                peer,
                site,
                claim,
                status,
                detail,
            } => {
                // `{:?}` quotes and escapes what the client sent, so a
                // header cannot forge log lines.
                match claim {
                    Some(c) => write!(f, "claim {c:?}")?,
                    None => f.write_str("request")?,
                }
                match site {
                    Some(s) => write!(f, " from site {s:?} ({peer})")?,
                    None => write!(f, " from {peer}")?,
                }
                write!(f, ": {status} {}", detail.trim_end())
            }
            ServerEvent::Dropped { peer, reason } => {
                write!(
                    f,
                    "connection from {peer} closed without an answer: {reason}"
                )
            }
            ServerEvent::Busy { peer, full } => {
                write!(f, "connection from {peer} refused: {full}")
            }
            ServerEvent::CertificateUnavailable { reason } => {
                write!(f, "no server certificate for a TLS handshake: {reason}")
            }
            ServerEvent::AcceptFailed { reason } => {
                write!(f, "accepting a connection failed: {reason}")
            }
        }
    }
}

impl ServerEvent {
    /// What this event repeats when it is one of many alike, for a log that
    /// counts repeats instead of printing each ([`crate::log_summary`]):
    /// refusals, connections closed without an answer, a full server.
    /// `None` for what is always worth its own line: a redemption that
    /// succeeded, and the server's own errors (5xx).
    pub fn cause(&self) -> Option<String> {
        match self {
            ServerEvent::Answered { status, .. } => match status {
                200 | 500.. => None,
                403 => Some("claims: refused, wrong password (403)".into()),
                404 => Some("claims: refused, no such claim (404)".into()),
                other => Some(format!("claims: refused request ({other})")),
            },
            ServerEvent::Dropped { .. } => {
                Some("claims: connection closed without an answer".into())
            }
            ServerEvent::Busy { .. } => Some("claims: connection refused, server full".into()),
            ServerEvent::CertificateUnavailable { .. } => {
                Some("claims: no server certificate for a handshake".into())
            }
            ServerEvent::AcceptFailed { .. } => {
                Some("claims: accepting a connection failed".into())
            }
        }
    }
}

type EventSink = Arc<dyn Fn(&ServerEvent) + Send + Sync>;

/// A running claims server. Stops (and waits for its threads) on
/// [`ClaimsServer::shutdown`] or when dropped.
pub struct ClaimsServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl fmt::Debug for ClaimsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimsServer")
            .field("local_addr", &self.local_addr)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

struct Shared {
    stopping: AtomicBool,
    next_id: AtomicU64,
    connections: Mutex<Connections>,
    service: Arc<dyn ClaimService>,
    tls: Arc<ServerConfig>,
    options: ServerOptions,
    on_event: EventSink,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The map is edited in single statements: a panicking thread cannot
    // leave it half-changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClaimsServer {
    /// Serves `site`'s claims on `addr` with the system clock and the
    /// default [`ServerOptions`]; `on_event` gets one line per request.
    ///
    /// This is what the `serve` command runs.
    pub fn for_site<S: Store + 'static>(
        site: Arc<Site<S>>,
        addr: SocketAddr,
        on_event: impl Fn(&ServerEvent) + Send + Sync + 'static,
    ) -> io::Result<ClaimsServer> {
        ClaimsServer::start(
            addr,
            Arc::new(SiteClaims::new(site)),
            ServerOptions::default(),
            on_event,
        )
    }

    /// Binds `addr` (port 0 picks a free port: see
    /// [`ClaimsServer::local_addr`]) and serves `service`.
    pub fn start(
        addr: SocketAddr,
        service: Arc<dyn ClaimService>,
        options: ServerOptions,
        on_event: impl Fn(&ServerEvent) + Send + Sync + 'static,
    ) -> io::Result<ClaimsServer> {
        // Check the certificate before binding, so a site that cannot serve
        // says why at once.
        service
            .server_certificate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(addr)?;
        ClaimsServer::from_listener(listener, service, options, on_event)
    }

    /// Serves `service` on a listener that is already bound (for example
    /// to learn the port before the site that advertises it is made).
    pub fn from_listener(
        listener: TcpListener,
        service: Arc<dyn ClaimService>,
        options: ServerOptions,
        on_event: impl Fn(&ServerEvent) + Send + Sync + 'static,
    ) -> io::Result<ClaimsServer> {
        options.check()?;
        service
            .server_certificate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let on_event: EventSink = Arc::new(on_event);
        let provider = tls_provider();
        let resolver = {
            let on_event = on_event.clone();
            Arc::new(CurrentCertificate::new(
                service.clone(),
                provider.clone(),
                move |reason| on_event(&ServerEvent::CertificateUnavailable { reason }),
            ))
        };
        let mut tls = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        // One request per connection: nothing to resume.
        tls.send_tls13_tickets = 0;
        listener.set_nonblocking(false)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            connections: Mutex::new(Connections::new(options.conn_limits())),
            service,
            tls: Arc::new(tls),
            options,
            on_event,
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("claims-accept-{}", local_addr.port()))
                .spawn(move || accept_loop(&shared, &listener))?
        };
        Ok(ClaimsServer {
            local_addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address the server listens on (with the real port when it was
    /// started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many connections are open now.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.connections).open()
    }

    /// Stops accepting, closes connections whose request has not arrived
    /// yet, lets requests being answered finish, and waits for every
    /// thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let woke =
            TcpStream::connect_timeout(&wake_addr(self.local_addr), Duration::from_secs(2)).is_ok();
        if woke {
            let _ = acceptor.join();
        }
        // If the wake-up failed the acceptor leaves at its next accept; it
        // serves nothing more either way.
        // Connections still before their answer (pending, or reading a
        // body) are closed; answers being sent finish.
        let threads: Vec<JoinHandle<()>> = {
            let mut connections = lock(&self.shared.connections);
            connections
                .iter_mut()
                .filter_map(|(_, c)| {
                    if !c.answering {
                        let _ = c.socket.shutdown(Shutdown::Both);
                    }
                    c.thread.take()
                })
                .collect()
        };
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for ClaimsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where to connect to reach a listener bound to `addr`.
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    let mut failures = 0u32;
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let (socket, peer) = match accepted {
            Ok(pair) => {
                failures = 0;
                pair
            }
            Err(e) => {
                // EMFILE and friends: say so, back off a little, go on.
                (shared.on_event)(&ServerEvent::AcceptFailed {
                    reason: e.to_string(),
                });
                failures = failures.saturating_add(1);
                std::thread::sleep(Duration::from_millis(10 * u64::from(failures.min(50))));
                continue;
            }
        };
        let Ok(handle) = socket.try_clone() else {
            continue;
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        // At a cap, the oldest connection without a request head is closed
        // to make room (its thread reports it); the new one is refused only
        // when every open connection is being answered.
        let admitted = lock(&shared.connections).admit(id, handle, peer.ip(), Instant::now());
        if let Err(full) = admitted {
            let _ = socket.shutdown(Shutdown::Both);
            (shared.on_event)(&ServerEvent::Busy { peer, full });
            continue;
        }
        let spawned = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("claims-connection".into())
                .spawn(move || {
                    serve_connection(&shared, socket, peer, id);
                    // Last: after this the server no longer waits for us.
                    lock(&shared.connections).remove(id);
                })
        };
        match spawned {
            Ok(thread) => {
                if let Some(c) = lock(&shared.connections).get_mut(id) {
                    c.thread = Some(thread);
                }
            }
            Err(e) => {
                if let Some(c) = lock(&shared.connections).remove(id) {
                    let _ = c.socket.shutdown(Shutdown::Both);
                }
                (shared.on_event)(&ServerEvent::Dropped {
                    peer,
                    reason: format!("cannot start a thread for it: {e}"),
                });
            }
        }
    }
}

/// Time left until `deadline`, or `None` when it has passed.
fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

fn serve_connection(shared: &Shared, mut socket: TcpStream, peer: SocketAddr, id: u64) {
    // A connection closed to make room says so, whatever its read saw.
    let dropped = |reason: String| {
        let reason = match lock(&shared.connections).evicted(id) {
            Some(full) => format!("closed to make room for a newer connection: {full}"),
            None => reason,
        };
        (shared.on_event)(&ServerEvent::Dropped { peer, reason })
    };
    let options = &shared.options;
    let accepted = Instant::now();
    let deadline = accepted + options.request_timeout;
    let _ = socket.set_nodelay(true);
    let mut tls = match ServerConnection::new(shared.tls.clone()) {
        Ok(tls) => tls,
        Err(e) => return dropped(format!("cannot start TLS: {e}")),
    };

    // The TLS handshake.
    let handshake_timeout = options.handshake_timeout.min(options.request_timeout);
    let handshake_deadline = accepted + handshake_timeout;
    let too_slow = || {
        format!(
            "the TLS handshake did not finish within {}",
            crate::links::fmt_duration(handshake_timeout)
        )
    };
    while tls.is_handshaking() {
        let Some(left) = remaining(handshake_deadline) else {
            return dropped(too_slow());
        };
        let _ = socket.set_read_timeout(Some(left));
        let _ = socket.set_write_timeout(Some(left));
        if let Err(e) = tls.complete_io(&mut socket) {
            return dropped(match tls_error(&e) {
                Some(e) => format!("TLS handshake failed: {e}{}", handshake_hint(e)),
                None if is_timeout(&e) => too_slow(),
                None => format!("TLS handshake failed: {}", describe_io_error(&e)),
            });
        }
    }

    // The request: its head by the head deadline, all of it by the request
    // deadline. Once the head is in, the connection is no longer closed to
    // make room.
    let head_deadline = (Instant::now() + options.head_timeout).min(deadline);
    let mut head_complete = false;
    let limits = &options.limits;
    let cap = limits.max_request_bytes();
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let parsed = loop {
        let until = if head_complete {
            deadline
        } else {
            head_deadline
        };
        let Some(left) = remaining(until) else {
            // Answer what can be answered (a body that stopped short), as a
            // client that sends slowly gets 400 rather than nothing.
            match http::parse_request_at_eof(&buf, limits) {
                Ok(request) if head_complete => break Ok(request),
                _ => {
                    return dropped(format!(
                        "no complete request head within {} of the handshake ({} bytes received)",
                        crate::links::fmt_duration(options.head_timeout),
                        buf.len()
                    ))
                }
            }
        };
        let _ = socket.set_read_timeout(Some(left));
        let want = chunk.len().min(cap.saturating_sub(buf.len()).max(1));
        let mut stream = rustls::Stream::new(&mut tls, &mut socket);
        match stream.read(&mut chunk[..want]) {
            Ok(0) => break http::parse_request_at_eof(&buf, limits),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                match http::parse_request(&buf, limits) {
                    Err(http::ParseError::Incomplete { head_complete: h }) if buf.len() < cap => {
                        if h && !head_complete {
                            head_complete = true;
                            if !lock(&shared.connections).settle(id) {
                                return dropped("closed to make room".into());
                            }
                        }
                        continue;
                    }
                    Err(http::ParseError::Incomplete { .. }) => {
                        break http::parse_request_at_eof(&buf, limits)
                    }
                    other => break other,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                // Closed without close_notify: what arrived is all there is.
                break http::parse_request_at_eof(&buf, limits);
            }
            Err(e) if is_timeout(&e) => continue, // the deadline check decides
            Err(e) => {
                return dropped(match tls_error(&e) {
                    Some(e) => format!("TLS error while reading the request: {e}"),
                    None => format!("reading the request failed: {}", describe_io_error(&e)),
                })
            }
        }
    };

    // Once answering starts, shutdown lets it finish; if shutdown started
    // first, or the connection was closed to make room, the request is not
    // redeemed.
    {
        let mut connections = lock(&shared.connections);
        if shared.stopping.load(Ordering::SeqCst) {
            drop(connections);
            return dropped("the server is stopping".into());
        }
        if !connections.settle(id) {
            drop(connections);
            return dropped("closed to make room".into());
        }
        if let Some(c) = connections.get_mut(id) {
            c.answering = true;
        }
    }

    let (response, event) = match parsed {
        Ok(request) => answer(shared, &request, peer),
        Err(e) => {
            let response = e
                .response()
                .unwrap_or_else(|| Response::text(400, "Bad Request: the request is not complete"));
            let event = ServerEvent::Answered {
                peer,
                site: None,
                claim: None,
                status: response.status,
                detail: e.to_string(),
            };
            (response, event)
        }
    };

    // Logged before sending, so the line is there when the client has its
    // answer; a failure to send gets its own line.
    (shared.on_event)(&event);
    if let Err(e) = send(&mut tls, &mut socket, &response, options.request_timeout) {
        dropped(format!(
            "the {} answer could not be sent: {}",
            response.status,
            describe_io_error(&e)
        ));
    }
}

/// Answers a parsed request through the service, and describes it for the
/// log.
fn answer(shared: &Shared, request: &http::Request, peer: SocketAddr) -> (Response, ServerEvent) {
    let mut outcome: Option<String> = None;
    let response = http::handle(request, |r| {
        let result = shared.service.redeem(r);
        outcome = Some(match &result {
            Ok(token) => {
                let serial = pem_to_der(&token.cert_pem)
                    .and_then(|der| certificate_info(&der))
                    .map(|info| format!(" serial {}", info.serial_hex))
                    .unwrap_or_default();
                format!("redeemed: certificate{serial} issued to {:?}", r.site_id)
            }
            Err(e) => format!("refused: {e}"),
        });
        result
    });
    let detail = outcome.unwrap_or_else(|| response.body_text().trim_end().to_owned());
    let event = ServerEvent::Answered {
        peer,
        site: request.header(SITE_NAME_HEADER).map(str::to_owned),
        claim: request.claim_name().filter(|c| !c.is_empty()),
        status: response.status,
        detail,
    };
    (response, event)
}

/// Writes the response, closes TLS, and lingers briefly so that a client
/// still sending (an oversized body) reads the answer instead of a reset.
fn send(
    tls: &mut ServerConnection,
    socket: &mut TcpStream,
    response: &Response,
    timeout: Duration,
) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    socket.set_write_timeout(Some(timeout))?;
    tls.writer().write_all(&response.to_bytes())?;
    tls.send_close_notify();
    while tls.wants_write() {
        if remaining(deadline).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read the answer in time",
            ));
        }
        tls.write_tls(socket)?;
    }
    socket.flush()?;
    let _ = socket.shutdown(Shutdown::Write);
    // Drain what the client still sends, briefly and boundedly.
    let linger_until = Instant::now() + Duration::from_millis(500);
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    while drained < 256 * 1024 {
        let Some(left) = remaining(linger_until) else {
            break;
        };
        let _ = socket.set_read_timeout(Some(left));
        match socket.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(())
}

/// What a client's alert during the handshake most likely means.
fn handshake_hint(e: &rustls::Error) -> &'static str {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::AlertReceived(
            A::BadCertificate | A::UnknownCA | A::DecryptError | A::CertificateUnknown,
        ) => " (the client refused this site's certificate: it may hold a token from before a revoke-access, or from another site)",
        rustls::Error::PeerIncompatible(_) | rustls::Error::AlertReceived(A::ProtocolVersion) => {
            " (the client does not offer TLS 1.3, which this server requires)"
        }
        _ => "",
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
