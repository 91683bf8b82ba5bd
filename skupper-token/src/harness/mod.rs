//! An in-memory network of sites for tests and simulations.
//!
//! [`Network`] runs any number of sites in one process, each with its own
//! [`MemoryStore`], on a virtual clock and one seeded random generator, so a
//! run repeats exactly. Every link runs the core's link protocol
//! ([`crate::protocol::Connection`], both ends) over an in-memory byte
//! pipe; see [`Network`] for how it is driven.
//!
//! ```
//! use skupper_token::harness::Network;
//! use skupper_token::site::{LinkOptions, TokenOptions};
//! use skupper_token::time::Duration;
//!
//! let net = Network::new(7);
//! net.add_site("west")?;
//! net.add_site("east")?;
//! let token = net.create_token("west", &TokenOptions::claim())?;
//! net.create_link("east", token.encode().as_bytes(), &LinkOptions::default())?;
//! net.tick()?;
//! assert_eq!(net.link_status("east", "link1")?.to_string(), "Link link1 is connected");
//!
//! // West drops off the network: east notices by the dead-peer timeout.
//! net.set_reachable("west", false)?;
//! net.run_for(Duration::seconds(3))?;
//! assert_eq!(
//!     net.link_status("east", "link1")?.to_string(),
//!     "Link link1 not connected (heartbeat timeout: no answer from west:55671 (site west) for 3s)"
//! );
//! # Ok::<(), skupper_token::harness::HarnessError>(())
//! ```

mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use time::{Duration, OffsetDateTime};

use crate::link::{LinkRecord, LinkStatus};
use crate::protocol::{Backoff, Timing};
use crate::random::SeededRandom;
use crate::site::{
    AccessRevoked, CreateSiteError, IncomingError, LinkError, LinkOptions, LoadError, PeerRevoked,
    RevokeError, Site, SiteConfig, SiteError, SiteStatus, TokenError, TokenOptions,
};
use crate::store::{MemoryStore, StoreError};
use crate::token::Token;
use crate::v2::{AccessToken, GrantOptions, GrantRecord, LinkFile};

pub use wire::PingOutcome;

/// A site in a [`Network`].
pub type MemorySite = Site<Arc<MemoryStore>>;

/// The virtual clock's start when none is given: 2026-01-01T00:00:00Z.
pub const DEFAULT_START: OffsetDateTime = time::macros::datetime!(2026-01-01 0:00 UTC);

/// The first wait before a link dials again after a failed or ended
/// connection (then doubling, with jitter, up to [`BACKOFF_MAX`]).
pub const BACKOFF_INITIAL: Duration = Duration::seconds(1);

/// The longest wait between two dials of a link.
pub const BACKOFF_MAX: Duration = Duration::seconds(30);

/// Why a harness operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// No site of that name in the network.
    #[error("no site named {name:?} in the network (add it with Network::add_site)")]
    NoSuchSite {
        /// The name asked for.
        name: String,
    },
    /// A site of that name is already in the network.
    #[error("a site named {name:?} is already in the network")]
    SiteExists {
        /// The name.
        name: String,
    },
    /// The link has no live connection (for [`Network::ping`]).
    #[error("link {link:?} of site {site:?} has no live connection")]
    NotConnected {
        /// The site.
        site: String,
        /// The link.
        link: String,
    },
    /// The site refused the operation.
    #[error(transparent)]
    Site(#[from] SiteError),
}

/// An operation of one family failed: the site refused it.
macro_rules! harness_from_site {
    ($($family:ty),*) => {$(
        impl From<$family> for HarnessError {
            fn from(e: $family) -> HarnessError {
                HarnessError::Site(e.into())
            }
        }
    )*};
}
harness_from_site!(
    LoadError,
    CreateSiteError,
    TokenError,
    IncomingError,
    RevokeError,
    LinkError,
    StoreError
);

struct Node {
    site: Arc<MemorySite>,
    reachable: bool,
}

