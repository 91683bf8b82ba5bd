//! Which accepted TCP connections a server keeps: one rule for the claims
//! server and the link listeners.
//!
//! A connection is **pending** from the moment it is accepted until it has
//! proved something: for the claims server, until its whole request head
//! has arrived; for a link listener, until the peer's certificate and hello
//! were accepted. Then it is **settled**. A server whose connections carry
//! several requests (the claims endpoint's keep-alive) makes a connection
//! pending again while it waits for its next request
//! ([`Admitted::unsettle`]): only connections doing work are kept whatever
//! comes.
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
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

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

/// What the rule keeps about one open connection, whatever serves it.
#[derive(Debug)]
struct Slot<H> {
    handle: H,
    ip: IpAddr,
    accepted: Instant,
    pending: bool,
    evicted: Option<Full>,
}

/// How a server closes a connection that the rule evicts.
trait Evict {
    fn evict(&mut self);
}

/// The rule itself: the open connections of one server, by id, and whom to
/// close to make room; [`Gate`] applies it to async servers.
#[derive(Debug)]
struct Rule<H> {
    limits: ConnLimits,
    entries: HashMap<u64, Slot<H>>,
}

impl<H: Evict> Rule<H> {
    fn new(limits: ConnLimits) -> Rule<H> {
        Rule {
            limits,
            entries: HashMap::new(),
        }
    }

    fn admit(&mut self, id: u64, handle: H, ip: IpAddr, now: Instant) -> Result<Option<u64>, Full> {
        let live = |e: &&Slot<H>| e.evicted.is_none();
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
            Slot {
                handle,
                ip,
                accepted: now,
                pending: true,
                evicted: None,
            },
        );
        Ok(evicted)
    }

    fn oldest_pending(&self, pick: impl Fn(&Slot<H>) -> bool) -> Option<u64> {
        self.entries
            .iter()
            .filter(|(_, e)| e.pending && e.evicted.is_none() && pick(e))
            .min_by_key(|(id, e)| (e.accepted, **id))
            .map(|(id, _)| *id)
    }

    fn evict(&mut self, id: u64, full: Full) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.evicted = Some(full);
            e.handle.evict();
        }
    }

    fn settle(&mut self, id: u64) -> bool {
        match self.entries.get_mut(&id) {
            Some(e) if e.evicted.is_none() => {
                e.pending = false;
                true
            }
            _ => false,
        }
    }

    fn unsettle(&mut self, id: u64, now: Instant) {
        if let Some(e) = self.entries.get_mut(&id) {
            if e.evicted.is_none() && !e.pending {
                e.pending = true;
                e.accepted = now;
            }
        }
    }

    fn evicted(&self, id: u64) -> Option<Full> {
        self.entries.get(&id).and_then(|e| e.evicted)
    }

    fn open(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.evicted.is_none())
            .count()
    }
}

/// The eviction signal of one connection of an async server.
#[derive(Debug, Default)]
struct Kick(Arc<Notify>);

impl Evict for Kick {
    fn evict(&mut self) {
        // A stored permit: the connection's task sees it even if it starts
        // waiting later.
        self.0.notify_one();
    }
}

/// The admission rule for an async server (the tokio claims endpoint and
/// link listeners): one `Gate` per listener, cloned into its accept loop.
/// Each accepted connection asks [`Gate::admit`]; the [`Admitted`] ticket
/// it gets is held by the connection's task for as long as the connection
/// is open (dropping it frees the place), settles it once it has proved
/// itself ([`Admitted::settle`]) and races its work against
/// [`Admitted::evicted`], which completes when the rule closes the
/// connection to make room.
#[derive(Debug, Clone)]
pub struct Gate {
    table: Arc<Mutex<GateTable>>,
}

#[derive(Debug)]
struct GateTable {
    rule: Rule<Kick>,
    next_id: u64,
}

/// One admitted connection of a [`Gate`] (see there).
#[derive(Debug)]
pub struct Admitted {
    table: Arc<Mutex<GateTable>>,
    id: u64,
    kick: Arc<Notify>,
}

impl Gate {
    /// A gate with these caps (check them with [`ConnLimits::check`]).
    pub fn new(limits: ConnLimits) -> Gate {
        Gate {
            table: Arc::new(Mutex::new(GateTable {
                rule: Rule::new(limits),
                next_id: 0,
            })),
        }
    }

    /// Admits a connection from `ip` accepted at `now`, pending, closing
    /// the oldest pending one if a cap is reached ([`Admitted::evicted`]
    /// completes for it); refuses it with the cap that is full when every
    /// open connection is settled.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<Admitted, Full> {
        let mut table = lock(&self.table);
        let id = table.next_id;
        table.next_id += 1;
        let kick = Kick::default();
        let signal = kick.0.clone();
        table.rule.admit(id, kick, ip, now)?;
        Ok(Admitted {
            table: self.table.clone(),
            id,
            kick: signal,
        })
    }

    /// Connections open (not yet closed to make room).
    pub fn open(&self) -> usize {
        lock(&self.table).rule.open()
    }
}

impl Admitted {
    /// The connection has proved itself: it is no longer closed to make
    /// room and no longer counts against its address. `false` when it was
    /// already closed to make room.
    pub fn settle(&self) -> bool {
        lock(&self.table).rule.settle(self.id)
    }

    /// The connection is idle again (a keep-alive connection between two
    /// requests): pending once more, as if accepted at `now`, so it counts
    /// against its address and can be closed to make room until it settles
    /// again.
    pub fn unsettle(&self, now: Instant) {
        lock(&self.table).rule.unsettle(self.id, now);
    }

