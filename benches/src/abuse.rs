//! Hostile clients for the load tool: connections that hold a port
//! without ever finishing anything. Loopback only, bounded in count, and
//! stopped when dropped.
//!
//! - [`Abuse::slowloris`]: N connections, each sending the bytes of a real
//!   TLS ClientHello one byte a second; a connection the server closes is
//!   opened again at the next byte's tick, so the pressure stays at N
//!   without becoming a flood of new connections.
//! - [`Abuse::idle`]: N TCP connections that send nothing; reopened when
//!   closed. They come from many loopback addresses (a few per address,
//!   under the server's per-address cap on unfinished handshakes), so the
//!   server holds all N until its handshake deadline closes them, and they
//!   are opened again at once.
//!
//! Connections are opened at a bounded pace ([`CONNECTS_PER_TICK`] each
//! [`TICK`]), so a ramp of thousands does not overflow the server's accept
//! backlog; every failed connection attempt is counted with its reason.
// A load tool opens sockets and reads the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often every connection is checked (and a closed one reopened).
pub const TICK: Duration = Duration::from_millis(20);

/// New connections opened at most each [`TICK`] (3,200 a second): half
/// the accept backlog of a listener bound by Rust's standard library
/// (128), so a burst never overflows it. An overflowing backlog drops the
/// SYN and the client's kernel resends it only a second later, which is
/// what held the ramp to about 330 connections a second before.
pub const CONNECTS_PER_TICK: usize = 64;

/// Idle connections from one loopback address: half a serve's default cap
/// of 16 unfinished handshakes per address, so none is closed to make room.
pub const IDLE_PER_ADDRESS: usize = 8;

/// What the hostile connections saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AbuseStats {
    /// Connections asked for.
    pub wanted: u64,
    /// Connections open now.
    pub held: u64,
    /// The fewest open at once since every one was first opened (`None`
    /// until then).
    pub min_held: Option<u64>,
    /// Connections opened (including reopened ones).
    pub opened: u64,
    /// Connections the server closed.
    pub closed_by_server: u64,
    /// Median time a connection the server closed had been open.
    pub median_life: Option<Duration>,
    /// Connection attempts that failed.
    pub connect_errors: u64,
    /// Failed attempts by reason (the OS error), with their counts.
    pub errors_by_reason: BTreeMap<String, u64>,
}

impl AbuseStats {
    /// One table cell: held, opened, closed (and after how long), failed
    /// (and why).
    pub fn summary(&self) -> String {
        let min = match self.min_held {
            Some(m) => format!("at least {m} at any time since all were opened"),
            None => "not all opened yet".to_string(),
        };
        let life = match self.median_life {
            Some(d) => format!(" after {:.1} s open (median)", d.as_secs_f64()),
            None => String::new(),
        };
        let mut s = format!(
            "{} of {} held now ({min}); {} opened, {} closed by serve{life}, {} connect failures",
            self.held, self.wanted, self.opened, self.closed_by_server, self.connect_errors
        );
        if !self.errors_by_reason.is_empty() {
            let reasons: Vec<String> = self
                .errors_by_reason
                .iter()
                .map(|(reason, n)| format!("{n}x {reason}"))
                .collect();
            s.push_str(&format!(" ({})", reasons.join("; ")));
        }
        s
    }
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    held: AtomicU64,
    /// u64::MAX until the ramp is over.
    min_held: AtomicU64,
    /// Every connection was opened at least once.
    ramped: AtomicBool,
    opened: AtomicU64,
    closed: AtomicU64,
    errors: AtomicU64,
    reasons: Mutex<BTreeMap<String, u64>>,
    lives: Mutex<Vec<Duration>>,
}

/// A running set of hostile connections; stops them when dropped.
#[derive(Debug)]
pub struct Abuse {
    wanted: usize,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// The first flight of a TLS 1.3 client: a ClientHello for `localhost`.
fn client_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map(|b| {
            b.with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        });
    let mut out = Vec::new();
    if let Ok(config) = config {
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("a valid name");
        if let Ok(mut conn) = rustls::ClientConnection::new(Arc::new(config), name) {
            let _ = conn.write_tls(&mut out);
        }
    }
    if out.is_empty() {
        // A TLS handshake record header, then nothing: still never done.
        out = vec![0x16, 0x03, 0x01, 0x02, 0x00];
    }
    out
}

/// The loopback source address of connection `i` when `per_address`
/// connections share one: 127.1.x.y, y from 1 to 254 (65,024 addresses).
fn source_address(i: usize, per_address: usize) -> IpAddr {
    let a = i / per_address.max(1);
    let (x, y) = (a / 254 % 256, a % 254 + 1);
    // Both fit a byte: x < 256, y <= 254.
    IpAddr::V4(Ipv4Addr::new(
        127,
        1,
        u8::try_from(x).unwrap_or(0),
        u8::try_from(y).unwrap_or(1),
    ))
}

/// A TCP connection to `addr` from `source` (any port), within 2 s.
fn connect_from(source: Option<IpAddr>, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    };
    use rustix::net::{bind, connect, socket, sockopt, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None)?;
    bind(&fd, &SocketAddr::new(source, 0))?;
    // A blocking connect gives up after the send timeout (a full backlog
    // makes the kernel resend the SYN a second later, then two...).
    sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, Some(Duration::from_secs(2)))?;
    connect(&fd, &addr)?;
    Ok(TcpStream::from(fd))
}