/// Sites, a virtual clock, a seeded random generator, and the live
/// connections of their links.
///
/// # How it runs
///
/// Every outgoing link is driven as a running site drives it, with the
/// core's pieces: [`Site::process_links`] says which claims to redeem and
/// which links to dial; a redemption is done in memory (the claims
/// server's answer is [`Site::redeem_claim`] on the issuing site) and goes
/// back through [`Site::handle_redemption`]; a dial checks what TLS would
/// (the listener must serve a certificate from the CA in the link's
/// token), then wires a dialing [`crate::protocol::Connection`] to a
/// listening one over an in-memory byte pipe. The listener answers the
/// hello with [`Site::accept_incoming`] (which authenticates the dialer's
/// certificate) and drops the incoming link when its connection ends; the
/// dialer reports to [`Site::handle_dial`], [`Site::handle_link_closed`]
/// and [`Site::handle_revoke_notice`], which record the same reasons as
/// for a live site. A link whose connection failed or ended dials again
/// when its [`crate::protocol::Redial`] says (a [`Backoff`] wait from
/// [`BACKOFF_INITIAL`] to [`BACKOFF_MAX`], jitter from the seeded
/// generator, the same rule as the live runtime's); a revoked link never
/// dials again ([`Site::process_links`] leaves it out).
///
/// Bytes cross a pipe at once, in order; a site cut off with
/// [`Network::set_reachable`] neither sends nor receives (nor sees its
/// peer close), so both ends notice by the dead-peer timeout. Revoking
/// access ([`Network::revoke_access`], [`Network::revoke_peer`]) sends each
/// affected connected site a notice signed by the CA that issued its
/// certificate, and its link becomes revoked.
///
/// Time moves only when asked:
///
/// - [`Network::run_for`] / [`Network::run_until`] run every connection and
///   timer (heartbeats, dead peers, pings, goodbyes, redials) in time
///   order up to the deadline, then leave the clock there;
/// - [`Network::tick`] runs the network at the current time without moving
///   the clock: new links are dialed (and connect, with no latency),
///   pending claims redeemed, what is due is done;
/// - [`Network::advance`] moves the clock without running anything, as if
///   every site had been suspended: at the next run, connections find
///   their peers silent for that long and go down, and links dial again.
///
/// With the same seed and the same calls, a run repeats exactly, to the
/// event log ([`Network::events`]). Nothing sleeps.
pub struct Network {
    nodes: Mutex<BTreeMap<String, Node>>,
    clock: Mutex<OffsetDateTime>,
    rng: Mutex<SeededRandom>,
    world: Mutex<wire::World>,
    start: OffsetDateTime,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("sites", &lock(&self.nodes).keys().collect::<Vec<_>>())
            .field("now", &*lock(&self.clock))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Network {
    /// An empty network whose randomness comes from `seed`, with the clock
    /// at [`DEFAULT_START`].
    pub fn new(seed: u64) -> Network {
        Network::starting_at(seed, DEFAULT_START)
    }

    /// An empty network with the clock at `start`.
    pub fn starting_at(seed: u64, start: OffsetDateTime) -> Network {
        Network {
            nodes: Mutex::new(BTreeMap::new()),
            clock: Mutex::new(start),
            rng: Mutex::new(SeededRandom::new(seed)),
            world: Mutex::new(wire::World::new(
                Timing::default(),
                Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX),
            )),
            start,
        }
    }

    /// Sets the heartbeat and dead-peer timing of connections made from
    /// now on (default [`Timing::default`]: heartbeat 1 s, dead after 3 s).
    pub fn set_timing(&self, timing: Timing) {
        lock(&self.world).timing = timing;
    }

    /// The timing of new connections.
    pub fn timing(&self) -> Timing {
        lock(&self.world).timing
    }

    /// The virtual time.
    pub fn now(&self) -> OffsetDateTime {
        *lock(&self.clock)
    }

    fn set_now(&self, at: OffsetDateTime) {
        let mut clock = lock(&self.clock);
        *clock = (*clock).max(at);
    }

    /// Moves the virtual clock forward without running anything: as if
    /// every site was suspended for `by` (see [`Network`]).
    pub fn advance(&self, by: Duration) {
        let mut clock = lock(&self.clock);
        *clock += by;
    }

    /// Runs the network at the current time: dials and redeems what is
    /// due, delivers every byte, handles every event and every timer that
    /// is due. The clock does not move.
    pub fn tick(&self) -> Result<(), HarnessError> {
        self.run_until(self.now())
    }

