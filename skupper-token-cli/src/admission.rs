//! Which accepted TCP connections a server keeps: one rule for the claims
//! server and the link listeners.
//!
//! A connection is **pending** from the moment it is accepted until it has
//! proved something: for the claims server, until its whole request head
//! has arrived; for a link listener, until the peer's certificate and hello
//! were accepted. Then it is **settled**.
//!
//! - At most [`ConnLimits::max_connections`] connections are open at once.
//! - At most [`ConnLimits::max_pending_per_address`] pending connections
//!   come from one IP address.
//! - When a new connection would break either cap, the **oldest pending**
//!   connection (from that address, or from anywhere) is closed to make
//!   room; only when every open connection is settled is the new one
//!   refused.
//!
//! So slow or idle connections cannot shut out an honest client, even one
//! from the same address: an honest client finishes its handshake in
//! milliseconds, so it is never the oldest pending connection for long,
//! while whoever holds connections open without finishing is closed first
//! (and by its own deadline anyway). Settled connections are never closed
//! to make room.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::thread::JoinHandle;
use std::time::Instant;

/// The caps of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections open at once, pending or settled.
    pub max_connections: usize,
    /// Pending connections from one IP address.
    pub max_pending_per_address: usize,
}

impl ConnLimits {
    /// Refuses caps of zero.
    pub fn check(&self) -> io::Result<()> {
        if self.max_connections == 0 || self.max_pending_per_address == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max_connections and max_pending_per_address must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Which cap was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `limit` pending connections from this connection's address.
    Address {
        /// The cap.
        limit: usize,
    },
    /// `limit` connections open.
    Server {
        /// The cap.
        limit: usize,
    },
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Full::Address { limit } => write!(
                f,
                "{limit} connections from the same address had not finished their handshake or request"
            ),
            Full::Server { limit } => write!(f, "{limit} connections were open"),
        }
    }
}

/// One open connection.
#[derive(Debug)]
pub(crate) struct Entry {
    /// A handle on the socket, to close it (to make room, or on shutdown).
    pub(crate) socket: TcpStream,
    /// The thread serving it, once started.
    pub(crate) thread: Option<JoinHandle<()>>,
    /// Set while the server sends its answer (a shutdown lets it finish).
    pub(crate) answering: bool,
    ip: IpAddr,
    accepted: Instant,
    pending: bool,
    evicted: Option<Full>,
}

/// The open connections of one server.
#[derive(Debug)]
pub(crate) struct Connections {
    limits: ConnLimits,
    entries: HashMap<u64, Entry>,
}

impl Connections {
    pub(crate) fn new(limits: ConnLimits) -> Connections {
        Connections {
            limits,
            entries: HashMap::new(),
        }
    }

