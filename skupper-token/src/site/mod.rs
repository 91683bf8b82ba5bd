//! A site: its identity and CA, the tokens it issues, the claims it
//! redeems, its outgoing links, the peers it accepts, and revocation.
//!
//! A [`Site`] is a handle on one [`Store`]. Every durable change is a
//! compare-and-swap on a store record, so any number of handles (threads,
//! processes) can act on one site at once. Which peers are connected right
//! now is in the store too ([`crate::incoming`]): the handle that holds
//! their connections keeps a cache of them and renews their records.
//!
//! # Where each concern is
//!
//! - `config.rs`: making and opening a site ([`SiteConfig`],
//!   [`Site::create`], [`Site::open`], [`Site::server_credentials`]);
//! - `tokens.rs`: the tokens it issues ([`TokenOptions`],
//!   [`Site::create_token`]) and what it lists of them ([`Site::claims`],
//!   [`Site::issued`]);
//! - `redeem.rs`: [`Site::redeem_claim`] (its rules, from the request to
//!   the HTTP status, are in [`crate::claim`]);
//! - `grant.rs`: Skupper 2.x access grants ([`Site::issue_grant`],
//!   [`Site::grants`], [`Site::redeem_grant`], whose rules are in
//!   [`crate::v2::grant_redeem`]) and link files
//!   ([`Site::generate_link_file`]);
//! - `incoming.rs`: links other sites make to this one
//!   ([`Site::authenticate_peer`], [`Site::accept_incoming`], ...);
//! - `revocation.rs`: [`Site::revoke_access`], [`Site::revoke_peer`];
//! - `status.rs`: [`Site::status`];
//! - `errors.rs`: the error of each family of operations ([`LoadError`],
//!   [`CreateSiteError`], [`TokenError`], [`IncomingError`],
//!   [`RevokeError`], [`LinkError`]) and their sum [`SiteError`];
//! - this file: the [`Site`] handle itself and its outgoing links
//!   ([`Site::create_link`], [`Site::dial_link`], [`Site::handle_dial`], ...).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use time::{Duration, OffsetDateTime};

use crate::claim::{RedeemRequest, MAX_CAS_ATTEMPTS};
use crate::claim_queue::ClaimQueue;
use crate::incoming::{IncomingRecord, DEFAULT_HOLDER, DEFAULT_LEASE};
use crate::keys::{self, KeyBackend};
use crate::link::{
    self, LinkChange, LinkInstance, LinkRecord, LinkState, LinkStatus, TransitionError,
    DEFAULT_COST,
};
use crate::link_ops::{CreatedLink, Dial, LinkAction, LinkClosed, NoticeRejected, Redemption};
use crate::pki::{CaIssuer, CertifiedKey, PeerVerifier, PkiError};
use crate::protocol::{LocalSite, RevokeNotice, SignedNotice};
use crate::random::{self, Random};
pub use crate::records::{IssuedRecord, IssuedVia, RevokedCert, SiteMode, SiteRecord, StoredCert};
use crate::store::{
    typed, Cas, Key, Listing, Record, RecordKind, Store, StoreError, Version, Versioned,
};
use crate::token::{CertToken, TokenFile};
use crate::transport::TransportError;
use crate::v2::GrantRequest;

/// Skupper's default claims port.
pub const DEFAULT_CLAIMS_PORT: u16 = 8081;
/// Skupper's default inter-router port.
pub const DEFAULT_INTER_ROUTER_PORT: u16 = 55671;
/// Skupper's default edge port.
pub const DEFAULT_EDGE_PORT: u16 = 45671;
/// Skupper's default cert token name.
pub const DEFAULT_CERT_TOKEN_NAME: &str = "skupper";
/// How many link state changes a [`Site`] handle queues for
/// [`Site::poll_link_event`] before it drops the oldest.
pub const LINK_EVENTS_KEPT: usize = 1024;

mod config;
mod grant;
mod grant_links;
pub use grant::{DEFAULT_LINK_FILE_COST, ENDPOINT_GROUP};
mod errors;
mod incoming;
mod redeem;
mod revocation;
mod status;
mod tokens;

pub use self::config::{OpenError, SiteConfig};
pub use self::errors::{
    CreateSiteError, IncomingError, LinkError, LoadError, RevokeError, SiteError, TokenError,
};
use self::errors::{EdgeSite, Invalid};
pub use self::incoming::{IncomingLink, PeerHello};
pub use self::revocation::{AccessRevoked, PeerRevoked};
pub use self::status::SiteStatus;
pub use self::tokens::{TokenKind, TokenOptions, MIN_CLAIM_EXPIRY};

/// How to make a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOptions {
    /// The link name; defaults to `link<N>`.
    pub name: Option<String>,
    /// The cost (default 1).
    pub cost: u32,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            name: None,
            cost: DEFAULT_COST,
        }
    }
}

