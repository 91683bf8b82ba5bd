//! A site: its identity and CA, the tokens it issues, the claims it
//! redeems, its outgoing links, the peers it accepts, and revocation.
//!
//! A [`Site`] is a handle on one [`Store`]. Every durable change is a
//! compare-and-swap on a store record, so any number of handles (threads,
//! processes) can act on one site at once. Which peers are connected right
//! now is in the store too ([`crate::incoming`]): the handle that holds
//! their connections keeps a cache of them and renews their records.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

use crate::claim::FailedAttempt;
use crate::claim::{self, ClaimRecord, RedeemError, RedeemRequest, MAX_CAS_ATTEMPTS};
use crate::claim_queue::{ClaimQueue, Failures, Turn};
use crate::duration::GoDuration;
use crate::incoming::{IncomingRecord, DEFAULT_HOLDER, DEFAULT_LEASE};
use crate::keys::{self, KeyBackend};
use crate::link::{
    self, LinkChange, LinkRecord, LinkState, LinkStatus, TransitionError, DEFAULT_COST,
};
use crate::link_ops::{CreatedLink, Dial, LinkAction, LinkClosed, NoticeRejected, Redemption};
use crate::pki::{
    AuthError, CaIssuer, CertifiedKey, PeerCertificate, PeerVerifier, PkiError, DEFAULT_VALIDITY,
};
use crate::protocol::{LocalSite, RevokeNotice, SignedNotice};
use crate::random::{self, Random};
use crate::store::{
    typed, Cas, Key, Listing, Record, RecordKind, Store, StoreError, Version, Versioned,
};
use crate::token::{CertToken, ClaimToken, DecodeError, Endpoint, Password, SecretPem, Token};
use crate::transport::TransportError;
use crate::version::{check_remote_version, VERSION};

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

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// Whether a site accepts links (interior) or only makes them (edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiteMode {
    /// Accepts links, issues tokens, has a CA.
    Interior,
    /// Only links to interior sites; has no CA and issues no tokens.
    Edge,
}

impl fmt::Display for SiteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SiteMode::Interior => "interior",
            SiteMode::Edge => "edge",
        })
    }
}

impl std::str::FromStr for SiteMode {
    type Err = String;
    fn from_str(s: &str) -> Result<SiteMode, String> {
        match s {
            "interior" => Ok(SiteMode::Interior),
            "edge" => Ok(SiteMode::Edge),
            other => Err(format!(
                "unknown site mode {other:?}: expected interior or edge"
            )),
        }
    }
}

/// A certificate and its private key as stored (PEM).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StoredCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl fmt::Debug for StoredCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCert")
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl StoredCert {
    fn from_certified(c: &CertifiedKey) -> StoredCert {
        StoredCert {
            cert_pem: c.cert_pem.clone(),
            key_pem: c.key.to_pem(),
        }
    }

    /// Parses the certificate and key.
    pub fn certified_key(&self) -> Result<CertifiedKey, PkiError> {
        CertifiedKey::from_pem(&self.cert_pem, &self.key_pem)
    }
}

/// A certificate this site no longer accepts, although its CA still
/// signs it: made by [`Site::revoke_peer`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RevokedCert {
    /// Serial number, uppercase hex.
    pub serial: String,
    /// The certificate's common name (the peer's site id, or a cert
    /// token's name).
    pub common_name: String,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What a site keeps about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SiteRecord {
    /// The site id (a UUID): the `generated-by` of its tokens and the
    /// common name of the certificates other sites issue to it.
    pub id: String,
    /// The site name.
    pub name: String,
    /// The namespace (what `status` names).
    pub namespace: String,
    /// Interior or edge.
    pub mode: SiteMode,
    /// The version this site reports to others.
    pub version: String,
    /// The hosts the server certificate is for (IP addresses and names).
    pub hosts: Vec<String>,
    /// Where other sites redeem claims.
    pub claims: Endpoint,
    /// Where interior sites link to this site.
    pub inter_router: Endpoint,
    /// Where edge sites link to this site.
    pub edge: Endpoint,
    /// Validity of the certificates this site issues, in seconds.
    pub cert_validity_secs: i64,
    /// The site CA (none on an edge site).
    #[serde(default)]
    pub ca: Option<StoredCert>,
    /// The server certificate for the endpoints, issued by the CA.
    #[serde(default)]
    pub server: Option<StoredCert>,
    /// Starts at 1; +1 on every revoke-access.
    pub ca_generation: u32,
    /// Certificates of the current CA that no longer authenticate.
    #[serde(default)]
    pub revoked: Vec<RevokedCert>,
    /// When the site was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When access was last revoked.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub revoked_at: Option<OffsetDateTime>,
}

impl SiteRecord {
    /// The validity of certificates this site issues.
    pub fn cert_validity(&self) -> Duration {
        Duration::seconds(self.cert_validity_secs)
    }
}

/// How a certificate came to be issued.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "via", rename_all = "kebab-case")]
pub enum IssuedVia {
    /// Redeeming this claim.
    Claim {
        /// The claim name.
        name: String,
    },
    /// Creating this cert token.
    CertToken {
        /// The token name.
        name: String,
    },
}

/// A certificate this site's CA issued (kept to revoke one peer).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IssuedRecord {
    /// Serial number, uppercase hex (the record's name).
    pub serial: String,
    /// Common name: the redeeming site's id, or the cert token's name.
    pub common_name: String,
    /// How it was issued.
    #[serde(flatten)]
    pub via: IssuedVia,
    /// The CA generation that issued it.
    pub ca_generation: u32,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// How to make a new site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    /// The site name.
    pub name: String,
    /// The namespace; defaults to the name.
    pub namespace: String,
    /// Interior (default) or edge.
    pub mode: SiteMode,
    /// The version to report; defaults to [`VERSION`].
    pub version: String,
    /// Hosts other sites reach this site at; the first one is advertised in
    /// tokens, all go into the server certificate. Default `127.0.0.1`.
    pub hosts: Vec<String>,
    /// Claims port (default 8081).
    pub claims_port: u16,
    /// Inter-router port (default 55671).
    pub inter_router_port: u16,
    /// Edge port (default 45671).
    pub edge_port: u16,
    /// Validity of the site CA and of every certificate it issues (default
    /// 5 years, as in Skupper).
    pub validity: Duration,
}

impl SiteConfig {
    /// Defaults for a site called `name`.
    pub fn new(name: impl Into<String>) -> SiteConfig {
        let name = name.into();
        SiteConfig {
            namespace: name.clone(),
            name,
            mode: SiteMode::Interior,
            version: VERSION.to_owned(),
            hosts: vec!["127.0.0.1".to_owned()],
            claims_port: DEFAULT_CLAIMS_PORT,
            inter_router_port: DEFAULT_INTER_ROUTER_PORT,
            edge_port: DEFAULT_EDGE_PORT,
            validity: DEFAULT_VALIDITY,
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: SiteMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the hosts (the first is advertised).
    pub fn hosts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, hosts: I) -> Self {
        self.hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the claims, inter-router and edge ports.
    pub fn ports(mut self, claims: u16, inter_router: u16, edge: u16) -> Self {
        self.claims_port = claims;
        self.inter_router_port = inter_router;
        self.edge_port = edge;
        self
    }

    /// Sets the reported version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }
}

/// The two kinds of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A claim token (the default): exchanged for a certificate when used.
    Claim,
    /// A cert token: carries a certificate, reusable until revoked.
    Cert,
}

/// How to make a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOptions {
    /// Claim or cert.
    pub kind: TokenKind,
    /// The token name: a claim defaults to a random UUID, a cert token to
    /// `skupper`.
    pub name: Option<String>,
    /// Claim tokens: how long the claim can be redeemed (default 15m, zero =
    /// never expires, otherwise at least [`MIN_CLAIM_EXPIRY`]).
    pub expiry: GoDuration,
    /// Claim tokens: how many times (default 1, 0 = unlimited).
    pub uses: u32,
    /// Cert tokens: the certificate's validity (default: the site's).
    pub validity: Option<Duration>,
}

