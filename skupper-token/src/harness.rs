//! An in-memory network of sites for tests and simulations.
//!
//! [`Network`] runs any number of sites in one process, each with its own
//! [`MemoryStore`], on a virtual clock and one seeded random generator, so a
//! run repeats exactly. It routes claim redemptions and link connections by
//! host name (each site's host is its name), checks the certificates both
//! ways as TLS would (the dialer trusts only the CA in its token; the
//! listener runs [`Site::authenticate_peer`]), and can make a site
//! unreachable.
//!
//! ```
//! use skupper_token::harness::Network;
//! use skupper_token::site::{LinkOptions, TokenOptions};
//!
//! let net = Network::new(7);
//! net.add_site("west")?;
//! net.add_site("east")?;
//! let token = net.create_token("west", &TokenOptions::claim())?;
//! net.create_link("east", token.encode().as_bytes(), &LinkOptions::default())?;
//! net.tick()?;
//! assert_eq!(net.link_status("east", "link1")?.to_string(), "Link link1 is connected");
//! # Ok::<(), skupper_token::harness::HarnessError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use time::{Duration, OffsetDateTime};

use crate::claim::RedeemRequest;
use crate::link::{LinkRecord, LinkStatus};
use crate::pki::pem_to_der;
use crate::random::SeededRandom;
use crate::site::{
    AccessRevoked, LinkOptions, PeerHello, PeerRevoked, Site, SiteConfig, SiteError, SiteMode,
    SiteStatus, TokenOptions,
};
use crate::store::MemoryStore;
use crate::token::{CertToken, Token};
use crate::transport::{Dial, Transport, TransportError};

/// A site in a [`Network`].
pub type MemorySite = Site<Arc<MemoryStore>>;

/// The virtual clock's start when none is given: 2026-01-01T00:00:00Z.
pub const DEFAULT_START: OffsetDateTime = time::macros::datetime!(2026-01-01 0:00 UTC);

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
    /// The site refused the operation.
    #[error(transparent)]
    Site(#[from] SiteError),
}

struct Node {
    site: Arc<MemorySite>,
    reachable: bool,
}

/// Sites, a virtual clock and a seeded random generator.
pub struct Network {
    nodes: Mutex<BTreeMap<String, Node>>,
    clock: Mutex<OffsetDateTime>,
    rng: Mutex<SeededRandom>,
    /// Connections made in the last tick: (listening site, dialing site id,
    /// link name).
    sessions: Mutex<BTreeSet<(String, String, String)>>,
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
            sessions: Mutex::new(BTreeSet::new()),
        }
    }

    /// The virtual time.
    pub fn now(&self) -> OffsetDateTime {
        *lock(&self.clock)
    }

    /// Moves the virtual clock forward.
    pub fn advance(&self, by: Duration) {
        let mut clock = lock(&self.clock);
        *clock += by;
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

    /// Cuts a site off the network (`false`) or puts it back (`true`).
    /// An unreachable site can neither be reached nor reach others.
    pub fn set_reachable(&self, name: &str, reachable: bool) -> Result<(), HarnessError> {
        lock(&self.nodes)
            .get_mut(name)
            .map(|n| n.reachable = reachable)
            .ok_or_else(|| HarnessError::NoSuchSite { name: name.into() })
    }

    /// The transport as seen from site `name`.
    pub fn transport(&self, name: &str) -> NetworkTransport<'_> {
        NetworkTransport {
            net: self,
            from: name.to_owned(),
        }
    }

    /// Creates a token on `site` now.
    pub fn create_token(&self, site: &str, options: &TokenOptions) -> Result<Token, HarnessError> {
        let s = self.site(site)?;
        let now = self.now();
        Ok(self.with_rng(|rng| s.create_token(options, now, rng))?)
    }

    /// Creates a link on `site` from a token file's contents, redeeming a
    /// claim token over the network now. It connects at the next
    /// [`Network::tick`].
    pub fn create_link(
        &self,
        site: &str,
        token: &[u8],
        options: &LinkOptions,
    ) -> Result<LinkRecord, HarnessError> {
        let s = self.site(site)?;
        Ok(s.create_link(token, options, &self.transport(site), self.now())?)
    }

    /// Deletes a link on `site`.
    pub fn delete_link(&self, site: &str, link: &str) -> Result<(), HarnessError> {
        Ok(self.site(site)?.delete_link(link)?)
    }

    /// Revokes access to `site` now.
    pub fn revoke_access(&self, site: &str) -> Result<AccessRevoked, HarnessError> {
        let s = self.site(site)?;
        let now = self.now();
        let revoked = self.with_rng(|rng| s.revoke_access(now, rng))?;
        lock(&self.sessions).retain(|(listener, _, _)| listener != site);
        Ok(revoked)
    }

    /// Revokes one peer of `site` now.
    pub fn revoke_peer(&self, site: &str, peer: &str) -> Result<PeerRevoked, HarnessError> {
        let s = self.site(site)?;
        let revoked = s.revoke_peer(peer, self.now())?;
        lock(&self.sessions).retain(|(listener, peer_id, link)| {
            listener != site
                || !revoked
                    .incoming_dropped
                    .iter()
                    .any(|l| &l.peer_site_id == peer_id && &l.link == link)
        });
        Ok(revoked)
    }

    /// `site`'s status sentence.
    pub fn status(&self, site: &str) -> Result<SiteStatus, HarnessError> {
        Ok(self.site(site)?.status(self.now())?)
    }

    /// The status line of `link` on `site`.
    pub fn link_status(&self, site: &str, link: &str) -> Result<LinkStatus, HarnessError> {
        Ok(self.site(site)?.link_status(link)?)
    }

    /// One heartbeat round at the current time: every reachable site
    /// redeems pending claims and dials its links; links that did not come
    /// up this round are dropped at their listeners.
    pub fn tick(&self) -> Result<(), HarnessError> {
        let now = self.now();
        let nodes: Vec<(String, Arc<MemorySite>, bool)> = lock(&self.nodes)
            .iter()
            .map(|(n, node)| (n.clone(), node.site.clone(), node.reachable))
            .collect();
        let before = std::mem::take(&mut *lock(&self.sessions));
        // A cut-off site dials too: that is how it notices its links are
        // down (every dial from it fails).
        for (name, site, _) in &nodes {
            site.process_links(&self.transport(name), now)?;
        }
        let after = lock(&self.sessions).clone();
        for (listener, peer_id, link) in before.difference(&after) {
            if let Some((_, site, _)) = nodes.iter().find(|(n, _, _)| n == listener) {
                site.drop_incoming(peer_id, link)?;
            }
        }
        Ok(())
    }

    fn route(&self, from: &str, host: &str) -> Result<(String, Arc<MemorySite>), TransportError> {
        let nodes = lock(&self.nodes);
        if !nodes.get(from).is_some_and(|n| n.reachable) {
            return Err(TransportError::Unreachable {
                reason: format!("site {from} is cut off from the network"),
            });
        }
        match nodes.get(host) {
            Some(node) if node.reachable => Ok((host.to_owned(), node.site.clone())),
            Some(_) => Err(TransportError::Unreachable {
                reason: format!("no route to host {host} (the site is unreachable)"),
            }),
            None => Err(TransportError::Unreachable {
                reason: format!("unknown host {host}"),
            }),
        }
    }
}