impl LinkOptions {
    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the cost.
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }
}

// ---------------------------------------------------------------------------
// Runtime state
// ---------------------------------------------------------------------------

/// The CA and verifier of one version of the site record, parsed once.
struct Loaded {
    version: Version,
    record: SiteRecord,
    issuer: Option<CaIssuer>,
    verifier: Option<PeerVerifier>,
    revoked: BTreeMap<String, RevokedCert>,
    /// The server certificate and key, parsed (and the key checked against
    /// the certificate) the first time they are asked for: the claims
    /// server asks at every TLS handshake.
    server: OnceLock<Result<CertifiedKey, PkiError>>,
}

// ---------------------------------------------------------------------------
// The site
// ---------------------------------------------------------------------------

/// A handle on one site kept in a [`Store`].
///
/// All methods take `&self`; a `Site` can be shared between threads.
/// Operations that need time take `now`; operations that need randomness
/// take a [`Random`](crate::random::Random).
pub struct Site<S> {
    store: S,
    id: String,
    keys: Arc<dyn KeyBackend>,
    cache: Mutex<Option<Arc<Loaded>>>,
    /// The incoming links this handle holds, by (peer site id, link).
    incoming: Mutex<BTreeMap<(String, String), Held>>,
    holder: String,
    lease: Duration,
    /// Redemptions of one claim through this handle take turns.
    claim_queue: ClaimQueue,
    /// Link state changes made through this handle, for
    /// [`Site::poll_link_event`].
    link_events: Mutex<VecDeque<LinkChange>>,
}

/// An incoming link this handle holds, and its record as last written.
struct Held {
    link: IncomingLink,
    record: IncomingRecord,
}

