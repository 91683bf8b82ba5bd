//! Hostile clients for the load tool: connections that hold a port
//! without ever finishing anything. Loopback only, bounded in count, and
//! stopped when dropped.
//!
//! - [`Abuse::slowloris`]: N connections, each sending the bytes of a real
//!   TLS ClientHello one byte a second; a connection the server closes is
//!   opened again, so the pressure stays at N.
//! - [`Abuse::idle`]: N TCP connections that send nothing; reopened when
//!   closed.
// A load tool opens sockets and reads the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the hostile connections saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AbuseStats {
    /// Connections opened (including reopened ones).
    pub opened: u64,
    /// Connections the server closed.
    pub closed_by_server: u64,
    /// Connection attempts that failed.
    pub connect_errors: u64,
}

/// A running set of hostile connections; stops them when dropped.
#[derive(Debug)]
pub struct Abuse {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
    closed: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
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

impl Abuse {
    /// `n` connections to `addr`, each sending one more byte of a
    /// ClientHello every `every` (one second for the classic attack).
    pub fn slowloris(addr: SocketAddr, n: usize, every: Duration) -> Abuse {
        Abuse::start(addr, n, Some(every))
    }

    /// `n` connections to `addr` that send nothing.
    pub fn idle(addr: SocketAddr, n: usize) -> Abuse {
        Abuse::start(addr, n, None)
    }

    fn start(addr: SocketAddr, n: usize, trickle: Option<Duration>) -> Abuse {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, opened, closed, errors) =
                (stop.clone(), opened.clone(), closed.clone(), errors.clone());
            std::thread::Builder::new()
                .name("abuse".into())
                .spawn(move || {
                    let hello = client_hello();
                    let connect = || match TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                    {
                        Ok(s) => {
                            let _ = s.set_nonblocking(true);
                            opened.fetch_add(1, Ordering::Relaxed);
                            Some((s, 0usize))
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                    };
                    let mut conns: Vec<Option<(TcpStream, usize)>> =
                        (0..n).map(|_| connect()).collect();
                    let tick = trickle.unwrap_or(Duration::from_millis(200));
                    let mut next = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        for slot in conns.iter_mut() {
                            let gone = match slot {
                                None => true,
                                Some((s, sent)) => {
                                    let mut probe = [0u8; 512];
                                    let read_closed = match s.read(&mut probe) {
                                        Ok(0) => true,
                                        Ok(_) => false,
                                        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                                    };
                                    let write_failed = trickle.is_some()
                                        && *sent < hello.len()
                                        && match s.write(&hello[*sent..*sent + 1]) {
                                            Ok(_) => {
                                                *sent += 1;
                                                false
                                            }
                                            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                                        };
                                    read_closed || write_failed
                                }
                            };
                            if gone {
                                if slot.is_some() {
                                    closed.fetch_add(1, Ordering::Relaxed);
                                }
                                *slot = connect();
                            }
                        }
                        next += tick;
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        } else {
                            next = now;
                        }
                    }
                })
                .ok()
        };
        Abuse {
            stop,
            opened,
            closed,
            errors,
            thread,
        }
    }

    /// What happened so far.
    pub fn stats(&self) -> AbuseStats {
        AbuseStats {
            opened: self.opened.load(Ordering::Relaxed),
            closed_by_server: self.closed.load(Ordering::Relaxed),
            connect_errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Abuse {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