/// [`Transport`] over a [`Network`], from one site.
#[derive(Debug)]
pub struct NetworkTransport<'a> {
    net: &'a Network,
    from: String,
}

/// The server side of a TLS handshake as the dialer sees it: the listener's
/// certificate must come from the CA the dialer trusts.
fn check_server_ca(site: &MemorySite, trusted_ca_pem: &str) -> Result<(), TransportError> {
    let current = site
        .server_credentials()
        .map_err(|e| TransportError::Handshake {
            reason: format!("the remote site cannot serve TLS: {e}"),
        })?;
    match current {
        None => Err(TransportError::Handshake {
            reason: "the remote site accepts no connections (edge site)".into(),
        }),
        Some((ca_pem, _)) if ca_pem.trim() != trusted_ca_pem.trim() => {
            Err(TransportError::Handshake {
                reason: "the remote site's certificate is not issued by the CA in the token \
                         (the site has revoked access since the token was made)"
                    .into(),
            })
        }
        Some(_) => Ok(()),
    }
}

fn url_host(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next();
    }
    authority.split(':').next()
}

impl Transport for NetworkTransport<'_> {
    fn redeem_claim(
        &self,
        url: &str,
        ca_pem: &str,
        request: &RedeemRequest,
    ) -> Result<CertToken, TransportError> {
        let host = url_host(url).ok_or_else(|| TransportError::Protocol {
            reason: format!("claim URL {url:?} is not https://host:port/claim"),
        })?;
        let (_, target) = self.net.route(&self.from, host)?;
        check_server_ca(&target, ca_pem)?;
        let now = self.net.now();
        self.net
            .with_rng(|rng| target.redeem_claim(request, now, rng))
            .map_err(|e| TransportError::Refused {
                status: e.http_status(),
                body: e.http_body(),
            })
    }

    fn connect(&self, dial: &Dial<'_>) -> Result<(), TransportError> {
        let (listener, target) = self.net.route(&self.from, &dial.endpoint.host)?;
        let record = target.record().map_err(|e| TransportError::Unreachable {
            reason: e.to_string(),
        })?;
        let port_ok = match record.mode {
            SiteMode::Interior => {
                dial.endpoint.port == record.inter_router.port
                    || dial.endpoint.port == record.edge.port
            }
            SiteMode::Edge => false,
        };
        if !port_ok {
            return Err(TransportError::Unreachable {
                reason: format!("connection refused by {}", dial.endpoint),
            });
        }
        check_server_ca(&target, &dial.credentials.ca_pem)?;
        let der =
            pem_to_der(&dial.credentials.cert_pem).map_err(|e| TransportError::Handshake {
                reason: format!("the link's client certificate cannot be read: {e}"),
            })?;
        let hello = PeerHello {
            site_id: dial.site_id.to_owned(),
            site_name: dial.site_name.to_owned(),
            link: dial.link.to_owned(),
        };
        target
            .accept_incoming(&[&der], &hello, self.net.now())
            .map_err(|e| TransportError::Rejected {
                reason: e.to_string(),
            })?;
        lock(&self.net.sessions).insert((listener, hello.site_id, hello.link));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("https://west:8081/abc"), Some("west"));
        assert_eq!(url_host("https://[::1]:8081/abc"), Some("::1"));
        assert_eq!(url_host("http://west/abc"), None);
    }
}