impl<S> fmt::Debug for Site<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Site")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// [`LinkError::LinkReplaced`] unless `link` is still the instance `held`
/// that a dialer reports on (the one check of every dialer's report).
fn still_dialed(held: &LinkInstance, link: &LinkRecord) -> Result<(), LinkError> {
    match held.is_of(link) {
        true => Ok(()),
        false => Err(LinkError::LinkReplaced {
            name: link.name.clone(),
        }),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps are replaced or edited in single statements, so a
    // panic elsewhere cannot leave them half-updated.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: Store> Site<S> {
    fn with_id(store: S, id: String) -> Site<S> {
        Site {
            store,
            id,
            keys: keys::deterministic(),
            cache: Mutex::new(None),
            incoming: Mutex::new(BTreeMap::new()),
            holder: DEFAULT_HOLDER.to_owned(),
            lease: DEFAULT_LEASE,
            claim_queue: ClaimQueue::default(),
            link_events: Mutex::new(VecDeque::new()),
        }
    }

    /// Names the running site that holds this handle's incoming links
    /// (default [`DEFAULT_HOLDER`]); their records say so. A holder that
    /// starts under the same name again takes over (and clears) what an
    /// earlier one left behind ([`Site::reconcile_incoming`]); several
    /// holders serving one site at once need different names.
    pub fn with_incoming_holder(mut self, holder: impl Into<String>) -> Site<S> {
        self.holder = holder.into();
        self
    }

    /// Sets how long an incoming link's record counts as live without a
    /// renewal (default [`DEFAULT_LEASE`]; at least one second).
    pub fn with_incoming_lease(mut self, lease: Duration) -> Site<S> {
        self.lease = lease.max(Duration::SECOND);
        self
    }

    /// Makes and signs this site's certificates with `backend` from now on
    /// (cert tokens, redeemed claims, the CA made by revoke-access).
    ///
    /// Sites start with [`keys::Deterministic`], whose output repeats under a
    /// seeded [`Random`](crate::random::Random). A real site passes a faster backend that draws its
    /// randomness from the operating system (the CLI uses one on `ring`).
    /// [`Site::create`] always makes the first CA with the deterministic
    /// backend, from the `rng` it is given.
    pub fn with_key_backend(mut self, backend: Arc<dyn KeyBackend>) -> Site<S> {
        self.keys = backend;
        *self.cache.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
        self
    }

    /// The backend that makes and signs this site's certificates.
    pub fn key_backend(&self) -> &Arc<dyn KeyBackend> {
        &self.keys
    }

    /// The site id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The store this site is kept in.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The site record as it is now in the store.
    pub fn record(&self) -> Result<SiteRecord, LoadError> {
        Ok(self.loaded()?.record.clone())
    }

    fn loaded(&self) -> Result<Arc<Loaded>, LoadError> {
        let Versioned { version, record } = typed::load(&self.store, &Key::site(), typed::site)?
            .ok_or(LoadError::NotInitialized)?;
        if let Some(cached) = lock(&self.cache).as_ref() {
            if cached.version == version {
                return Ok(cached.clone());
            }
        }
        let issuer = match &record.ca {
            Some(ca) => Some(CaIssuer::from_certified_key_with(
                self.keys.clone(),
                &ca.certified_key()?,
            )?),
            None => None,
        };
        let verifier = issuer.as_ref().map(CaIssuer::peer_verifier).transpose()?;
        let revoked = record
            .revoked
            .iter()
            .map(|r| (r.serial.clone(), r.clone()))
            .collect();
        let loaded = Arc::new(Loaded {
            version,
            record,
            issuer,
            verifier,
            revoked,
            server: OnceLock::new(),
        });
        *lock(&self.cache) = Some(loaded.clone());
        Ok(loaded)
    }

    /// Applies `change` to the site record with compare-and-swap, retrying
    /// on conflict.
    fn update_site(
        &self,
        mut change: impl FnMut(&mut SiteRecord) -> Result<(), RevokeError>,
    ) -> Result<SiteRecord, RevokeError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Versioned {
                version,
                mut record,
            } = typed::load(&self.store, &Key::site(), typed::site)?
                .ok_or(RevokeError::NotInitialized)?;
            change(&mut record)?;
            let new = Record::Site(Box::new(record.clone()));
            if let Cas::Done(_) =
                self.store
                    .compare_and_swap(&Key::site(), Some(version), Some(new))?
            {
                return Ok(record);
            }
        }
        Err(RevokeError::Conflict {
            what: "the site record".into(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    fn issuer<'a>(&self, loaded: &'a Loaded) -> Result<&'a CaIssuer, EdgeSite> {
        loaded.issuer.as_ref().ok_or(EdgeSite)
    }

    // -----------------------------------------------------------------------
    // Outgoing links
    // -----------------------------------------------------------------------

    /// Creates a link from a token file's contents, of any format
    /// ([`TokenFile::decode`]: a 1.x claim or cert token, a Skupper 2.x
    /// AccessToken or Link file), without redeeming or connecting
    /// anything; for a Link file of several Links, the first link (see
    /// [`Site::create_link`] for the others). Checks, in order, before
    /// anything is stored: the token is complete, it is not from this site
    /// (its site id, or this site's CA), no link to its remote site exists
    /// (the same remote site id or the same remote CA:
    /// [`LinkRecord::same_remote`], whatever format made either link), the
    /// link name is free (default `link<N>`), and an AccessToken can be
    /// redeemed by this site ([`crate::v2::GrantRequest::new`]).
    ///
    /// A link whose claim or AccessToken the issuing site refused for good
    /// ([`LinkState::Failed`], not retryable) can never connect, so it does
    /// not count as a link to that site: it is deleted, and the new link
    /// takes its place.
    ///
    /// A claim token's and an AccessToken's link is [`LinkState::Pending`]
    /// until redeemed; a cert token's and a Link file's is
    /// [`LinkState::Connecting`].
    ///
    /// The link's [`LinkRecord::instance`] is drawn from `rng`.
    pub fn add_link(
        &self,
        token: &[u8],
        options: &LinkOptions,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<LinkRecord, LinkError> {
        let file = TokenFile::decode(token)?;
        Ok(self.add_links(&file, options, now, rng)?.remove(0))
    }

    /// [`Site::add_link`] for a decoded file: every link it makes (one per
    /// Link of a Link file, one otherwise), the first first.
    ///
    /// When another handle (another process on the same site) makes a
    /// link of the chosen name between the checks and the write, the
    /// checks run again on what is stored now: a link to the same remote
    /// site made meanwhile is [`LinkError::AlreadyConnected`], as it would
    /// have been a moment later, and a default name taken by a link to
    /// another site gives way to the next free one.
    fn add_links(
        &self,
        file: &TokenFile,
        options: &LinkOptions,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<Vec<LinkRecord>, LinkError> {
        let instance = random::uuid_v4(rng).to_string();
        let mut attempts = 0;
        loop {
            match self.try_add_links(file, options, now, &instance)? {
                Ok(records) => return Ok(records),
                Err(taken) if attempts == MAX_CAS_ATTEMPTS => {
                    return Err(LinkError::LinkNameTaken { name: taken })
                }
                Err(_) => attempts += 1,
            }
        }
    }

    /// One try of [`Site::add_links`]: the links made, or `Ok(Err(name))`
    /// when a link named `name` was made meanwhile by another handle
    /// (nothing of this try is left stored).
    fn try_add_links(
        &self,
        file: &TokenFile,
        options: &LinkOptions,
        now: OffsetDateTime,
        instance: &str,
    ) -> Result<Result<Vec<LinkRecord>, String>, LinkError> {
        let loaded = self.loaded()?;
        let site = &loaded.record;
        let edge = site.mode == SiteMode::Edge;
        let (remote_site_id, remote_ca, count) = match file {
            TokenFile::V1(t) => (
                t.issuer_site_id().to_owned(),
                link::ca_fingerprint(t.ca_pem()),
                1,
            ),
            TokenFile::AccessToken(t) => {
                GrantRequest::new(t, &site.id)?;
                (
                    link::ca_site_id(&t.ca_pem),
                    link::ca_fingerprint(&t.ca_pem),
                    1,
                )
            }
            TokenFile::LinkFile(f) => (
                link::ca_site_id(&f.secret.ca_pem),
                link::ca_fingerprint(&f.secret.ca_pem),
                f.links.len(),
            ),
        };
        let own_ca = site
            .ca
            .as_ref()
            .map(|ca| link::ca_fingerprint(&ca.cert_pem));
        if remote_site_id == site.id || own_ca.as_deref() == Some(remote_ca.as_str()) {
            return Err(LinkError::LinkToSelf);
        }
        // The same AccessToken again (a file kept around, Skupper's
        // #2112) is the link it made, whatever its CA says: Skupper's grant
        // server has a CA of its own, so the CA alone cannot tell.
        let same_token = |l: &LinkRecord| match file {
            TokenFile::AccessToken(t) => l.access_token_url.as_deref() == Some(t.url.as_str()),
            _ => false,
        };
        let (same_site, links): (Vec<LinkRecord>, Vec<LinkRecord>) = self
            .links()?
            .into_iter()
            .partition(|l| l.same_remote(&remote_site_id, &remote_ca) || same_token(l));
        if let Some(existing) = same_site.iter().find(|l| !l.is_refused()) {
            // The existing link's id for the site: a 2.x file names its
            // site only by its CA, the link may have learned the site's id.
            return Err(LinkError::AlreadyConnected {
                site: existing.remote_site_id.clone(),
                link: existing.name.clone(),
            });
        }
        for refused in &same_site {
            self.store
                .delete(&Key::new(RecordKind::Link, refused.name.clone()))?;
        }
        let name = match &options.name {
            Some(name) => {
                validate_name("link name", name)?;
                name.clone()
            }
            None => next_link_name(links.iter().map(|l| l.name.as_str())),
        };
        let names: Vec<String> = (0..count)
            .map(|i| match i {
                0 => name.clone(),
                i => format!("{name}-{}", i + 1),
            })
            .collect();
        if let Some(taken) = names.iter().find(|n| links.iter().any(|l| l.name == **n)) {
            return Err(LinkError::LinkNameTaken {
                name: taken.clone(),
            });
        }
        let cost = options.cost;
        let records: Vec<LinkRecord> = match file {
            TokenFile::V1(t) => vec![LinkRecord::new(name, cost, t, edge, now)],
            TokenFile::AccessToken(t) => vec![LinkRecord::from_access_token(name, cost, t, now)],
            TokenFile::LinkFile(f) => f
                .links
                .iter()
                .zip(names)
                .map(|(l, name)| LinkRecord::from_link(name, cost, l, &f.secret, edge, now))
                .collect(),
        };
        let records: Vec<LinkRecord> = records
            .into_iter()
            .map(|r| r.with_instance(instance))
            .collect();
        for (i, record) in records.iter().enumerate() {
            let key = Key::new(RecordKind::Link, record.name.clone());
            let new = Some(Record::Link(Box::new(record.clone())));
            if let Cas::Conflict(_) = self.store.compare_and_swap(&key, None, new)? {
                // Made meanwhile by another handle: the links made so far
                // are taken back, so nothing half-made stays.
                for made in &records[..i] {
                    self.store
                        .delete(&Key::new(RecordKind::Link, made.name.clone()))?;
                }
                return Ok(Err(record.name.clone()));
            }
        }
        Ok(Ok(records))
    }

    /// Creates a link ([`Site::add_link`], any format) and says what to
    /// redeem: for a claim token [`CreatedLink::redemption`] (the caller
    /// redeems it and gives the answer to [`Site::handle_redemption`]), for
    /// an AccessToken [`CreatedLink::grant_redemption`] (the answer goes to
    /// [`Site::handle_grant_redemption`]). A Link file of several Links
    /// makes one link per Link, as Skupper does: the first is
    /// [`CreatedLink::link`], the others [`CreatedLink::more`].
    ///
    /// If the token cannot be redeemed (refused, or the issuing site could
    /// not be reached), the handler deletes the link again and says why
    /// ([`LinkError::ClaimRedemption`], [`LinkError::GrantRedemption`]): a
    /// link that was never made leaves nothing behind, so creating it again
    /// with another token is not refused as [`LinkError::AlreadyConnected`].
    pub fn create_link(
        &self,
        token: &[u8],
        options: &LinkOptions,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<CreatedLink, LinkError> {
        let file = TokenFile::decode(token)?;
        let mut links = self.add_links(&file, options, now, rng)?;
        let link = links.remove(0);
        let pending = matches!(link.state(), LinkState::Pending);
        let redemption = match pending && link.claim_token()?.is_some() {
            true => Some(self.redemption(&link, true)?),
            false => None,
        };
        let grant_redemption = match pending && link.access_token()?.is_some() {
            true => Some(self.grant_redeem(&link, true)?),
            false => None,
        };
        Ok(CreatedLink {
            link,
            redemption,
            grant_redemption,
            more: links,
        })
    }

    /// The redemption of a pending (or failed) link's claim, to do and
    /// give to [`Site::handle_redemption`]. A link with credentials has
    /// nothing to redeem: [`LinkError::NothingToRedeem`].
    pub fn redeem_link(&self, name: &str) -> Result<Redemption, LinkError> {
        self.redemption(&self.link(name)?, false)
    }

    fn redemption(&self, link: &LinkRecord, new_link: bool) -> Result<Redemption, LinkError> {
        let claim = match (link.state(), link.claim_token()?) {
            (LinkState::Pending | LinkState::Failed { .. }, Some(claim)) => claim,
            _ => {
                return Err(LinkError::NothingToRedeem {
                    link: link.name.clone(),
                    state: link.state().label(),
                })
            }
        };
        let site = &self.loaded()?.record;
        Ok(Redemption {
            link: link.name.clone(),
            url: claim.url.clone(),
            ca_pem: claim.ca_pem.clone(),
            request: RedeemRequest {
                claim: claim.name.clone(),
                password: claim.password.expose().as_bytes().to_vec(),
                site_id: site.id.clone(),
                site_version: site.version.clone(),
            },
            remote_site_id: link.remote_site_id.clone(),
            new_link,
        })
    }

    /// Records the answer to `redemption`. A cert token (from the site the
    /// claim is from; another site's is refused as
    /// [`TransportError::Protocol`]) becomes the link's credentials: it
    /// forgets the claim password and is [`LinkState::Connecting`]. On
    /// failure [`LinkError::ClaimRedemption`] says why, and the link is
    /// deleted when the redemption came with [`Site::create_link`]
    /// ([`Redemption::new_link`]), [`LinkState::Failed`] with the reason
    /// (`Failed to redeem claim: ...`) otherwise.
    pub fn handle_redemption(
        &self,
        redemption: &Redemption,
        outcome: Result<CertToken, TransportError>,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError> {
        let name = redemption.link.as_str();
        let outcome = outcome.and_then(|cert| {
            if cert.issuer_site_id == redemption.remote_site_id {
                Ok(cert)
            } else {
                Err(TransportError::Protocol {
                    reason: format!(
                        "the claims server answered with a token from site {} instead of {}",
                        cert.issuer_site_id, redemption.remote_site_id
                    ),
                })
            }
        });
        let e = match outcome {
            Ok(cert) => {
                let edge = self.loaded()?.record.mode == SiteMode::Edge;
                let (link, _) =
                    self.update_link(name, |l| Ok(Some(l.redeemed(&cert, edge, now)?)))?;
                return Ok(link);
            }
            Err(e) => e,
        };
        let reason = e.to_string();
        let retryable = e.is_retryable();
        if redemption.new_link {
            self.store.delete(&Key::new(RecordKind::Link, name))?;
        } else {
            self.update_link(name, |l| {
                Ok(l.transition(
                    LinkState::Failed {
                        reason: format!("Failed to redeem claim: {reason}"),
                        retryable,
                    },
                    "claim redemption failed",
                    now,
                )?)
            })?;
        }
        Err(LinkError::ClaimRedemption {
            link: name.to_owned(),
            reason,
            retryable,
        })
    }

    /// What dialing link `name` takes: its endpoint and credentials. A link
    /// without credentials, or revoked, is not dialed: [`TransitionError`]
    /// with [`link::NO_CREDENTIALS`] or [`link::REVOKED_IS_TERMINAL`].
    pub fn dial_link(&self, name: &str) -> Result<Dial, LinkError> {
        let link = self.link(name)?;
        if link.state().is_revoked() {
            return Err(TransitionError {
                link: name.to_owned(),
                from: link.state().label(),
                to: "connected",
                reason: link::REVOKED_IS_TERMINAL,
            }
            .into());
        }
        let site = &self.loaded()?.record;
        let local = LocalSite {
            site_id: site.id.clone(),
            site_name: site.name.clone(),
        };
        Dial::for_link(&link, local, site.mode)
    }

    /// Records how `dial` went: `Ok` (the remote site accepted the link:
    /// [`crate::protocol::Event::Connected`]) makes the link
    /// [`LinkState::Connected`]; an error makes it
    /// [`LinkState::NotConnected`] with [`Dial::failure_reason`] (`peer
    /// unreachable: ...`, `TLS handshake failed: ...`, `certificate
    /// rejected by the remote site: ...`). A revoked link stays revoked
    /// (a failure returns it as it is; a connection is refused with
    /// [`TransitionError`]); a replaced one is not touched
    /// ([`LinkError::LinkReplaced`]).
    pub fn handle_dial(
        &self,
        dial: &Dial,
        outcome: Result<(), TransportError>,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError> {
        match outcome {
            Ok(()) => self.record_connected(dial, None, now),
            Err(e) => self.link_down(dial, dial.failure_reason(&e), &e.to_string(), now),
        }
    }

    /// Records that a connection of `dial` is up with the remote site
    /// `remote_site_id` (the one in [`crate::protocol::Event::Connected`]):
    /// what [`Site::handle_dial`] records for `Ok(())`, and a link that knew
    /// its remote site only by its CA (made from a Skupper 2.x file,
    /// [`LinkRecord::knows_site_by_ca`]) knows it by `remote_site_id` from
    /// now on ([`LinkRecord::learn_site_id`]), so that the revocation
    /// notices of that site verify.
    pub fn handle_connected(
        &self,
        dial: &Dial,
        remote_site_id: &str,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError> {
        self.record_connected(dial, Some(remote_site_id), now)
    }

    fn record_connected(
        &self,
        dial: &Dial,
        remote_site_id: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError> {
        let (link, _) = self.update_link(&dial.link, |l| {
            still_dialed(&dial.held, l)?;
            let learned = remote_site_id.is_some_and(|id| l.learn_site_id(id));
            let change = l.transition(LinkState::Connected { since: now }, "connected", now)?;
            Ok(match change {
                None if learned => Some(LinkChange {
                    link: l.name.clone(),
                    from: l.state().clone(),
                    to: l.state().clone(),
                    why: format!("the remote site is {}", l.remote_site_id),
                    at: now,
                }),
                other => other,
            })
        })?;
        Ok(link)
    }

    /// Records that a connection of `dial` ended ([`LinkClosed`]): the
    /// link is [`LinkState::NotConnected`] with [`Dial::closed_reason`]
    /// (`heartbeat timeout: no answer from <address> (site west) for 3s`,
    /// `certificate rejected by the remote site: ...`, ...). A revoked
    /// link stays revoked and is returned as it is; a replaced one is not
    /// touched ([`LinkError::LinkReplaced`]).
    pub fn handle_link_closed(
        &self,
        dial: &Dial,
        closed: &LinkClosed,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError> {
        let why = match &closed.transport {
            Some(e) => e.to_string(),
            None => closed.reason.to_string(),
        };
        self.link_down(dial, dial.closed_reason(closed), &why, now)
    }

    /// Records that the dialer of `dial` stopped, or could not dial, for
    /// `reason` (its site's runtime is stopping; the link's credentials
    /// cannot be used): the link is [`LinkState::NotConnected`] with
    /// `reason`, under the same rules as [`Site::handle_link_closed`].
    pub fn handle_dial_stopped(
        &self,
        dial: &Dial,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError> {
        self.link_down(dial, reason.to_owned(), reason, now)
    }

    /// The link of `dial` is not connected, for `reason`; a revoked link
    /// stays revoked.
    fn link_down(
        &self,
        dial: &Dial,
        reason: String,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError> {
        let next = LinkState::NotConnected { reason };
        let (link, _) = self.update_link(&dial.link, |l| {
            still_dialed(&dial.held, l)?;
            if l.state().is_revoked() {
                return Ok(None);
            }
            Ok(l.transition(next.clone(), why, now)?)
        })?;
        Ok(link)
    }

    /// Checks a revocation notice that arrived on the connection of `dial`
    /// ([`crate::protocol::Event::RevokeNotice`]) against the link's token
    /// (signed by its CA, from the site it goes to, about its certificate)
    /// and, if it is genuine, makes the link [`LinkState::Revoked`]: the
    /// driver then closes the connection. A notice that is not genuine
    /// changes nothing ([`NoticeRejected::NotGenuine`]): keep the
    /// connection.
    pub fn handle_revoke_notice(
        &self,
        dial: &Dial,
        notice: &SignedNotice,
        now: OffsetDateTime,
    ) -> Result<RevokeNotice, NoticeRejected> {
        let own_serial = crate::pki::pem_to_der(&dial.credentials.cert_pem)
            .and_then(|der| crate::pki::certificate_info(&der))
            .map_err(|e| NoticeRejected::OwnCertificate {
                link: dial.link.clone(),
                reason: e.to_string(),
            })?
            .serial_hex;
        // A dial made before its link learned the remote site's id (a link
        // from a Skupper 2.x file) checks against the id learned since.
        let remote_site_id = if dial.remote_site_id.starts_with(link::CA_SITE_ID_PREFIX) {
            self.link(&dial.link)
                .ok()
                .map(|l| l.remote_site_id)
                .unwrap_or_else(|| dial.remote_site_id.clone())
        } else {
            dial.remote_site_id.clone()
        };
        let checked = notice
            .verify(&dial.credentials.ca_pem, &remote_site_id, &own_serial)
            .map_err(|source| NoticeRejected::NotGenuine {
                link: dial.link.clone(),
                source,
            })?;
        let revoked = LinkState::Revoked {
            by: link::RemoteSite {
                id: checked.issuer_site_id.clone(),
                name: checked.issuer_site_name.clone(),
            },
            at: checked.at,
        };
        self.update_dialed(dial, revoked, &checked.what(), now)?;
        Ok(checked)
    }

    fn update_dialed(
        &self,
        dial: &Dial,
        next: LinkState,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, LinkError> {
        let (link, _) = self.update_link(&dial.link, |l| {
            still_dialed(&dial.held, l)?;
            Ok(l.transition(next.clone(), why, now)?)
        })?;
        Ok(link)
    }
    /// Moves link `name` to `next`, recording `why`
    /// ([`LinkRecord::transition`]), and returns the change: `None` when
    /// nothing changed. Every change is also queued for
    /// [`Site::poll_link_event`].
    pub fn set_link_state(
        &self,
        name: &str,
        next: LinkState,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LinkChange>, LinkError> {
        let (_, change) =
            self.update_link(name, |l| Ok(l.transition(next.clone(), why, now)?))?;
        Ok(change)
    }

    /// [`Site::set_link_state`] for whoever acts on one link instance (a
    /// dialer): changes link `name` only while it is still the instance
    /// `held` ([`LinkRecord::dial_instance`]). If the link was deleted and
    /// made again, or replaced, meanwhile, nothing is changed and the answer is
    /// [`LinkError::LinkReplaced`], so an old dialer's last word (say, a
    /// revocation of the old credentials) never lands on the new link.
    pub fn set_dialed_link_state(
        &self,
        name: &str,
        held: &LinkInstance,
        next: LinkState,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LinkChange>, LinkError> {
        let (_, change) = self.update_link(name, |l| {
            still_dialed(held, l)?;
            Ok(l.transition(next.clone(), why, now)?)
        })?;
        Ok(change)
    }

    /// The next link state change this handle made ([`Site::set_link_state`],
    /// [`Site::handle_redemption`], [`Site::handle_dial`],
    /// [`Site::handle_link_closed`], [`Site::handle_revoke_notice`]), oldest
    /// first; `None` when there is none
    /// left. Only changes that were stored are queued, at most
    /// [`LINK_EVENTS_KEPT`] of them (a handle that is never polled drops
    /// the oldest).
    pub fn poll_link_event(&self) -> Option<LinkChange> {
        lock(&self.link_events).pop_front()
    }

    /// Applies `change` to link `name` and stores it, retrying on conflict;
    /// a change that returns `None` stores nothing.
    fn update_link(
        &self,
        name: &str,
        mut change: impl FnMut(&mut LinkRecord) -> Result<Option<LinkChange>, LinkError>,
    ) -> Result<(LinkRecord, Option<LinkChange>), LinkError> {
        let key = Key::new(RecordKind::Link, name);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Versioned {
                version,
                mut record,
            } = typed::load(&self.store, &key, typed::link)?
                .ok_or_else(|| LinkError::NoSuchLink { name: name.into() })?;
            let Some(made) = change(&mut record)? else {
                return Ok((record, None));
            };
            let new = Record::Link(Box::new(record.clone()));
            if let Cas::Done(_) = self
                .store
                .compare_and_swap(&key, Some(version), Some(new))?
            {
                let mut events = lock(&self.link_events);
                if events.len() >= LINK_EVENTS_KEPT {
                    events.pop_front();
                }
                events.push_back(made.clone());
                return Ok((record, Some(made)));
            }
        }
        Err(LinkError::Conflict {
            what: format!("link {name:?}"),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    /// What a running site does next for each of its links, by name: redeem
    /// a pending claim or one that failed in a way worth trying again
    /// ([`LinkAction::Redeem`]; a link waiting for its AccessToken is left
    /// to [`Site::redeem_grant_link`]), dial a link that has credentials and is
    /// not revoked ([`LinkAction::Dial`]). Links that cannot act (refused,
    /// revoked) are left out. The actions are independent: run them at
    /// once, and give each outcome to [`Site::handle_redemption`] or
    /// [`Site::handle_dial`].
    pub fn process_links(&self) -> Result<Vec<LinkAction>, LinkError> {
        let mut out = Vec::new();
        for link in self.links()? {
            match link.state() {
                // An AccessToken is redeemed once, by whoever made the link
                // (Skupper's #2112: a kept token is never redeemed again by
                // itself); `Site::redeem_grant_link` redeems it again.
                LinkState::Pending | LinkState::Failed { .. } if link.access_token()?.is_some() => {
                }
                LinkState::Pending
                | LinkState::Failed {
                    retryable: true, ..
                } => out.push(LinkAction::Redeem(self.redemption(&link, false)?)),
                LinkState::Failed { .. } | LinkState::Revoked { .. } => {}
                _ => out.push(LinkAction::Dial(self.dial_link(&link.name)?)),
            }
        }
        Ok(out)
    }
    /// One link.
    pub fn link(&self, name: &str) -> Result<LinkRecord, LinkError> {
        Ok(
            typed::load(&self.store, &Key::new(RecordKind::Link, name), typed::link)?
                .ok_or_else(|| LinkError::NoSuchLink { name: name.into() })?
                .record,
        )
    }

    /// Every outgoing link, by name.
    pub fn links(&self) -> Result<Vec<LinkRecord>, StoreError> {
        Ok(typed::list(&self.store, RecordKind::Link, typed::link)?
            .into_iter()
            .map(|v| v.record)
            .collect())
    }

    /// Every outgoing link whose record can be read, and those that cannot
    /// (a corrupt record), so that a report can show the rest.
    pub fn links_listing(&self) -> Result<Listing<LinkRecord>, StoreError> {
        typed::list_readable(&self.store, RecordKind::Link, typed::link)
    }

    /// Deletes a link. The record is not read, so a corrupt one is deleted
    /// too. [`LinkError::NoSuchLink`] if there is none of that name.
    pub fn delete_link(&self, name: &str) -> Result<(), LinkError> {
        if self.store.delete(&Key::new(RecordKind::Link, name))? {
            Ok(())
        } else {
            Err(LinkError::NoSuchLink { name: name.into() })
        }
    }

    /// `Link link1 is connected` / `Link link1 not connected (<reason>)`.
    pub fn link_status(&self, name: &str) -> Result<LinkStatus, LinkError> {
        Ok(self.link(name)?.status())
    }
}

/// `link<max+1>` over the names matching `link<N>`, from `link1`.
pub fn next_link_name<'a>(existing: impl IntoIterator<Item = &'a str>) -> String {
    let max = existing
        .into_iter()
        .filter_map(|n| n.strip_prefix("link"))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|n| n.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    format!("link{}", max.saturating_add(1))
}

/// Names of sites, links and tokens are Kubernetes object names
/// ([`crate::object_name::check`]).
fn validate_name(what: &'static str, name: &str) -> Result<(), Invalid> {
    crate::object_name::check(name).map_err(|reason| Invalid {
        what,
        value: name.to_owned(),
        reason: reason.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Site<crate::store::MemoryStore>>();
        check::<Site<std::sync::Arc<crate::store::MemoryStore>>>();
    }

    #[test]
    fn server_credentials_are_parsed_once_per_record_and_follow_a_revoke_access() {
        use crate::random::SeededRandom;
        use time::macros::datetime;
        let now = datetime!(2027-01-01 00:00 UTC);
        let store = std::sync::Arc::new(crate::store::MemoryStore::new());
        let serving = Site::create(
            store.clone(),
            &SiteConfig::new("west"),
            now,
            &mut SeededRandom::new(1),
        )
        .unwrap();
        let (_, first) = serving.server_credentials().unwrap().unwrap();
        let parsed = lock(&serving.cache).clone().unwrap();
        assert_eq!(parsed.server.get().cloned(), Some(Ok(first.clone())));
        assert_eq!(serving.server_credentials().unwrap().unwrap().1, first);
        // Another handle on the same store (another process: the CLI's
        // revoke-access while serve runs) replaces the certificate.
        let revoking = Site::open(store.clone()).unwrap();
        revoking
            .revoke_access(now, &mut SeededRandom::new(2))
            .unwrap();
        let (_, second) = serving.server_credentials().unwrap().unwrap();
        assert_ne!(second.cert_der, first.cert_der);
        assert_eq!(
            second,
            revoking.server_credentials().unwrap().unwrap().1,
            "the new record's certificate, not the cached one"
        );
    }

    #[test]
    fn default_link_names() {
        assert_eq!(next_link_name([]), "link1");
        assert_eq!(
            next_link_name(["link1", "link3", "mylink", "link", "linkx2"]),
            "link4"
        );
        assert_eq!(next_link_name(["link01"]), "link2");
    }

    #[test]
    fn names_are_object_names() {
        assert!(validate_name("link name", "link1").is_ok());
        assert!(validate_name("link name", "a.b-c").is_ok());
        for bad in ["", "Link1", "-a", "a-", "a b", "a_b", &"a".repeat(254)] {
            assert!(validate_name("link name", bad).is_err(), "{bad:?}");
        }
    }
}