/// The shortest expiry a claim token can have (other than zero, which means
/// it never expires): a claim valid for less than a second is expired by
/// the time anyone can redeem it.
pub const MIN_CLAIM_EXPIRY: GoDuration = GoDuration::from_secs(1);

impl TokenOptions {
    /// Checks what can be checked without a site: the token name, and the
    /// expiry (zero, or at least [`MIN_CLAIM_EXPIRY`]). Creating a token
    /// runs the same checks; call this to refuse bad options before
    /// anything else is done.
    pub fn validate(&self) -> Result<(), SiteError> {
        if let Some(name) = &self.name {
            validate_name("token name", name)?;
        }
        if !self.expiry.is_zero() && self.expiry < MIN_CLAIM_EXPIRY {
            return Err(SiteError::Invalid {
                what: "claim expiry",
                value: self.expiry.to_string(),
                reason: format!(
                    "a claim token must be valid for at least {MIN_CLAIM_EXPIRY}; give {MIN_CLAIM_EXPIRY} or more, or 0 for a token that never expires"
                ),
            });
        }
        Ok(())
    }

    /// A claim token with Skupper's defaults (15 minutes, one use).
    pub fn claim() -> TokenOptions {
        TokenOptions {
            kind: TokenKind::Claim,
            name: None,
            expiry: GoDuration::from_secs(15 * 60),
            uses: claim::DEFAULT_USES,
            validity: None,
        }
    }

    /// A cert token named `skupper`.
    pub fn cert() -> TokenOptions {
        TokenOptions {
            kind: TokenKind::Cert,
            ..TokenOptions::claim()
        }
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the expiry (zero = never).
    pub fn expiry(mut self, expiry: GoDuration) -> Self {
        self.expiry = expiry;
        self
    }

    /// Sets the number of uses (0 = unlimited).
    pub fn uses(mut self, uses: u32) -> Self {
        self.uses = uses;
        self
    }

    /// Sets a cert token's validity.
    pub fn validity(mut self, validity: Duration) -> Self {
        self.validity = Some(validity);
        self
    }
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions::claim()
    }
}

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
// Errors
// ---------------------------------------------------------------------------

/// Why a site operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key or certificate could not be made or read.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The store already holds a site.
    #[error("a site already exists here: namespace {namespace:?}, id {id}; open it instead of creating it")]
    AlreadyExists {
        /// Its namespace.
        namespace: String,
        /// Its id.
        id: String,
    },
    /// The store holds no site.
    #[error("no site has been created here yet: create one first")]
    NotInitialized,
    /// An edge site was asked to issue a token or accept links.
    #[error("Edge configuration cannot accept connections")]
    EdgeCannotAcceptConnections,
    /// A name or setting is not acceptable.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What it is (`site name`, `link name`, `claim expiry`).
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A token of that name already has an outstanding claim.
    #[error("a claim named {name:?} already exists on this site: choose another token name")]
    ClaimExists {
        /// The claim name.
        name: String,
    },
    /// The token file is not a usable Skupper token.
    #[error(transparent)]
    Token(#[from] DecodeError),
    /// The token was issued by this same site.
    #[error("Can't create connection to self with token")]
    LinkToSelf,
    /// A link to the token's issuing site already exists (and its claim
    /// was not refused: a refused link does not count).
    #[error("Already connected to \"{site}\". The existing link {link:?} goes to that site.")]
    AlreadyConnected {
        /// The issuing site's id.
        site: String,
        /// The existing link's name.
        link: String,
    },
    /// A link of that name exists.
    #[error("The connector secret \"{name}\" already exists, please choose a different name")]
    LinkNameTaken {
        /// The name.
        name: String,
    },
    /// No link of that name.
    #[error("No such link \"{name}\"")]
    NoSuchLink {
        /// The name asked for.
        name: String,
    },
    /// The link of that name was replaced (deleted and made again with
    /// another token) since its credentials were read, so a change meant
    /// for the old credentials was not made.
    #[error(
        "link \"{name}\" was replaced: it no longer holds the credentials this change was for"
    )]
    LinkReplaced {
        /// The link name.
        name: String,
    },
    /// The link's claim could not be redeemed; the link is now failed.
    #[error("Failed to redeem claim: {reason}")]
    ClaimRedemption {
        /// The link.
        link: String,
        /// The claims server's (or the network's) reason.
        reason: String,
        /// Whether trying again may help.
        retryable: bool,
    },
    /// The link has nothing to redeem (it already has credentials).
    #[error("link {link:?} has no claim to redeem: it is {state}")]
    NothingToRedeem {
        /// The link.
        link: String,
        /// Its state.
        state: &'static str,
    },
    /// A link state change was refused.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// Other handles kept changing the record.
    #[error("{what} was changed concurrently {attempts} times in a row; try again")]
    Conflict {
        /// Which record.
        what: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// No certificate this site issued names the peer, and no live incoming
    /// link comes from it.
    #[error("no certificate issued by this site's current CA names {peer:?}, and no live incoming link comes from a site with that id or name")]
    UnknownPeer {
        /// What was asked for.
        peer: String,
    },
}

// ---------------------------------------------------------------------------
// Runtime state
// ---------------------------------------------------------------------------

/// What a dialing site says about itself after the TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHello {
    /// Its site id.
    pub site_id: String,
    /// Its site name.
    pub site_name: String,
    /// The name of its link to this site.
    pub link: String,
}

/// A live link from another site to this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingLink {
    /// The remote site's id.
    pub peer_site_id: String,
    /// The remote site's name.
    pub peer_site_name: String,
    /// The remote link's name.
    pub link: String,
    /// The certificate the peer authenticated with.
    pub certificate: PeerCertificate,
    /// When it connected.
    pub since: OffsetDateTime,
    /// When it was last seen alive.
    pub last_seen: OffsetDateTime,
}

/// What [`Site::revoke_access`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRevoked {
    /// The new CA generation.
    pub ca_generation: u32,
    /// Claim records deleted (every claim, also used-up and expired ones).
    pub claims_deleted: usize,
    /// Of those, the claims that could still have been redeemed (neither
    /// used up nor expired): the claim tokens the revocation stopped.
    pub claims_voided: usize,
    /// Issued-certificate records forgotten (all of the old CA).
    pub certificates_forgotten: usize,
    /// The incoming links whose records were deleted (all of them): the
    /// running site that holds their connections closes them.
    pub incoming_dropped: Vec<IncomingRecord>,
}

/// What [`Site::revoke_peer`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRevoked {
    /// The peer asked for.
    pub peer: String,
    /// The certificates that stop authenticating.
    pub revoked: Vec<RevokedCert>,
    /// The incoming links whose records were deleted (those that
    /// authenticated with a revoked certificate).
    pub incoming_dropped: Vec<IncomingRecord>,
}

/// The site's one-line status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteStatus {
    /// The namespace.
    pub namespace: String,
    /// The mode.
    pub mode: SiteMode,
    /// Distinct remote sites with a live link in either direction.
    pub linked_sites: usize,
}