impl Abuse {
    /// `n` connections to `addr`, each sending one more byte of a
    /// ClientHello every `every` (one second for the classic attack), all
    /// from this host's own address.
    pub fn slowloris(addr: SocketAddr, n: usize, every: Duration) -> Abuse {
        Abuse::start(addr, n, Some(every), None)
    }

    /// `n` connections to `addr` (a loopback address) that send nothing,
    /// [`IDLE_PER_ADDRESS`] from each loopback source address.
    pub fn idle(addr: SocketAddr, n: usize) -> Abuse {
        let spread = addr.ip().is_loopback() && addr.is_ipv4();
        Abuse::start(addr, n, None, spread.then_some(IDLE_PER_ADDRESS))
    }

    fn start(
        addr: SocketAddr,
        n: usize,
        trickle: Option<Duration>,
        per_address: Option<usize>,
    ) -> Abuse {
        let shared = Arc::new(Shared {
            min_held: AtomicU64::new(u64::MAX),
            ..Shared::default()
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("abuse".into())
                .spawn(move || run(&shared, addr, n, trickle, per_address))
                .ok()
        };
        Abuse {
            wanted: n,
            shared,
            thread,
        }
    }

    /// Waits until every connection was opened once (or `timeout`);
    /// whether they were.
    pub fn wait_ramped(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while !self.shared.ramped.load(Ordering::Relaxed) {
            if Instant::now() >= until || self.thread.is_none() {
                return false;
            }
            std::thread::sleep(TICK);
        }
        true
    }

    /// What happened so far.
    pub fn stats(&self) -> AbuseStats {
        let s = &self.shared;
        let min = s.min_held.load(Ordering::Relaxed);
        let mut lives = s
            .lives
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        lives.sort_unstable();
        AbuseStats {
            wanted: self.wanted as u64,
            held: s.held.load(Ordering::Relaxed),
            min_held: (min != u64::MAX).then_some(min),
            opened: s.opened.load(Ordering::Relaxed),
            closed_by_server: s.closed.load(Ordering::Relaxed),
            median_life: lives.get(lives.len() / 2).copied(),
            connect_errors: s.errors.load(Ordering::Relaxed),
            errors_by_reason: s
                .reasons
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// One held connection: the stream, ClientHello bytes sent, when opened.
struct Held {
    stream: TcpStream,
    sent: usize,
    since: Instant,
}

/// Whether the server closed `h` (or a trickled byte could not be sent).
fn gone(h: &mut Held, trickle: bool, hello: &[u8]) -> bool {
    let mut probe = [0u8; 512];
    let read_closed = match h.stream.read(&mut probe) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    let write_failed = trickle
        && h.sent < hello.len()
        && match h.stream.write(&hello[h.sent..h.sent + 1]) {
            Ok(_) => {
                h.sent += 1;
                false
            }
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
    read_closed || write_failed
}

fn run(
    shared: &Shared,
    addr: SocketAddr,
    n: usize,
    trickle: Option<Duration>,
    per_address: Option<usize>,
) {
    let hello = client_hello();
    let mut conns: Vec<Option<Held>> = (0..n).map(|_| None).collect();
    // Which slots were opened at least once, and how many.
    let mut ever = vec![false; n];
    let mut first_opened = 0usize;
    let mut next = Instant::now();
    let mut next_byte = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let send_byte = trickle.is_some() && now >= next_byte;
        if let Some(every) = trickle.filter(|_| send_byte) {
            next_byte = now + every;
        }
        let mut budget = CONNECTS_PER_TICK;
        let mut held = 0u64;
        for (i, slot) in conns.iter_mut().enumerate() {
            if let Some(h) = slot {
                if gone(h, send_byte, &hello) {
                    shared.closed.fetch_add(1, Ordering::Relaxed);
                    shared
                        .lives
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(h.since.elapsed());
                    *slot = None;
                }
            }
            // A slowloris connection the server closed is opened again on
            // the next byte's tick (once a second in the classic attack),
            // as a slow client would; reopening at once would make it a
            // connection flood, another attack than the one measured.
            let may_open = trickle.is_none() || send_byte || !ever[i];
            if slot.is_none() && budget > 0 && may_open {
                budget -= 1;
                let source = per_address.map(|k| source_address(i, k));
                match connect_from(source, addr) {
                    Ok(stream) => {
                        let _ = stream.set_nonblocking(true);
                        shared.opened.fetch_add(1, Ordering::Relaxed);
                        if let Some(e) = ever.get_mut(i).filter(|e| !**e) {
                            *e = true;
                            first_opened += 1;
                        }
                        *slot = Some(Held {
                            stream,
                            sent: 0,
                            since: Instant::now(),
                        });
                    }
                    Err(e) => {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        *shared
                            .reasons
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .entry(e.to_string())
                            .or_default() += 1;
                    }
                }
            }
            if slot.is_some() {
                held += 1;
            }
        }
        shared.held.store(held, Ordering::Relaxed);
        if first_opened == n {
            shared.ramped.store(true, Ordering::Relaxed);
        }
        if shared.ramped.load(Ordering::Relaxed) {
            shared.min_held.fetch_min(held, Ordering::Relaxed);
        }
        next += TICK;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

impl Drop for Abuse {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