    /// Runs the network for `by` of virtual time (see [`Network`]).
    pub fn run_for(&self, by: Duration) -> Result<(), HarnessError> {
        self.run_until(self.now() + by)
    }

    /// Runs the network until the clock reads `end` (see [`Network`]).
    pub fn run_until(&self, end: OffsetDateTime) -> Result<(), HarnessError> {
        let mut world = lock(&self.world);
        world.run_until(self, end)
    }

    /// Every event so far, oldest first, with the time since the start:
    /// `+3.000s east link1: ...` for the dialing end of east's link1,
    /// `+3.000s west <- east link1: ...` for its listening end on west. The
    /// same seed and calls give the same log.
    pub fn events(&self) -> Vec<String> {
        lock(&self.world).log.clone()
    }

    /// Runs `f` with the network's random generator.
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut SeededRandom) -> T) -> T {
        f(&mut lock(&self.rng))
    }

    /// Adds an interior site called `name` (namespace = name, host = name).
    pub fn add_site(&self, name: &str) -> Result<Arc<MemorySite>, HarnessError> {
        self.add_site_with(SiteConfig::new(name))
    }

    /// Adds a site from `config`; its host is set to its name so the
    /// network can route to it.
    pub fn add_site_with(&self, config: SiteConfig) -> Result<Arc<MemorySite>, HarnessError> {
        let name = config.name.clone();
        if lock(&self.nodes).contains_key(&name) {
            return Err(HarnessError::SiteExists { name });
        }
        let config = config.hosts([name.clone()]);
        let now = self.now();
        let site =
            self.with_rng(|rng| Site::create(Arc::new(MemoryStore::new()), &config, now, rng))?;
        let site = Arc::new(site);
        lock(&self.nodes).insert(
            name,
            Node {
                site: site.clone(),
                reachable: true,
            },
        );
        Ok(site)
    }

    /// The site called `name`.
    pub fn site(&self, name: &str) -> Result<Arc<MemorySite>, HarnessError> {
        lock(&self.nodes)
            .get(name)
            .map(|n| n.site.clone())
            .ok_or_else(|| HarnessError::NoSuchSite { name: name.into() })
    }

    fn sites(&self) -> Vec<(String, Arc<MemorySite>)> {
        lock(&self.nodes)
            .iter()
            .map(|(n, node)| (n.clone(), node.site.clone()))
            .collect()
    }

    fn reachable(&self, name: &str) -> bool {
        lock(&self.nodes).get(name).is_some_and(|n| n.reachable)
    }

    /// Cuts a site off the network (`false`) or puts it back (`true`).
    /// An unreachable site can neither be reached nor reach others, and
    /// what its connections send is lost.
    pub fn set_reachable(&self, name: &str, reachable: bool) -> Result<(), HarnessError> {
        lock(&self.nodes)
            .get_mut(name)
            .map(|n| n.reachable = reachable)
            .ok_or_else(|| HarnessError::NoSuchSite { name: name.into() })
    }

    /// Creates a token on `site` now.
    pub fn create_token(&self, site: &str, options: &TokenOptions) -> Result<Token, HarnessError> {
        let s = self.site(site)?;
        let now = self.now();
        Ok(self.with_rng(|rng| s.create_token(options, now, rng))?)
    }

    /// Creates a link on `site` from a token file's contents (any format),
    /// redeeming a claim token or an AccessToken over the network now (as
    /// `link create` does); for a Link file of several Links, the first
    /// link. It
    /// connects at the next run ([`Network::tick`]).
    pub fn create_link(
        &self,
        site: &str,
        token: &[u8],
        options: &LinkOptions,
    ) -> Result<LinkRecord, HarnessError> {
        let s = self.site(site)?;
        let now = self.now();
        let created = self.with_rng(|rng| s.create_link(token, options, now, rng))?;
        if let Some(redeem) = &created.grant_redemption {
            let answer = wire::redeem_grant(self, site, redeem);
            return Ok(s.handle_grant_redemption(redeem, answer, now)?.remove(0));
        }
        match created.redemption {
            None => Ok(created.link),
            Some(redemption) => {
                let answer = self.redeem_in_memory(site, &redemption);
                Ok(s.handle_redemption(&redemption, answer, now)?)
            }
        }
    }

    /// Issues a Skupper 2.x access grant on `site` now; returns it and the
    /// AccessToken to give another site ([`Network::create_link`] redeems
    /// it over the network, at the grant server its URL names).
    pub fn issue_grant(
        &self,
        site: &str,
        options: &GrantOptions,
    ) -> Result<(GrantRecord, AccessToken), HarnessError> {
        let s = self.site(site)?;
        let now = self.now();
        Ok(self.with_rng(|rng| s.issue_grant(options, now, rng))?)
    }

    /// `link generate` on `site` now: a Skupper 2.x Link file named `name`.
    pub fn generate_link_file(
        &self,
        site: &str,
        name: &str,
        cost: u32,
    ) -> Result<LinkFile, HarnessError> {
        let s = self.site(site)?;
        let now = self.now();
        Ok(self.with_rng(|rng| s.generate_link_file(name, cost, None, now, rng))?)
    }

    /// Redeems the AccessToken of a pending or failed link on `site` again
    /// now ([`Site::redeem_grant_link`]).
    pub fn redeem_grant_link(&self, site: &str, link: &str) -> Result<LinkRecord, HarnessError> {
        let s = self.site(site)?;
        let redeem = s.redeem_grant_link(link)?;
        let answer = wire::redeem_grant(self, site, &redeem);
        Ok(s.handle_grant_redemption(&redeem, answer, self.now())?
            .remove(0))
    }

    /// Redeems the claim of a pending or failed link on `site` now (as a
    /// running site retries it), without waiting for its backoff.
    pub fn redeem_link(&self, site: &str, link: &str) -> Result<LinkRecord, HarnessError> {
        let s = self.site(site)?;
        let redemption = s.redeem_link(link)?;
        let answer = self.redeem_in_memory(site, &redemption);
        Ok(s.handle_redemption(&redemption, answer, self.now())?)
    }

    /// Deletes a link on `site`; its connection, if any, says goodbye at
    /// the next run.
    pub fn delete_link(&self, site: &str, link: &str) -> Result<(), HarnessError> {
        Ok(self.site(site)?.delete_link(link)?)
    }

    /// Revokes access to `site` now; its connected peers get a signed
    /// notice at once.
    pub fn revoke_access(&self, site: &str) -> Result<AccessRevoked, HarnessError> {
        let s = self.site(site)?;
        let now = self.now();
        let revoked = self.with_rng(|rng| s.revoke_access(now, rng))?;
        lock(&self.world).sweep_and_pump(self, site)?;
        Ok(revoked)
    }

    /// Revokes one peer of `site` now; its connections get a signed notice
    /// at once.
    pub fn revoke_peer(&self, site: &str, peer: &str) -> Result<PeerRevoked, HarnessError> {
        let s = self.site(site)?;
        let revoked = s.revoke_peer(peer, self.now())?;
        lock(&self.world).sweep_and_pump(self, site)?;
        Ok(revoked)
    }

    /// Sends a ping on the connection of `link` of `site`; the answer comes
    /// when the network runs: [`Network::ping_outcome`].
    pub fn ping(&self, site: &str, link: &str) -> Result<u64, HarnessError> {
        lock(&self.world).ping(self, site, link)
    }

    /// What became of ping `id` on `link` of `site`: `None` while it is
    /// on its way.
    pub fn ping_outcome(&self, site: &str, link: &str, id: u64) -> Option<PingOutcome> {
        lock(&self.world).ping_outcome(site, link, id)
    }

    /// Whether `link` of `site` has a connection that is up.
    pub fn is_connected(&self, site: &str, link: &str) -> bool {
        lock(&self.world).is_connected(site, link)
    }

    /// `site`'s status sentence.
    pub fn status(&self, site: &str) -> Result<SiteStatus, HarnessError> {
        Ok(self.site(site)?.status(self.now())?)
    }

    /// The status line of `link` on `site`.
    pub fn link_status(&self, site: &str, link: &str) -> Result<LinkStatus, HarnessError> {
        Ok(self.site(site)?.link_status(link)?)
    }

    fn elapsed(&self) -> Duration {
        self.now() - self.start
    }

    fn redeem_in_memory(
        &self,
        from: &str,
        redemption: &crate::link_ops::Redemption,
    ) -> Result<crate::token::CertToken, crate::transport::TransportError> {
        wire::redeem(self, from, redemption)
    }
}