impl fmt::Display for SiteStatus {
    /// `Skupper is enabled for namespace "west" in interior mode. It is
    /// linked to 2 other sites.`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Skupper is enabled for namespace \"{}\" in {} mode. ",
            self.namespace, self.mode
        )?;
        match self.linked_sites {
            0 => f.write_str("It is not linked to any other sites."),
            1 => f.write_str("It is linked to 1 other site."),
            n => write!(f, "It is linked to {n} other sites."),
        }
    }
}

/// The CA and verifier of one version of the site record, parsed once.
struct Loaded {
    version: Version,
    record: SiteRecord,
    issuer: Option<CaIssuer>,
    verifier: Option<PeerVerifier>,
    revoked: BTreeMap<String, RevokedCert>,
}

// ---------------------------------------------------------------------------
// The site
// ---------------------------------------------------------------------------

/// A handle on one site kept in a [`Store`].
///
/// All methods take `&self`; a `Site` can be shared between threads.
/// Operations that need time take `now`; operations that need randomness
/// take a [`Random`].
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps are replaced or edited in single statements, so a
    // panic elsewhere cannot leave them half-updated.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: Store> Site<S> {
    /// Creates a new site in `store`: a random id, and for an interior site
    /// a new CA and a server certificate for its hosts.
    pub fn create(
        store: S,
        config: &SiteConfig,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<Site<S>, SiteError> {
        validate_name("site name", &config.name)?;
        validate_name("namespace", &config.namespace)?;
        if config.validity <= Duration::ZERO {
            return Err(SiteError::Invalid {
                what: "certificate validity",
                value: config.validity.to_string(),
                reason: "must be positive".into(),
            });
        }
        let host = config
            .hosts
            .iter()
            .map(|h| h.trim())
            .find(|h| !h.is_empty())
            .ok_or_else(|| SiteError::Invalid {
                what: "hosts",
                value: String::new(),
                reason: "give at least one host name or IP address other sites can reach".into(),
            })?
            .to_owned();
        if let Some(existing) = typed::load(&store, &Key::site(), typed::site)? {
            return Err(SiteError::AlreadyExists {
                namespace: existing.record.namespace,
                id: existing.record.id,
            });
        }
        let id = random::uuid_v4(rng).to_string();
        let (ca, server) = match config.mode {
            SiteMode::Edge => (None, None),
            SiteMode::Interior => {
                let ca = CaIssuer::new_site_ca(rng, now, config.validity)?;
                let server = ca.issue_server(&config.hosts, rng, now, config.validity)?;
                (
                    Some(StoredCert::from_certified(ca.certified_key())),
                    Some(StoredCert::from_certified(&server)),
                )
            }
        };
        let endpoint = |port| Endpoint {
            host: host.clone(),
            port,
        };
        let record = SiteRecord {
            id: id.clone(),
            name: config.name.clone(),
            namespace: config.namespace.clone(),
            mode: config.mode,
            version: config.version.clone(),
            hosts: config.hosts.clone(),
            claims: endpoint(config.claims_port),
            inter_router: endpoint(config.inter_router_port),
            edge: endpoint(config.edge_port),
            cert_validity_secs: config.validity.whole_seconds(),
            ca,
            server,
            ca_generation: 1,
            revoked: Vec::new(),
            created_at: now,
            revoked_at: None,
        };
        match store.compare_and_swap(&Key::site(), None, Some(Record::Site(Box::new(record))))? {
            Cas::Done(_) => {}
            Cas::Conflict(_) => {
                let existing = typed::load(&store, &Key::site(), typed::site)?
                    .ok_or(SiteError::NotInitialized)?;
                return Err(SiteError::AlreadyExists {
                    namespace: existing.record.namespace,
                    id: existing.record.id,
                });
            }
        }
        Ok(Site::with_id(store, id))
    }

    /// Opens the site kept in `store`.
    pub fn open(store: S) -> Result<Site<S>, SiteError> {
        let record =
            typed::load(&store, &Key::site(), typed::site)?.ok_or(SiteError::NotInitialized)?;
        Ok(Site::with_id(store, record.record.id))
    }

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
    /// seeded [`Random`]. A real site passes a faster backend that draws its
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
    pub fn record(&self) -> Result<SiteRecord, SiteError> {
        Ok(self.loaded()?.record.clone())
    }

    /// The site CA and the server certificate for the endpoints, or `None`
    /// on an edge site.
    pub fn server_credentials(&self) -> Result<Option<(String, CertifiedKey)>, SiteError> {
        let loaded = self.loaded()?;
        match (&loaded.issuer, &loaded.record.server) {
            (Some(ca), Some(server)) => Ok(Some((ca.ca_pem().to_owned(), server.certified_key()?))),
            _ => Ok(None),
        }
    }

    fn loaded(&self) -> Result<Arc<Loaded>, SiteError> {
        let Versioned { version, record } = typed::load(&self.store, &Key::site(), typed::site)?
            .ok_or(SiteError::NotInitialized)?;
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
        });
        *lock(&self.cache) = Some(loaded.clone());
        Ok(loaded)
    }

    /// Applies `change` to the site record with compare-and-swap, retrying
    /// on conflict.
    fn update_site(
        &self,
        mut change: impl FnMut(&mut SiteRecord) -> Result<(), SiteError>,
    ) -> Result<SiteRecord, SiteError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Versioned {
                version,
                mut record,
            } = typed::load(&self.store, &Key::site(), typed::site)?
                .ok_or(SiteError::NotInitialized)?;
            change(&mut record)?;
            let new = Record::Site(Box::new(record.clone()));
            if let Cas::Done(_) =
                self.store
                    .compare_and_swap(&Key::site(), Some(version), Some(new))?
            {
                return Ok(record);
            }
        }
        Err(SiteError::Conflict {
            what: "the site record".into(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    fn issuer<'a>(&self, loaded: &'a Loaded) -> Result<&'a CaIssuer, SiteError> {
        loaded
            .issuer
            .as_ref()
            .ok_or(SiteError::EdgeCannotAcceptConnections)
    }

    // -----------------------------------------------------------------------
    // Tokens and claims
    // -----------------------------------------------------------------------

    /// Creates a token of either kind.
    pub fn create_token(
        &self,
        options: &TokenOptions,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<Token, SiteError> {
        Ok(match options.kind {
            TokenKind::Claim => Token::Claim(self.create_claim_token(options, now, rng)?),
            TokenKind::Cert => Token::Cert(self.create_cert_token(options, now, rng)?),
        })
    }

    /// Creates a claim token and records its claim. The password is drawn
    /// from `rng`; only its keyed hash is stored.
    pub fn create_claim_token(
        &self,
        options: &TokenOptions,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<ClaimToken, SiteError> {
        options.validate()?;
        let loaded = self.loaded()?;
        let issuer = self.issuer(&loaded)?;
        let name = match &options.name {
            Some(name) => name.clone(),
            None => random::uuid_v4(rng).to_string(),
        };
        let expires_at = if options.expiry.is_zero() {
            None
        } else {
            let at = now
                .truncate_to_second()
                .checked_add(options.expiry.as_duration())
                .filter(|t| t.year() <= 9999)
                .ok_or_else(|| SiteError::Invalid {
                    what: "claim expiry",
                    value: options.expiry.to_string(),
                    reason: "the expiry time would be after the year 9999; use 0 for never".into(),
                })?;
            Some(at)
        };
        let password = random::password(rng);
        let record = ClaimRecord::new(
            name.clone(),
            &password,
            expires_at,
            options.uses,
            loaded.record.ca_generation,
            now,
            rng,
        );
        let key = Key::new(RecordKind::Claim, name.clone());
        if let Cas::Conflict(_) =
            self.store
                .compare_and_swap(&key, None, Some(Record::Claim(record)))?
        {
            return Err(SiteError::ClaimExists { name });
        }
        let r = &loaded.record;
        Ok(ClaimToken {
            url: format!("https://{}/{}", r.claims, name),
            name,
            ca_pem: issuer.ca_pem().to_owned(),
            password: Password::new(password),
            issuer_site_id: r.id.clone(),
            issuer_version: r.version.clone(),
            expires_at,
        })
    }

    /// Creates a cert token: a client certificate issued now by the site
    /// CA, common name = the token name (default `skupper`).
    pub fn create_cert_token(
        &self,
        options: &TokenOptions,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<CertToken, SiteError> {
        options.validate()?;
        let loaded = self.loaded()?;
        self.issuer(&loaded)?;
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| DEFAULT_CERT_TOKEN_NAME.to_owned());
        let validity = options.validity.unwrap_or(loaded.record.cert_validity());
        self.issue_cert_token(
            &loaded,
            &name,
            &name,
            IssuedVia::CertToken { name: name.clone() },
            validity,
            now,
            rng,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn issue_cert_token(
        &self,
        loaded: &Loaded,
        token_name: &str,
        common_name: &str,
        via: IssuedVia,
        validity: Duration,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<CertToken, SiteError> {
        let issuer = self.issuer(loaded)?;
        let cert = issuer.issue_client(common_name, rng, now, validity)?;
        let info = crate::pki::certificate_info(&cert.cert_der)?;
        let issued = IssuedRecord {
            serial: info.serial_hex.clone(),
            common_name: common_name.to_owned(),
            via,
            ca_generation: loaded.record.ca_generation,
            issued_at: now,
            not_after: info.not_after,
        };
        let key = Key::new(RecordKind::Issued, info.serial_hex);
        // A 128-bit random serial does not collide; if the store says it
        // exists, the record is already there and nothing is lost.
        let _ = self
            .store
            .compare_and_swap(&key, None, Some(Record::Issued(issued)))?;
        let r = &loaded.record;
        Ok(CertToken {
            name: token_name.to_owned(),
            ca_pem: issuer.ca_pem().to_owned(),
            cert_pem: cert.cert_pem.clone(),
            key_pem: SecretPem::new(cert.key.to_pem()),
            issuer_site_id: r.id.clone(),
            issuer_version: r.version.clone(),
            inter_router: r.inter_router.clone(),
            edge: r.edge.clone(),
        })
    }

    /// The outstanding claims, by name.
    pub fn claims(&self) -> Result<Vec<ClaimRecord>, SiteError> {
        Ok(typed::list(&self.store, RecordKind::Claim, typed::claim)?
            .into_iter()
            .map(|v| v.record)
            .collect())
    }

    /// The claims whose records can be read, and those that cannot (a
    /// corrupt record), so that a report can show the rest.
    pub fn claims_listing(&self) -> Result<Listing<ClaimRecord>, SiteError> {
        Ok(typed::list_readable(
            &self.store,
            RecordKind::Claim,
            typed::claim,
        )?)
    }

    /// Deletes one claim, so its token stops working (for example when the
    /// token file could not be written). The record is not read, so a
    /// corrupt one is deleted too. Returns whether there was such a claim.
    pub fn delete_claim(&self, name: &str) -> Result<bool, SiteError> {
        Ok(self.store.delete(&Key::new(RecordKind::Claim, name))?)
    }

    /// The certificates the current CA has issued (and this site recorded).
    pub fn issued(&self) -> Result<Vec<IssuedRecord>, SiteError> {
        Ok(typed::list(&self.store, RecordKind::Issued, typed::issued)?
            .into_iter()
            .map(|v| v.record)
            .collect())
    }

    /// Redeems a claim: checks the version and the requesting site's id
    /// ([`crate::site_id::check`]), that the claim exists, the password
    /// (before anything about expiry or uses is revealed), expiry and uses;
    /// spends one use with a compare-and-swap (retried up to
    /// [`MAX_CAS_ATTEMPTS`] times against concurrent redeemers); then issues
    /// a cert token whose certificate's common name is the requesting
    /// site's id. As in Skupper, the cert token (the Secret) is named after
    /// that id too.
    ///
    /// A claim name that no claim can have (not a token name,
    /// [`TokenOptions::name`]) is [`RedeemError::NoSuchClaim`], as is a name
    /// the store cannot hold.
    ///
    /// An attempt the claim refuses (wrong password, expired, used up) is
    /// counted in its record ([`ClaimRecord::failed_attempts`]), best
    /// effort: the answer is the same whether or not that write happens.
    ///
    /// The use is spent before the certificate is issued, so a failure
    /// after that point wastes a use and never grants an extra one.
    ///
    /// Redemptions of one claim through this handle take turns at spending
    /// (they wait, they do not fail); only handles in other processes can
    /// make the compare-and-swap conflict, and [`RedeemError::Conflict`]
    /// after [`MAX_CAS_ATTEMPTS`] says so. A server may retry it after a
    /// pause (the CLI's claims server does).
    pub fn redeem_claim(
        &self,
        request: &RedeemRequest,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<CertToken, RedeemError> {
        let claim_name = &request.claim;
        let store_err = |source: StoreError| RedeemError::Store {
            claim: claim_name.clone(),
            source,
        };
        let loaded = self.loaded().map_err(|e| match e {
            SiteError::Store(source) => store_err(source),
            other => RedeemError::Issue {
                claim: claim_name.clone(),
                reason: other.to_string(),
            },
        })?;
        check_remote_version(&request.site_version, &loaded.record.version).map_err(|source| {
            RedeemError::VersionTooOld {
                claim: claim_name.clone(),
                source,
            }
        })?;
        if request.site_id.is_empty() {
            return Err(RedeemError::MissingSiteName {
                claim: claim_name.clone(),
            });
        }
        crate::site_id::check(&request.site_id).map_err(|source| RedeemError::InvalidSiteName {
            claim: claim_name.clone(),
            source,
        })?;
        let no_such_claim = || RedeemError::NoSuchClaim {
            claim: claim_name.clone(),
        };
        // Every claim is made with a token name (or a UUID), so another
        // name is no claim; the store is not asked.
        if validate_name("claim name", claim_name).is_err() {
            return Err(no_such_claim());
        }
        let key = Key::new(RecordKind::Claim, claim_name.clone());
        // Other redemptions of this claim through this handle wait here
        // instead of racing for the compare-and-swap; the turn ends before
        // the certificate is made.
        let turn = self.claim_queue.turn(claim_name);
        let mut spent = None;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let loaded_claim = match typed::load(&self.store, &key, typed::claim) {
                Ok(claim) => claim,
                // A name this store cannot keep holds no claim.
                Err(StoreError::InvalidKey { .. }) => return Err(no_such_claim()),
                Err(e) => return Err(store_err(e)),
            };
            let Some(Versioned { version, record }) = loaded_claim else {
                return Err(no_such_claim());
            };
            if record.ca_generation != loaded.record.ca_generation {
                return Err(no_such_claim());
            }
            if let Err(refused) = record.check(&request.password, now) {
                self.record_refusal(&turn, &key, version, &record, request, &refused, now);
                return Err(refused);
            }
            // Refusals that earlier turns left are written with the use.
            let failures = turn.failures();
            let next = record
                .spent()
                .with_failed_attempts(failures.count, failures.last.as_ref());
            match self
                .store
                .compare_and_swap(&key, Some(version), Some(Record::Claim(next)))
                .map_err(store_err)?
            {
                Cas::Done(_) => {
                    turn.take_failures();
                    spent = Some(record);
                    break;
                }
                Cas::Conflict(_) => continue,
            }
        }
        drop(turn);
        if spent.is_none() {
            return Err(RedeemError::Conflict {
                claim: claim_name.clone(),
                attempts: MAX_CAS_ATTEMPTS,
            });
        }
        self.issue_cert_token(
            &loaded,
            &request.site_id,
            &request.site_id,
            IssuedVia::Claim {
                name: claim_name.clone(),
            },
            loaded.record.cert_validity(),
            now,
            rng,
        )
        .map_err(|e| match e {
            SiteError::Store(source) => store_err(source),
            other => RedeemError::Issue {
                claim: claim_name.clone(),
                reason: other.to_string(),
            },
        })
    }

    /// Counts a refused redemption attempt in the claim record, best
    /// effort: the caller's answer is the same whatever happens here, and
    /// nothing here can fail the redemption. When other requests wait for
    /// the claim, the refusal is left to the next turn's write (a spent
    /// use, or the last refusal), so a flood of refusals costs an honest
    /// redemption at most one record write. One compare-and-swap, not
    /// retried: a refusal that loses a race with another process is not
    /// counted.
    #[allow(clippy::too_many_arguments)]
    fn record_refusal(
        &self,
        turn: &Turn<'_>,
        key: &Key,
        version: Version,
        record: &ClaimRecord,
        request: &RedeemRequest,
        refused: &RedeemError,
        now: OffsetDateTime,
    ) {
        let Some(reason) = refused.refusal_reason() else {
            return;
        };
        let mut failures = turn.take_failures();
        failures.add(Failures {
            count: 1,
            last: Some(FailedAttempt {
                at: now,
                site: request.site_id.clone(),
                reason: reason.to_owned(),
            }),
        });
        if turn.others_waiting() {
            turn.leave_failures(failures);
            return;
        }
        let next = record.with_failed_attempts(failures.count, failures.last.as_ref());
        let _ = self
            .store
            .compare_and_swap(key, Some(version), Some(Record::Claim(next)));
    }

    // -----------------------------------------------------------------------
    // Outgoing links
    // -----------------------------------------------------------------------

    /// Creates a link from a token file's contents, without redeeming or
    /// connecting anything. Checks, in order, before anything is stored:
    /// the token is complete, it is not from this site, no link to its
    /// issuing site exists, the link name is free (default `link<N>`).
    ///
    /// A link whose claim the issuing site refused for good
    /// ([`LinkState::Failed`], not retryable) can never connect, so it does
    /// not count as a link to that site: it is deleted, and the new link
    /// takes its place.
    ///
    /// A claim token's link is [`LinkState::Pending`] until
    /// [`Site::redeem_link`]; a cert token's is [`LinkState::Connecting`].
    pub fn add_link(
        &self,
        token: &[u8],
        options: &LinkOptions,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, SiteError> {
        let token = Token::decode(token)?;
        let loaded = self.loaded()?;
        if token.issuer_site_id() == loaded.record.id {
            return Err(SiteError::LinkToSelf);
        }
        let (same_site, links): (Vec<LinkRecord>, Vec<LinkRecord>) = self
            .links()?
            .into_iter()
            .partition(|l| l.remote_site_id == token.issuer_site_id());
        if let Some(existing) = same_site.iter().find(|l| !l.is_refused()) {
            return Err(SiteError::AlreadyConnected {
                site: token.issuer_site_id().to_owned(),
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
        if links.iter().any(|l| l.name == name) {
            return Err(SiteError::LinkNameTaken { name });
        }
        let record = LinkRecord::new(
            name.clone(),
            options.cost,
            &token,
            loaded.record.mode == SiteMode::Edge,
            now,
        );
        let key = Key::new(RecordKind::Link, name.clone());
        match self.store.compare_and_swap(
            &key,
            None,
            Some(Record::Link(Box::new(record.clone()))),
        )? {
            Cas::Done(_) => Ok(record),
            Cas::Conflict(_) => Err(SiteError::LinkNameTaken { name }),
        }
    }

    /// Creates a link ([`Site::add_link`]) and, for a claim token, says
    /// which claim to redeem ([`CreatedLink::redemption`]): the caller
    /// redeems it and gives the answer to [`Site::handle_redemption`].
    ///
    /// If the claim cannot be redeemed (refused, or the issuing site could
    /// not be reached), [`Site::handle_redemption`] deletes the link again
    /// and [`SiteError::ClaimRedemption`] says why: a link that was never
    /// made leaves nothing behind, so creating it again with another token
    /// is not refused as [`SiteError::AlreadyConnected`].
    pub fn create_link(
        &self,
        token: &[u8],
        options: &LinkOptions,
        now: OffsetDateTime,
    ) -> Result<CreatedLink, SiteError> {
        let link = self.add_link(token, options, now)?;
        let redemption = match link.state() {
            LinkState::Pending => Some(self.redemption(&link, true)?),
            _ => None,
        };
        Ok(CreatedLink { link, redemption })
    }

    /// The redemption of a pending (or failed) link's claim, to do and
    /// give to [`Site::handle_redemption`]. A link with credentials has
    /// nothing to redeem: [`SiteError::NothingToRedeem`].
    pub fn redeem_link(&self, name: &str) -> Result<Redemption, SiteError> {
        self.redemption(&self.link(name)?, false)
    }

    fn redemption(&self, link: &LinkRecord, new_link: bool) -> Result<Redemption, SiteError> {
        let claim = match (link.state(), link.claim_token()?) {
            (LinkState::Pending | LinkState::Failed { .. }, Some(claim)) => claim,
            _ => {
                return Err(SiteError::NothingToRedeem {
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
    /// failure [`SiteError::ClaimRedemption`] says why, and the link is
    /// deleted when the redemption came with [`Site::create_link`]
    /// ([`Redemption::new_link`]), [`LinkState::Failed`] with the reason
    /// (`Failed to redeem claim: ...`) otherwise.
    pub fn handle_redemption(
        &self,
        redemption: &Redemption,
        outcome: Result<CertToken, TransportError>,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, SiteError> {
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
        Err(SiteError::ClaimRedemption {
            link: name.to_owned(),
            reason,
            retryable,
        })
    }

    /// What dialing link `name` takes: its endpoint and credentials. A link
    /// without credentials, or revoked, is not dialed: [`TransitionError`]
    /// with [`link::NO_CREDENTIALS`] or [`link::REVOKED_IS_TERMINAL`].
    pub fn dial_link(&self, name: &str) -> Result<Dial, SiteError> {
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
    /// ([`SiteError::LinkReplaced`]).
    pub fn handle_dial(
        &self,
        dial: &Dial,
        outcome: Result<(), TransportError>,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, SiteError> {
        match outcome {
            Ok(()) => {
                self.update_dialed(dial, LinkState::Connected { since: now }, "connected", now)
            }
            Err(e) => self.link_down(dial, dial.failure_reason(&e), &e.to_string(), now),
        }
    }

    /// Records that a connection of `dial` ended ([`LinkClosed`]): the
    /// link is [`LinkState::NotConnected`] with [`Dial::closed_reason`]
    /// (`heartbeat timeout: no answer from <address> (site west) for 3s`,
    /// `certificate rejected by the remote site: ...`, ...). A revoked
    /// link stays revoked and is returned as it is; a replaced one is not
    /// touched ([`SiteError::LinkReplaced`]).
    pub fn handle_link_closed(
        &self,
        dial: &Dial,
        closed: &LinkClosed,
        now: OffsetDateTime,
    ) -> Result<LinkRecord, SiteError> {
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
    ) -> Result<LinkRecord, SiteError> {
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
    ) -> Result<LinkRecord, SiteError> {
        let next = LinkState::NotConnected { reason };
        let (link, _) = self.update_link(&dial.link, |l| {
            if l.credentials() != Some(dial.held_credentials()) {
                return Err(SiteError::LinkReplaced {
                    name: dial.link.clone(),
                });
            }
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
        let checked = notice
            .verify(&dial.credentials.ca_pem, &dial.remote_site_id, &own_serial)
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
    ) -> Result<LinkRecord, SiteError> {
        let (link, _) = self.update_link(&dial.link, |l| {
            if l.credentials() != Some(dial.held.as_str()) {
                return Err(SiteError::LinkReplaced {
                    name: dial.link.clone(),
                });
            }
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
    ) -> Result<Option<LinkChange>, SiteError> {
        let (_, change) =
            self.update_link(name, |l| Ok(l.transition(next.clone(), why, now)?))?;
        Ok(change)
    }

    /// [`Site::set_link_state`] for whoever acts on one set of credentials
    /// (a dialer): changes link `name` only while it still holds
    /// `credentials` ([`LinkRecord::credentials`]). If the link was
    /// replaced meanwhile, nothing is changed and the answer is
    /// [`SiteError::LinkReplaced`], so an old dialer's last word (say, a
    /// revocation of the old credentials) never lands on the new link.
    pub fn set_dialed_link_state(
        &self,
        name: &str,
        credentials: &str,
        next: LinkState,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LinkChange>, SiteError> {
        let (_, change) = self.update_link(name, |l| {
            if l.credentials() != Some(credentials) {
                return Err(SiteError::LinkReplaced { name: name.into() });
            }
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
        mut change: impl FnMut(&mut LinkRecord) -> Result<Option<LinkChange>, SiteError>,
    ) -> Result<(LinkRecord, Option<LinkChange>), SiteError> {
        let key = Key::new(RecordKind::Link, name);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Versioned {
                version,
                mut record,
            } = typed::load(&self.store, &key, typed::link)?
                .ok_or_else(|| SiteError::NoSuchLink { name: name.into() })?;
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
        Err(SiteError::Conflict {
            what: format!("link {name:?}"),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    /// What a running site does next for each of its links, by name: redeem
    /// a pending claim or one that failed in a way worth trying again
    /// ([`LinkAction::Redeem`]), dial a link that has credentials and is
    /// not revoked ([`LinkAction::Dial`]). Links that cannot act (refused,
    /// revoked) are left out. The actions are independent: run them at
    /// once, and give each outcome to [`Site::handle_redemption`] or
    /// [`Site::handle_dial`].
    pub fn process_links(&self) -> Result<Vec<LinkAction>, SiteError> {
        let mut out = Vec::new();
        for link in self.links()? {
            match link.state() {
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
    pub fn link(&self, name: &str) -> Result<LinkRecord, SiteError> {
        Ok(
            typed::load(&self.store, &Key::new(RecordKind::Link, name), typed::link)?
                .ok_or_else(|| SiteError::NoSuchLink { name: name.into() })?
                .record,
        )
    }

    /// Every outgoing link, by name.
    pub fn links(&self) -> Result<Vec<LinkRecord>, SiteError> {
        Ok(typed::list(&self.store, RecordKind::Link, typed::link)?
            .into_iter()
            .map(|v| v.record)
            .collect())
    }

    /// Every outgoing link whose record can be read, and those that cannot
    /// (a corrupt record), so that a report can show the rest.
    pub fn links_listing(&self) -> Result<Listing<LinkRecord>, SiteError> {
        Ok(typed::list_readable(
            &self.store,
            RecordKind::Link,
            typed::link,
        )?)
    }

    /// Deletes a link. The record is not read, so a corrupt one is deleted
    /// too. [`SiteError::NoSuchLink`] if there is none of that name.
    pub fn delete_link(&self, name: &str) -> Result<(), SiteError> {
        if self.store.delete(&Key::new(RecordKind::Link, name))? {
            Ok(())
        } else {
            Err(SiteError::NoSuchLink { name: name.into() })
        }
    }

    /// `Link link1 is connected` / `Link link1 not connected (<reason>)`.
    pub fn link_status(&self, name: &str) -> Result<LinkStatus, SiteError> {
        Ok(self.link(name)?.status())
    }

    // -----------------------------------------------------------------------
    // Incoming links
    // -----------------------------------------------------------------------

    /// Decides whether a connecting site may link: its certificate chain
    /// (DER, leaf first) must chain to this site's current CA, be valid at
    /// `now`, allow client authentication and not be revoked.
    pub fn authenticate_peer(
        &self,
        chain: &[&[u8]],
        now: OffsetDateTime,
    ) -> Result<PeerCertificate, AuthError> {
        let loaded = self.loaded().map_err(|e| AuthError::Malformed {
            reason: format!("this site cannot check certificates: {e}"),
        })?;
        let verifier = loaded.verifier.as_ref().ok_or(AuthError::NotAccepting)?;
        let peer = verifier.verify(chain, now)?;
        if let Some(revoked) = loaded.revoked.get(&peer.serial_hex) {
            return Err(AuthError::Revoked {
                common_name: peer.common_name,
                reason: format!(
                    "this site revoked access for {:?} at {}",
                    revoked.common_name,
                    claim::rfc3339(&revoked.at)
                ),
            });
        }
        Ok(peer)
    }

    /// Authenticates a connecting site ([`Site::authenticate_peer`]) and
    /// records its link as live, or refreshes it: in this handle's cache,
    /// and in the store ([`crate::incoming`]) when the link is new, when its
    /// certificate or its peer's name changed, or when its lease is due for
    /// renewal. A link that cannot be recorded is refused.
    pub fn accept_incoming(
        &self,
        chain: &[&[u8]],
        hello: &PeerHello,
        now: OffsetDateTime,
    ) -> Result<IncomingLink, AuthError> {
        let certificate = self.authenticate_peer(chain, now)?;
        let unchecked = |e: &dyn fmt::Display| AuthError::Malformed {
            reason: format!("this site cannot check certificates: {e}"),
        };
        // A claim's certificate names the site that redeemed it (its CN is
        // that site's id): no other site may link with it, or take over that
        // site's incoming link.
        let issued = typed::load(
            &self.store,
            &Key::new(RecordKind::Issued, certificate.serial_hex.clone()),
            typed::issued,
        )
        .map_err(|e| unchecked(&e))?;
        if let Some(Versioned { record, .. }) = issued {
            if let IssuedVia::Claim { name } = record.via {
                if record.common_name != hello.site_id {
                    return Err(AuthError::WrongSite {
                        claim: name,
                        common_name: record.common_name,
                        claimed_site_id: hello.site_id.clone(),
                    });
                }
            }
        }
        let ca_generation = self
            .loaded()
            .map_err(|e| unchecked(&e))?
            .record
            .ca_generation;
        let mut incoming = lock(&self.incoming);
        let key = (hello.site_id.clone(), hello.link.clone());
        let (link, write) = match incoming.get(&key) {
            Some(held) => {
                let mut link = held.link.clone();
                let new_certificate = link.certificate != certificate;
                if new_certificate {
                    link.since = now;
                    link.certificate = certificate;
                }
                let renamed = link.peer_site_name != hello.site_name;
                link.peer_site_name.clone_from(&hello.site_name);
                link.last_seen = now;
                let due = held.record.renewal_due(now, self.lease)
                    || held.record.ca_generation != ca_generation;
                (link, new_certificate || renamed || due)
            }
            None => (
                IncomingLink {
                    peer_site_id: hello.site_id.clone(),
                    peer_site_name: hello.site_name.clone(),
                    link: hello.link.clone(),
                    certificate,
                    since: now,
                    last_seen: now,
                },
                true,
            ),
        };
        let record = if write {
            let record = self.incoming_record(&link, ca_generation, now);
            self.put_incoming(&record)
                .map_err(|e| AuthError::Malformed {
                    reason: format!("this site cannot record the link: {e}"),
                })?;
            record
        } else {
            match incoming.get(&key) {
                Some(held) => held.record.clone(),
                None => self.incoming_record(&link, ca_generation, now),
            }
        };
        incoming.insert(
            key,
            Held {
                link: link.clone(),
                record,
            },
        );
        Ok(link)
    }

    fn incoming_record(
        &self,
        link: &IncomingLink,
        ca_generation: u32,
        now: OffsetDateTime,
    ) -> IncomingRecord {
        IncomingRecord {
            peer_site_id: link.peer_site_id.clone(),
            peer_site_name: link.peer_site_name.clone(),
            link: link.link.clone(),
            certificate_cn: link.certificate.common_name.clone(),
            certificate_serial: link.certificate.serial_hex.clone(),
            certificate_not_after: link.certificate.not_after,
            ca_generation,
            since: link.since,
            holder: self.holder.clone(),
            lease_until: now + self.lease,
        }
    }

    /// Writes `record` over whatever the store holds under its name.
    fn put_incoming(&self, record: &IncomingRecord) -> Result<(), SiteError> {
        let key = Key::new(RecordKind::Incoming, record.name());
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = self.store.load(&key)?.map(|v| v.version);
            let new = Some(Record::Incoming(record.clone()));
            if let Cas::Done(_) = self.store.compare_and_swap(&key, current, new)? {
                return Ok(());
            }
        }
        Err(SiteError::Conflict {
            what: key.to_string(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    /// Deletes the record of link `link` from `peer_site_id` if this
    /// handle's holder holds it (a newer connection held elsewhere stays).
    fn forget_incoming(&self, peer_site_id: &str, link: &str) -> Result<(), SiteError> {
        let key = Key::new(
            RecordKind::Incoming,
            IncomingRecord::key_name(peer_site_id, link),
        );
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(Versioned { version, record }) =
                typed::load(&self.store, &key, typed::incoming)?
            else {
                return Ok(());
            };
            if record.holder != self.holder {
                return Ok(());
            }
            if let Cas::Done(_) = self.store.compare_and_swap(&key, Some(version), None)? {
                return Ok(());
            }
        }
        Err(SiteError::Conflict {
            what: key.to_string(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    /// The incoming links this handle holds (its cache; see
    /// [`Site::incoming_links`] for every handle's).
    pub fn incoming(&self) -> Vec<IncomingLink> {
        lock(&self.incoming)
            .values()
            .map(|h| h.link.clone())
            .collect()
    }

    /// Every live incoming link of the site, whoever holds it, as the store
    /// records them: those of the current CA whose lease has not run out at
    /// `now` ([`crate::incoming`]).
    pub fn incoming_links(&self, now: OffsetDateTime) -> Result<Vec<IncomingRecord>, SiteError> {
        let generation = self.loaded()?.record.ca_generation;
        Ok(self
            .incoming_records()?
            .into_iter()
            .filter(|r| r.is_live(now) && r.ca_generation == generation)
            .collect())
    }

    fn incoming_records(&self) -> Result<Vec<IncomingRecord>, SiteError> {
        Ok(
            typed::list(&self.store, RecordKind::Incoming, typed::incoming)?
                .into_iter()
                .map(|v| v.record)
                .collect(),
        )
    }

    /// Drops the incoming link `link` from site `peer_site_id` (the
    /// connection closed): from this handle's cache, and its record from the
    /// store unless another holder has taken it over.
    pub fn drop_incoming(
        &self,
        peer_site_id: &str,
        link: &str,
    ) -> Result<Option<IncomingLink>, SiteError> {
        let mut incoming = lock(&self.incoming);
        let held = incoming.remove(&(peer_site_id.to_owned(), link.to_owned()));
        self.forget_incoming(peer_site_id, link)?;
        Ok(held.map(|h| h.link))
    }

    /// Drops the incoming links this handle holds that were not seen since
    /// `before` (heartbeat timeout), and their records.
    pub fn expire_incoming(&self, before: OffsetDateTime) -> Result<Vec<IncomingLink>, SiteError> {
        let mut incoming = lock(&self.incoming);
        let stale: Vec<_> = incoming
            .iter()
            .filter(|(_, h)| h.link.last_seen < before)
            .map(|(k, _)| k.clone())
            .collect();
        let mut dropped = Vec::new();
        for key in stale {
            if let Some(held) = incoming.remove(&key) {
                self.forget_incoming(&key.0, &key.1)?;
                dropped.push(held.link);
            }
        }
        Ok(dropped)
    }

    /// Renews the lease of every incoming link this handle holds whose
    /// renewal is due at `now` (a third of the lease has passed): what the
    /// holder of live connections calls periodically. A record that is no
    /// longer there (revoked) or that another holder took over is not
    /// written again. Returns how many were renewed.
    pub fn renew_incoming(&self, now: OffsetDateTime) -> Result<usize, SiteError> {
        let mut incoming = lock(&self.incoming);
        let mut renewed = 0;
        for held in incoming.values_mut() {
            if !held.record.renewal_due(now, self.lease) {
                continue;
            }
            let key = Key::new(RecordKind::Incoming, held.record.name());
            let Some(Versioned { version, record }) =
                typed::load(&self.store, &key, typed::incoming)?
            else {
                continue;
            };
            if record.holder != self.holder
                || record.certificate_serial != held.record.certificate_serial
            {
                continue;
            }
            let next = IncomingRecord {
                lease_until: now + self.lease,
                ..record
            };
            let new = Some(Record::Incoming(next.clone()));
            if let Cas::Done(_) = self.store.compare_and_swap(&key, Some(version), new)? {
                held.record = next;
                renewed += 1;
            }
        }
        Ok(renewed)
    }

    /// Deletes the incoming-link records that are not live: those this
    /// handle's holder holds no connection for (left by an earlier run that
    /// ended without closing them, for example a crash), those whose lease
    /// ran out at `now`, and those of an older CA. What a holder calls when
    /// it starts, and now and then. Returns how many were deleted.
    pub fn reconcile_incoming(&self, now: OffsetDateTime) -> Result<usize, SiteError> {
        let generation = self.loaded()?.record.ca_generation;
        let incoming = lock(&self.incoming);
        let mut deleted = 0;
        for (name, Versioned { version, record }) in self.store.list(RecordKind::Incoming)? {
            let Ok(record) = typed::incoming(record) else {
                continue;
            };
            let held_here = incoming
                .get(&(record.peer_site_id.clone(), record.link.clone()))
                .is_some_and(|h| h.record.certificate_serial == record.certificate_serial);
            let orphan = record.holder == self.holder && !held_here;
            if orphan || !record.is_live(now) || record.ca_generation != generation {
                let key = Key::new(RecordKind::Incoming, name);
                if let Cas::Done(_) = self.store.compare_and_swap(&key, Some(version), None)? {
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }

    /// Deletes the incoming-link records `pick` selects (every version
    /// seen), and returns them.
    fn delete_incoming_where(
        &self,
        pick: impl Fn(&IncomingRecord) -> bool,
    ) -> Result<Vec<IncomingRecord>, SiteError> {
        let mut deleted = Vec::new();
        for _ in 0..MAX_CAS_ATTEMPTS {
            let mut conflicts = 0;
            for (name, Versioned { version, record }) in self.store.list(RecordKind::Incoming)? {
                let Ok(record) = typed::incoming(record) else {
                    continue;
                };
                if !pick(&record) {
                    continue;
                }
                let key = Key::new(RecordKind::Incoming, name);
                match self.store.compare_and_swap(&key, Some(version), None)? {
                    Cas::Done(_) => deleted.push(record),
                    Cas::Conflict(_) => conflicts += 1,
                }
            }
            if conflicts == 0 {
                return Ok(deleted);
            }
        }
        Err(SiteError::Conflict {
            what: "the incoming records".into(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    // -----------------------------------------------------------------------
    // Revocation
    // -----------------------------------------------------------------------

    /// Revokes access to this site: a new CA (generation + 1) and server
    /// certificate, every claim record deleted, every incoming link
    /// dropped. Certificates from the old CA no longer authenticate, so the
    /// dropped links cannot come back. Outgoing links are untouched.
    pub fn revoke_access(
        &self,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<AccessRevoked, SiteError> {
        let loaded = self.loaded()?;
        self.issuer(&loaded)?;
        let validity = loaded.record.cert_validity();
        let ca = CaIssuer::new_site_ca_with(self.keys.clone(), rng, now, validity)?;
        let server = ca.issue_server(&loaded.record.hosts, rng, now, validity)?;
        let record = self.update_site(|r| {
            r.ca = Some(StoredCert::from_certified(ca.certified_key()));
            r.server = Some(StoredCert::from_certified(&server));
            r.ca_generation = r.ca_generation.saturating_add(1);
            r.revoked.clear();
            r.revoked_at = Some(now);
            Ok(())
        })?;
        // The generation check already voids every old claim; deleting the
        // records makes that visible and frees the names. Only claims that
        // could still have been redeemed are voided by it.
        let claims_voided = self
            .claims_listing()?
            .records
            .iter()
            .filter(|c| {
                c.ca_generation < record.ca_generation && c.state(now) == claim::ClaimState::Active
            })
            .count();
        let claims_deleted = self.delete_all(RecordKind::Claim)?;
        let certificates_forgotten = self.delete_all(RecordKind::Issued)?;
        lock(&self.incoming).clear();
        let incoming_dropped = self.delete_incoming_where(|_| true)?;
        Ok(AccessRevoked {
            ca_generation: record.ca_generation,
            claims_deleted,
            claims_voided,
            certificates_forgotten,
            incoming_dropped,
        })
    }

    /// Deletes every record of `kind`, without reading them (a corrupt
    /// record does not stop a revocation). Returns how many were deleted.
    fn delete_all(&self, kind: RecordKind) -> Result<usize, SiteError> {
        let mut deleted = 0;
        for name in self.store.names(kind)? {
            if self.store.delete(&Key::new(kind, name))? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Revokes one remote site (or one cert token): every certificate of
    /// the current CA whose common name is `peer` (a site id or cert token
    /// name), or that an incoming link from site id or name `peer`
    /// authenticated with (as the store records them, whichever handle or
    /// process holds the link), stops authenticating; the records of its
    /// incoming links are deleted, and the handle holding them closes them.
    /// Every other site stays linked.
    pub fn revoke_peer(&self, peer: &str, now: OffsetDateTime) -> Result<PeerRevoked, SiteError> {
        let loaded = self.loaded()?;
        self.issuer(&loaded)?;
        let generation = loaded.record.ca_generation;
        let mut names: BTreeSet<String> = BTreeSet::from([peer.to_owned()]);
        let mut serials: BTreeMap<String, String> = BTreeMap::new();
        let by_name = |id: &str, name: &str| id == peer || name == peer;
        for r in self.incoming_records()? {
            if r.ca_generation == generation && by_name(&r.peer_site_id, &r.peer_site_name) {
                names.insert(r.certificate_cn.clone());
                serials.insert(r.certificate_serial, r.certificate_cn);
            }
        }
        for h in lock(&self.incoming).values() {
            let l = &h.link;
            if by_name(&l.peer_site_id, &l.peer_site_name) {
                names.insert(l.certificate.common_name.clone());
                serials.insert(
                    l.certificate.serial_hex.clone(),
                    l.certificate.common_name.clone(),
                );
            }
        }
        for issued in self.issued()? {
            if issued.ca_generation == loaded.record.ca_generation
                && names.contains(&issued.common_name)
            {
                serials.insert(issued.serial, issued.common_name);
            }
        }
        if serials.is_empty() {
            return Err(SiteError::UnknownPeer { peer: peer.into() });
        }
        let new: Vec<RevokedCert> = serials
            .iter()
            .map(|(serial, cn)| RevokedCert {
                serial: serial.clone(),
                common_name: cn.clone(),
                at: now,
            })
            .collect();
        self.update_site(|r| {
            for n in &new {
                if !r.revoked.iter().any(|x| x.serial == n.serial) {
                    r.revoked.push(n.clone());
                }
            }
            Ok(())
        })?;
        lock(&self.incoming).retain(|_, h| !serials.contains_key(&h.link.certificate.serial_hex));
        let incoming_dropped =
            self.delete_incoming_where(|r| serials.contains_key(&r.certificate_serial))?;
        Ok(PeerRevoked {
            peer: peer.to_owned(),
            revoked: new,
            incoming_dropped,
        })
    }

    // -----------------------------------------------------------------------
    // Status
    // -----------------------------------------------------------------------

    /// `Skupper is enabled for namespace "west" in interior mode. It is
    /// linked to 2 other sites.`: counts distinct remote sites with a live
    /// link in either direction at `now`: outgoing links whose record says
    /// connected, and incoming links whose record is live
    /// ([`Site::incoming_links`]).
    pub fn status(&self, now: OffsetDateTime) -> Result<SiteStatus, SiteError> {
        let loaded = self.loaded()?;
        // A link whose record cannot be read counts as not connected; see
        // `links_listing` to report it.
        let mut remote: BTreeSet<String> = self
            .links_listing()?
            .records
            .into_iter()
            .filter(|l| l.state().is_connected())
            .map(|l| l.remote_site_id)
            .collect();
        remote.extend(
            self.incoming_links(now)?
                .into_iter()
                .map(|l| l.peer_site_id),
        );
        remote.remove(&loaded.record.id);
        Ok(SiteStatus {
            namespace: loaded.record.namespace.clone(),
            mode: loaded.record.mode,
            linked_sites: remote.len(),
        })
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

/// Names of sites, links and tokens are Kubernetes object names: 1 to 253
/// characters from `a-z`, `0-9`, `-` and `.`, starting and ending with a
/// letter or digit.
fn validate_name(what: &'static str, name: &str) -> Result<(), SiteError> {
    let invalid = |reason: &str| SiteError::Invalid {
        what,
        value: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() || name.len() > 253 {
        return Err(invalid("must be 1 to 253 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(invalid(
            "use only lowercase letters, digits, '-' and '.' (a Kubernetes object name)",
        ));
    }
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !edge_ok(name.bytes().next()) || !edge_ok(name.bytes().last()) {
        return Err(invalid("must start and end with a letter or digit"));
    }
    Ok(())
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

    #[test]
    fn status_sentences() {
        let s = |n, mode| {
            SiteStatus {
                namespace: "west".into(),
                mode,
                linked_sites: n,
            }
            .to_string()
        };
        assert_eq!(s(2, SiteMode::Interior), "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 2 other sites.");
        assert_eq!(s(1, SiteMode::Interior), "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 1 other site.");
        assert_eq!(s(0, SiteMode::Edge), "Skupper is enabled for namespace \"west\" in edge mode. It is not linked to any other sites.");
    }
}