    /// Takes connection `id` from `ip`, accepted at `now`, as pending. If a
    /// cap is reached, closes the oldest pending connection to make room and
    /// returns its id; refuses the new one (and keeps nothing) when no
    /// pending connection can make room.
    pub(crate) fn admit(
        &mut self,
        id: u64,
        socket: TcpStream,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Option<u64>, Full> {
        let live = |e: &&Entry| e.evicted.is_none();
        let pending_here = self
            .entries
            .values()
            .filter(live)
            .filter(|e| e.pending && e.ip == ip)
            .count();
        let mut evicted = None;
        if pending_here >= self.limits.max_pending_per_address {
            let full = Full::Address {
                limit: self.limits.max_pending_per_address,
            };
            let oldest = self.oldest_pending(|e| e.ip == ip).ok_or(full)?;
            self.evict(oldest, full);
            evicted = Some(oldest);
        }
        let open = self.entries.values().filter(live).count();
        if open >= self.limits.max_connections {
            let full = Full::Server {
                limit: self.limits.max_connections,
            };
            let oldest = self.oldest_pending(|_| true).ok_or(full)?;
            self.evict(oldest, full);
            evicted = Some(oldest);
        }
        self.entries.insert(
            id,
            Entry {
                socket,
                thread: None,
                answering: false,
                ip,
                accepted: now,
                pending: true,
                evicted: None,
            },
        );
        Ok(evicted)
    }

    fn oldest_pending(&self, pick: impl Fn(&Entry) -> bool) -> Option<u64> {
        self.entries
            .iter()
            .filter(|(_, e)| e.pending && e.evicted.is_none() && pick(e))
            .min_by_key(|(id, e)| (e.accepted, **id))
            .map(|(id, _)| *id)
    }

    fn evict(&mut self, id: u64, full: Full) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.evicted = Some(full);
            let _ = e.socket.shutdown(Shutdown::Both);
        }
    }

    /// Connection `id` has proved itself: it is no longer closed to make
    /// room, and no longer counts against its address. `false` when it was
    /// already closed to make room (or is gone).
    pub(crate) fn settle(&mut self, id: u64) -> bool {
        match self.entries.get_mut(&id) {
            Some(e) if e.evicted.is_none() => {
                e.pending = false;
                true
            }
            _ => false,
        }
    }

    /// Why connection `id` was closed to make room, if it was.
    pub(crate) fn evicted(&self, id: u64) -> Option<Full> {
        self.entries.get(&id).and_then(|e| e.evicted)
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Entry> {
        self.entries.get_mut(&id)
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<Entry> {
        self.entries.remove(&id)
    }

    /// Connections open (not yet closed to make room).
    pub(crate) fn open(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.evicted.is_none())
            .count()
    }

    /// Every entry.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut Entry)> {
        self.entries.iter_mut().map(|(id, e)| (*id, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::net::{Ipv4Addr, TcpListener};
    use std::time::Duration;

    /// A real connected socket (the server's end).
    fn socket(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    fn closed(client: &mut TcpStream) -> bool {
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        matches!(client.read(&mut [0u8; 1]), Ok(0) | Err(_))
    }

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn the_oldest_pending_connection_of_a_full_address_makes_room() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut table = Connections::new(ConnLimits {
            max_connections: 10,
            max_pending_per_address: 2,
        });
        let t0 = Instant::now();
        let mut clients = Vec::new();
        for (id, ip, at) in [(1, A, 0), (2, A, 1), (3, B, 2)] {
            let (client, server) = socket(&listener);
            clients.push(client);
            let when = t0 + Duration::from_millis(at);
            assert_eq!(table.admit(id, server, ip, when), Ok(None));
        }
        // A third from A: the oldest from A (1) goes, B's stays.
        let (_c4, s4) = socket(&listener);
        let full = Full::Address { limit: 2 };
        assert_eq!(
            table.admit(4, s4, A, t0 + Duration::from_millis(3)),
            Ok(Some(1))
        );
        assert!(closed(&mut clients[0]));
        assert_eq!(table.evicted(1), Some(full));
        assert_eq!(table.evicted(3), None);
        assert_eq!(table.open(), 3);
        // A settled connection is not closed to make room, and no longer
        // counts against its address.
        assert!(table.settle(2));
        assert!(!table.settle(1), "an evicted connection cannot settle");
        let (_c5, s5) = socket(&listener);
        assert_eq!(
            table.admit(5, s5, A, t0 + Duration::from_millis(4)),
            Ok(None)
        );
        let (_c6, s6) = socket(&listener);
        assert_eq!(
            table.admit(6, s6, A, t0 + Duration::from_millis(5)),
            Ok(Some(4))
        );
        assert_eq!(table.evicted(2), None);
        assert_eq!(
            table.remove(1).map(|e| e.evicted),
            Some(Some(full)),
            "the evicted entry stays until its thread removes it"
        );
    }

    #[test]
    fn a_full_server_closes_the_oldest_pending_or_refuses_when_all_are_settled() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut table = Connections::new(ConnLimits {
            max_connections: 2,
            max_pending_per_address: 5,
        });
        let t0 = Instant::now();
        let (_c1, s1) = socket(&listener);
        let (_c2, s2) = socket(&listener);
        assert_eq!(table.admit(1, s1, A, t0), Ok(None));
        assert_eq!(
            table.admit(2, s2, B, t0 + Duration::from_millis(1)),
            Ok(None)
        );
        let (_c3, s3) = socket(&listener);
        let full = Full::Server { limit: 2 };
        assert_eq!(
            table.admit(3, s3, B, t0 + Duration::from_millis(2)),
            Ok(Some(1))
        );
        assert!(table.settle(2));
        assert!(table.settle(3));
        let (_c4, s4) = socket(&listener);
        assert_eq!(
            table.admit(4, s4, A, t0 + Duration::from_millis(3)),
            Err(full)
        );
        assert_eq!(table.open(), 2);
        assert!(
            table.get_mut(4).is_none(),
            "a refused connection is not kept"
        );
        assert_eq!(
            full.to_string(),
            "2 connections were open",
            "the reason names the cap"
        );
        let zero = ConnLimits {
            max_connections: 0,
            max_pending_per_address: 1,
        };
        assert_eq!(
            zero.check().unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