    /// Why the rule closed this connection to make room, if it did.
    pub fn eviction(&self) -> Option<Full> {
        lock(&self.table).rule.evicted(self.id)
    }

    /// Completes when the rule closes this connection to make room, with
    /// the cap that was full. Never completes for a settled connection.
    pub async fn evicted(&self) -> Full {
        loop {
            if let Some(full) = self.eviction() {
                return full;
            }
            self.kick.notified().await;
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        lock(&self.table).rule.entries.remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The table is changed in single calls: a panic cannot leave it
    // half-changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[tokio::test]
    async fn the_oldest_pending_connection_of_a_full_address_makes_room() {
        let gate = Gate::new(ConnLimits {
            max_connections: 10,
            max_pending_per_address: 2,
        });
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let first = gate.admit(A, at(0)).unwrap();
        let second = gate.admit(A, at(1)).unwrap();
        let other = gate.admit(B, at(2)).unwrap();
        // A third from A: the oldest from A goes, B's stays.
        let full = Full::Address { limit: 2 };
        let fourth = gate.admit(A, at(3)).unwrap();
        assert_eq!(first.evicted().await, full);
        assert_eq!(other.eviction(), None);
        assert_eq!(gate.open(), 3);
        // A settled connection is not closed to make room, and no longer
        // counts against its address.
        assert!(second.settle());
        assert!(!first.settle(), "an evicted connection cannot settle");
        let fifth = gate.admit(A, at(4)).unwrap();
        assert_eq!(fourth.eviction(), None);
        let _sixth = gate.admit(A, at(5)).unwrap();
        assert_eq!(fourth.eviction(), Some(full), "the oldest pending from A");
        assert_eq!(second.eviction(), None);
        assert_eq!(fifth.eviction(), None);
    }

    #[test]
    fn a_full_server_closes_the_oldest_pending_or_refuses_when_all_are_settled() {
        let gate = Gate::new(ConnLimits {
            max_connections: 2,
            max_pending_per_address: 5,
        });
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let first = gate.admit(A, at(0)).unwrap();
        let second = gate.admit(B, at(1)).unwrap();
        let full = Full::Server { limit: 2 };
        let third = gate.admit(B, at(2)).unwrap();
        assert_eq!(first.eviction(), Some(full));
        assert!(second.settle());
        assert!(third.settle());
        assert_eq!(gate.admit(A, at(3)).unwrap_err(), full);
        assert_eq!(gate.open(), 2, "a refused connection is not kept");
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

    #[tokio::test]
    async fn a_gate_kicks_the_oldest_pending_ticket_and_frees_places_on_drop() {
        let gate = Gate::new(ConnLimits {
            max_connections: 3,
            max_pending_per_address: 2,
        });
        let t0 = Instant::now();
        let first = gate.admit(A, t0).unwrap();
        let second = gate.admit(A, t0 + Duration::from_millis(1)).unwrap();
        let other = gate.admit(B, t0 + Duration::from_millis(2)).unwrap();
        // A third pending connection from A: the first one is kicked, its
        // task sees it even though it starts waiting afterwards.
        let third = gate.admit(A, t0 + Duration::from_millis(3)).unwrap();
        assert_eq!(first.evicted().await, Full::Address { limit: 2 });
        assert!(!first.settle(), "an evicted connection cannot settle");
        assert_eq!(second.eviction(), None);
        assert_eq!(gate.open(), 3);
        // Settled connections are never kicked: with all of them settled a
        // new one is refused with the cap that is full.
        assert!(second.settle() && other.settle() && third.settle());
        drop(first);
        assert_eq!(
            gate.admit(B, t0 + Duration::from_millis(4)).unwrap_err(),
            Full::Server { limit: 3 }
        );
        // Dropping a ticket frees its place.
        drop(other);
        assert_eq!(gate.open(), 2);
        let fourth = gate.admit(B, t0 + Duration::from_millis(5)).unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(50), second.evicted()).await;
        assert!(waiting.is_err(), "a settled connection is never evicted");
        assert_eq!(fourth.eviction(), None);
    }

    #[tokio::test]
    async fn an_unsettled_ticket_is_pending_again_from_the_time_it_went_idle() {
        let gate = Gate::new(ConnLimits {
            max_connections: 10,
            max_pending_per_address: 2,
        });
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let served = gate.admit(A, at(0)).unwrap();
        assert!(served.settle());
        let first = gate.admit(A, at(1)).unwrap();
        let second = gate.admit(A, at(2)).unwrap();
        // Settled: not counted, not kicked.
        assert_eq!(served.eviction(), None);
        // Idle again at 3 ms: pending, and newer than `first`, so `first`
        // makes room first, then `second`, then it.
        served.unsettle(at(3));
        let _third = gate.admit(A, at(4)).unwrap();
        assert_eq!(first.evicted().await, Full::Address { limit: 2 });
        assert_eq!((second.eviction(), served.eviction()), (None, None));
        let _fourth = gate.admit(A, at(5)).unwrap();
        assert_eq!(second.evicted().await, Full::Address { limit: 2 });
        let _fifth = gate.admit(A, at(6)).unwrap();
        assert_eq!(served.evicted().await, Full::Address { limit: 2 });
        // An evicted ticket stays evicted.
        served.unsettle(at(7));
        assert!(!served.settle());
    }
}
