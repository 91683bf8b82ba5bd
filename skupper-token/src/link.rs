//! Outgoing links: what a linking site keeps about each link, and the link
//! state machine.
//!
//! A link holds either the token it was made from while that token is not
//! redeemed (a 1.x claim token, or a Skupper 2.x AccessToken) or its
//! credentials (a 1.x cert token, or one Link of a Skupper 2.x Link file
//! with its Secret), never both and never neither, and its [`LinkState`]
//! always agrees: [`LinkState::Pending`] and [`LinkState::Failed`] with the
//! token to redeem, every other state with the credentials. The fields that carry this are private: every state change
//! goes through [`LinkRecord::transition`] (or, for the one change that
//! also trades the claim for credentials, [`LinkRecord::redeemed`]), which
//! checks that the change makes sense, records it in the link's history and
//! returns it as a [`LinkChange`]. [`LinkState::Revoked`] is terminal: only
//! a new token (a new link record) gets out of it.
//!
//! # One model whatever token made the link
//!
//! Every link, whatever made it, has a name, a cost, a state, a target and
//! a remote site, and is listed, counted, replaced and revoked the same
//! way. What identifies the remote site ([`LinkRecord::remote_site_id`]):
//!
//! - a 1.x token names its issuing site: its id;
//! - a 2.x file names none, so the link is identified by the remote site's
//!   CA instead: `ca-sha256:<hex SHA-256 of the CA certificate>`
//!   ([`ca_site_id`]; while an AccessToken is not redeemed, of its
//!   `spec.ca`; once redeemed, of the Secret's `ca.crt`, the CA that signs
//!   link certificates).
//!
//! Every link also keeps that CA's fingerprint ([`LinkRecord::remote_ca`]),
//! whatever the format. Two links go to the same site when their remote
//! site ids are equal *or* their CA fingerprints are: so a 1.x cert token
//! and a 2.x Link file from one site are "Already connected" to each other.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::token::{CertToken, ClaimToken, DecodeError, Token};

/// Default link cost, as in Skupper.
pub const DEFAULT_COST: u32 = 1;

/// How many past transitions a link record keeps.
pub const HISTORY_LEN: usize = 16;

/// The layout version of a stored link record. 1 (records without a
/// `schema-version`) kept a revoked link's reason as a sentence; 2 keeps
/// who revoked access and when; 3 adds Skupper 2.x links (an AccessToken
/// or a Link file in place of a claim or cert token) and the remote CA's
/// fingerprint; 4 keeps the URL of the AccessToken a link was made from
/// ([`LinkRecord::access_token_url`]); 5 keeps the link's instance
/// ([`LinkRecord::instance`]). All read.
pub const LINK_RECORD_SCHEMA: u32 = 5;

/// A remote site as a link knows it: its id and its name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RemoteSite {
    /// The site id.
    pub id: String,
    /// The site's name (its namespace).
    pub name: String,
}

impl fmt::Display for RemoteSite {
    /// `west (site <id>)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (site {})",
            printable(&self.name),
            printable(&self.id)
        )
    }
}

/// The state of an outgoing link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Made from a claim token that has not been redeemed yet.
    Pending,
    /// Has credentials; no connection has been made yet.
    Connecting,
    /// Connected to the remote site.
    Connected {
        /// Since when.
        since: OffsetDateTime,
    },
    /// Has credentials but is not connected, for this reason.
    NotConnected {
        /// Why, in words a user can act on.
        reason: String,
    },
    /// The remote site said, in a notice signed by the CA that issued this
    /// link's certificate, that it no longer accepts the certificate
    /// (`revoke-access` there). Terminal: the link does not connect with
    /// these credentials again, and no transition leaves this state;
    /// linking again needs a new token from that site (a new link record).
    Revoked {
        /// The site that revoked access.
        by: RemoteSite,
        /// When it revoked access (the notice's time).
        at: OffsetDateTime,
    },
    /// The claim could not be redeemed.
    Failed {
        /// Why (starts with `Failed to redeem claim:`).
        reason: String,
        /// Whether redeeming again may succeed (the server was unreachable
        /// or busy, as opposed to refusing the claim).
        retryable: bool,
    },
}

impl LinkState {
    /// A one-word name of the state: `pending`, `connecting`, `connected`,
    /// `not-connected`, `revoked`, `failed`.
    pub fn label(&self) -> &'static str {
        match self {
            LinkState::Pending => "pending",
            LinkState::Connecting => "connecting",
            LinkState::Connected { .. } => "connected",
            LinkState::NotConnected { .. } => "not-connected",
            LinkState::Revoked { .. } => "revoked",
            LinkState::Failed { .. } => "failed",
        }
    }

    /// Whether the link is up.
    pub fn is_connected(&self) -> bool {
        matches!(self, LinkState::Connected { .. })
    }

    /// Whether the remote site revoked the link's access
    /// ([`LinkState::Revoked`], a terminal state).
    pub fn is_revoked(&self) -> bool {
        matches!(self, LinkState::Revoked { .. })
    }

    /// Why the link is not connected, for the states that carry a reason
    /// (not connected, revoked, failed). A revoked link's reason is made
    /// from who revoked access and when: `access revoked by west (site
    /// <id>) at 2026-11-28T10:15:00Z; to link again, get a new token from
    /// that site and replace this link with it`.
    pub fn reason(&self) -> Option<String> {
        match self {
            LinkState::Pending | LinkState::Connecting | LinkState::Connected { .. } => None,
            LinkState::NotConnected { reason } | LinkState::Failed { reason, .. } => {
                Some(reason.clone())
            }
            LinkState::Revoked { by, at } => Some(format!(
                "access revoked by {by} at {}; to link again, get a new token from that site and replace this link with it",
                rfc3339(*at)
            )),
        }
    }

    /// Why the link cannot connect until someone acts, if it cannot: its
    /// claim redemption failed ([`LinkState::Failed`]: it has no
    /// credentials until the claim is redeemed again, with
    /// [`crate::site::Site::redeem_link`], which
    /// [`crate::site::Site::process_links`] does for a retryable failure)
    /// or the remote site revoked its access ([`LinkState::Revoked`]).
    /// `None` for a link that is connected or may still connect by itself.
    pub fn will_not_connect(&self) -> Option<String> {
        match self {
            LinkState::Failed { .. } | LinkState::Revoked { .. } => self.reason(),
            _ => None,
        }
    }

    /// Whether the issuing site refused the link's claim for good (a
    /// failure that is not retryable): such a link can never connect.
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            LinkState::Failed {
                retryable: false,
                ..
            }
        )
    }

    /// Whether setting `next` on a link in this state changes nothing: the
    /// same state, a link still connected (its `since` stays), or a link
    /// revoked again (the first revocation stays).
    fn same_as(&self, next: &LinkState) -> bool {
        match (self, next) {
            (LinkState::Connected { .. }, LinkState::Connected { .. })
            | (LinkState::Revoked { .. }, LinkState::Revoked { .. }) => true,
            (a, b) => a == b,
        }
    }
}

/// One recorded state change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LinkTransition {
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The state before ([`LinkState::label`]).
    pub from: String,
    /// The state after ([`LinkState::label`]).
    pub to: String,
    /// Why.
    pub why: String,
}

/// A change of a link's state, as [`LinkRecord::transition`] made it: the
/// event emitted on every change (and never when nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkChange {
    /// The link.
    pub link: String,
    /// Its state before.
    pub from: LinkState,
    /// Its state now.
    pub to: LinkState,
    /// Why it changed.
    pub why: String,
    /// When.
    pub at: OffsetDateTime,
}

impl fmt::Display for LinkChange {
    /// `link link1: connecting -> connected (connected)`, with the new
    /// state's reason when it has one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "link {}: {} -> {} ({})",
            self.link,
            self.from.label(),
            self.to.label(),
            self.why
        )?;
        match self.to.reason() {
            Some(reason) => write!(f, ": {reason}"),
            None => Ok(()),
        }
    }
}

/// What a link holds to reach its remote site: one of these, never two.
#[derive(Clone, PartialEq, Eq)]
enum Access {
    /// The claim token (Skupper Secret YAML) while it has not been
    /// redeemed.
    Claim(String),
    /// A Skupper 2.x AccessToken (its YAML) while it has not been redeemed.
    Grant(String),
    /// The credentials (a cert token, Skupper Secret YAML). The claim is
    /// dropped once redeemed, so its password is not kept.
    Credentials(String),
    /// Skupper 2.x credentials: one Link and its Secret, as a Link file
    /// (`link generate`'s layout). The AccessToken is dropped once
    /// redeemed, so its code is not kept.
    LinkFile(String),
}

impl Access {
    /// Whether this is a token to redeem (a claim or an AccessToken).
    fn is_token(&self) -> bool {
        matches!(self, Access::Claim(_) | Access::Grant(_))
    }
}

/// The prefix of a remote site id made from a CA's fingerprint
/// ([`ca_site_id`]).
pub const CA_SITE_ID_PREFIX: &str = "ca-sha256:";

/// The SHA-256 fingerprint of the first certificate in `ca_pem`, lowercase
/// hex; of the PEM text itself when it holds no readable certificate (so
/// that one CA always gives one fingerprint).
pub fn ca_fingerprint(ca_pem: &str) -> String {
    let digest = match crate::pki::pem_to_der(ca_pem) {
        Ok(der) => ring::digest::digest(&ring::digest::SHA256, &der),
        Err(_) => ring::digest::digest(&ring::digest::SHA256, ca_pem.trim().as_bytes()),
    };
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The remote site id of a link made from a Skupper 2.x file, which names
/// no site: [`CA_SITE_ID_PREFIX`] and the fingerprint of the remote site's
/// CA.
pub fn ca_site_id(ca_pem: &str) -> String {
    format!("{CA_SITE_ID_PREFIX}{}", ca_fingerprint(ca_pem))
}

/// A Skupper 2.x Link and its Secret as a 1.x cert token, the form a link
/// dials with: the Secret's CA, certificate and key, the Link's
/// `inter-router` and `edge` endpoints (its first endpoint for a role it
/// does not have), and `remote_site_id` as the issuer.
pub fn link_credentials(
    link: &crate::v2::Link,
    secret: &crate::v2::TlsSecret,
    remote_site_id: &str,
) -> CertToken {
    let role = |name: &str| {
        link.endpoints
            .iter()
            .find(|e| e.name == name)
            .or_else(|| link.endpoints.first())
            .map(|e| e.endpoint())
            .unwrap_or_else(|| crate::token::Endpoint {
                host: String::new(),
                port: 0,
            })
    };
    CertToken {
        name: secret.name.clone(),
        ca_pem: secret.ca_pem.clone(),
        cert_pem: secret.cert_pem.clone(),
        key_pem: secret.key_pem.clone(),
        issuer_site_id: remote_site_id.to_owned(),
        issuer_version: String::new(),
        inter_router: role("inter-router"),
        edge: role("edge"),
    }
}

/// What a linking site keeps about one outgoing link.
///
/// The state, the history, the claim or credentials and the target change
/// only through [`LinkRecord::transition`] and [`LinkRecord::redeemed`].
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "StoredLink", into = "StoredLink")]
pub struct LinkRecord {
    /// The link name (`link1`, or the user's `--name`).
    pub name: String,
    /// The link cost.
    pub cost: u32,
    /// What identifies the site this link goes to: for a 1.x token its
    /// issuing site's id (`generated-by`), for a 2.x file
    /// [`ca_site_id`] of the remote CA (see the [module
    /// documentation](self)).
    pub remote_site_id: String,
    /// The SHA-256 fingerprint of the remote site's CA ([`ca_fingerprint`]),
    /// whatever made the link. Records from before it derive it from the
    /// token or credentials they hold.
    pub remote_ca: String,
    /// When the link was created.
    pub created_at: OffsetDateTime,
    /// The `spec.url` of the Skupper 2.x AccessToken the link was made
    /// from (its grant's own URL), kept after it is redeemed: the same
    /// AccessToken again is this link, so it is redeemed once (Skupper's
    /// #2112), even when its CA is a grant server's own and says nothing
    /// about the site.
    pub access_token_url: Option<String>,
    /// Tells this link from one deleted and made again under the same
    /// name with the same token ([`LinkRecord::instance`]).
    instance: String,
    target: String,
    access: Access,
    state: LinkState,
    history: Vec<LinkTransition>,
}

impl fmt::Debug for LinkRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let access = match &self.access {
            Access::Claim(_) => "claim <redacted>",
            Access::Grant(_) => "access token <redacted>",
            Access::Credentials(_) => "credentials <redacted>",
            Access::LinkFile(_) => "link file credentials <redacted>",
        };
        f.debug_struct("LinkRecord")
            .field("name", &self.name)
            .field("cost", &self.cost)
            .field("remote_site_id", &self.remote_site_id)
            .field("remote_ca", &self.remote_ca)
            .field("target", &self.target)
            .field("access", &access)
            .field("state", &self.state)
            .field("history", &self.history)
            .field("created_at", &self.created_at)
            .field("access_token_url", &self.access_token_url)
            .field("instance", &self.instance)
            .finish()
    }
}

/// A link state change that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("link {link:?} cannot go from {from} to {to}: {reason}")]
pub struct TransitionError {
    /// The link.
    pub link: String,
    /// Its current state ([`LinkState::label`]).
    pub from: &'static str,
    /// The state asked for.
    pub to: &'static str,
    /// Why not.
    pub reason: &'static str,
}

/// [`TransitionError::reason`] for a link without credentials asked to
/// connect.
pub const NO_CREDENTIALS: &str =
    "the link has no credentials yet (its claim or AccessToken is not redeemed)";
/// [`TransitionError::reason`] for a revoked link asked to leave that
/// state.
pub const REVOKED_IS_TERMINAL: &str =
    "the remote site revoked its access; only a new token from that site links again";
/// [`TransitionError::reason`] for a pending link on a link whose claim
/// was redeemed.
pub const ALREADY_REDEEMED: &str = "the claim was already redeemed";
/// [`TransitionError::reason`] for a failed redemption on a link without a
/// claim.
pub const NO_CLAIM: &str =
    "only a claim or AccessToken redemption can fail; the link has nothing to redeem";

impl LinkRecord {
    /// A new link from a decoded token: pending for a claim token,
    /// connecting for a cert token.
    pub fn new(
        name: String,
        cost: u32,
        token: &Token,
        edge: bool,
        now: OffsetDateTime,
    ) -> LinkRecord {
        let (target, access, state, ca) = match token {
            Token::Claim(c) => (
                c.url.clone(),
                Access::Claim(c.encode()),
                LinkState::Pending,
                &c.ca_pem,
            ),
            Token::Cert(c) => (
                dial_endpoint(c, edge).to_string(),
                Access::Credentials(c.encode()),
                LinkState::Connecting,
                &c.ca_pem,
            ),
        };
        LinkRecord {
            name,
            cost,
            remote_site_id: token.issuer_site_id().to_owned(),
            remote_ca: ca_fingerprint(ca),
            target,
            access,
            state,
            history: Vec::new(),
            created_at: now,
            access_token_url: None,
            instance: String::new(),
        }
    }

    /// A new link from a Skupper 2.x AccessToken, pending until it is
    /// redeemed; its remote site is known by the token's `spec.ca`.
    pub fn from_access_token(
        name: String,
        cost: u32,
        token: &crate::v2::AccessToken,
        now: OffsetDateTime,
    ) -> LinkRecord {
        LinkRecord {
            name,
            cost,
            remote_site_id: ca_site_id(&token.ca_pem),
            remote_ca: ca_fingerprint(&token.ca_pem),
            target: token.url.clone(),
            access_token_url: Some(token.url.clone()),
            access: Access::Grant(token.encode()),
            state: LinkState::Pending,
            history: Vec::new(),
            created_at: now,
            instance: String::new(),
        }
    }

    /// A new link from one Link of a Skupper 2.x Link file and its Secret,
    /// connecting; its remote site is known by the Secret's CA. The Link's
    /// cost is used when it has one (over 0), `cost` otherwise.
    pub fn from_link(
        name: String,
        cost: u32,
        link: &crate::v2::Link,
        secret: &crate::v2::TlsSecret,
        edge: bool,
        now: OffsetDateTime,
    ) -> LinkRecord {
        let remote_site_id = ca_site_id(&secret.ca_pem);
        let credentials = link_credentials(link, secret, &remote_site_id);
        LinkRecord {
            name,
            cost: if link.cost > 0 { link.cost } else { cost },
            remote_ca: ca_fingerprint(&secret.ca_pem),
            target: dial_endpoint(&credentials, edge).to_string(),
            remote_site_id,
            access: Access::LinkFile(one_link_file(link, secret)),
            state: LinkState::Connecting,
            history: Vec::new(),
            created_at: now,
            access_token_url: None,
            instance: String::new(),
        }
    }

    /// What tells this link from another made under the same name: a link
    /// deleted and made again with the same token holds the same
    /// credentials, so a dialer of the old one must not report on the new
    /// one ([`LinkInstance`]). [`Site`](crate::site::Site) draws it from
    /// its `rng` once per [`Site::add_link`](crate::site::Site::add_link)
    /// or [`Site::create_link`](crate::site::Site::create_link): the links
    /// one file makes (a Link file of several Links, an AccessToken's
    /// extra Links) share it and differ by name, which is what a dialer
    /// knows a link by. Links made with these constructors alone, and
    /// records from before schema 5, have the empty instance.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// This link with `instance` ([`LinkRecord::instance`]).
    pub fn with_instance(mut self, instance: impl Into<String>) -> LinkRecord {
        self.instance = instance.into();
        self
    }

    /// What a dialer of this link holds, once it has credentials: the
    /// instance and the credentials. A report made with it lands only on
    /// this link, not on one that replaced it.
    pub fn dial_instance(&self) -> Option<LinkInstance> {
        Some(LinkInstance {
            instance: self.instance.clone(),
            credentials: self.credentials()?.to_owned(),
        })
    }

    /// Whether the link knows its remote site only by its CA (a 2.x link
    /// whose remote site has not said its id yet: [`ca_site_id`]).
    pub fn knows_site_by_ca(&self) -> bool {
        self.remote_site_id.starts_with(CA_SITE_ID_PREFIX)
    }

    /// The remote site told its id (the hello of a connection made with
    /// this link's credentials, which its CA verified): a link that knew
    /// the site only by its CA knows it by `site_id` from now on, and
    /// keeps the CA's fingerprint. Returns whether anything changed; a link
    /// that knows its site's id keeps it.
    pub fn learn_site_id(&mut self, site_id: &str) -> bool {
        if !self.knows_site_by_ca() || site_id.is_empty() {
            return false;
        }
        self.remote_site_id = site_id.to_owned();
        true
    }

    /// Whether this link goes to the remote site known by `remote_site_id`
    /// and CA fingerprint `remote_ca`: the same remote site id, or the
    /// same remote CA (a record whose CA could not be read compares by id
    /// only).
    pub fn same_remote(&self, remote_site_id: &str, remote_ca: &str) -> bool {
        self.remote_site_id == remote_site_id
            || (!self.remote_ca.is_empty() && self.remote_ca == remote_ca)
    }

    // -- getters -------------------------------------------------------------

    /// The current state.
    pub fn state(&self) -> &LinkState {
        &self.state
    }

    /// The last [`HISTORY_LEN`] state changes, oldest first.
    pub fn history(&self) -> &[LinkTransition] {
        &self.history
    }

    /// Where the link goes: the claim URL while the claim is not redeemed,
    /// `host:port` once the link has credentials.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether the link still holds its unredeemed token, a claim or an
    /// AccessToken (pending or failed). Exactly one of this and
    /// [`LinkRecord::credentials`] holds.
    pub fn has_claim(&self) -> bool {
        self.access.is_token()
    }

    /// The credentials once the link has them, as stored: a cert token
    /// (Skupper Secret YAML) or a Skupper 2.x Link file of one Link.
    pub fn credentials(&self) -> Option<&str> {
        match &self.access {
            Access::Credentials(c) | Access::LinkFile(c) => Some(c),
            Access::Claim(_) | Access::Grant(_) => None,
        }
    }

    /// What made the link, in words: `claim token`, `AccessToken`, `cert
    /// token` or `link file` (a redeemed claim or AccessToken shows what it
    /// was redeemed for: `cert token`, `link file`).
    pub fn token_kind(&self) -> &'static str {
        match &self.access {
            Access::Claim(_) => "claim token",
            Access::Grant(_) => "AccessToken",
            Access::Credentials(_) => "cert token",
            Access::LinkFile(_) => "link file",
        }
    }

    /// The unredeemed Skupper 2.x AccessToken, if the link still has one.
    pub fn access_token(&self) -> Result<Option<crate::v2::AccessToken>, DecodeError> {
        match &self.access {
            Access::Grant(t) => crate::v2::AccessToken::decode(t.as_bytes()).map(Some),
            _ => Ok(None),
        }
    }

    /// Whether the link's claim was refused for good
    /// ([`LinkState::is_refused`]).
    pub fn is_refused(&self) -> bool {
        self.state.is_refused()
    }

    /// The unredeemed claim token, if the link still has one.
    pub fn claim_token(&self) -> Result<Option<ClaimToken>, DecodeError> {
        match &self.access {
            Access::Claim(c) => ClaimToken::decode(c.as_bytes()).map(Some),
            _ => Ok(None),
        }
    }

    /// The link's credentials, once it has them, as a cert token: a 2.x
    /// Link and Secret as [`link_credentials`] makes them one.
    pub fn cert_token(&self) -> Result<Option<CertToken>, DecodeError> {
        match &self.access {
            Access::Credentials(c) => CertToken::decode(c.as_bytes()).map(Some),
            Access::LinkFile(f) => {
                let file = crate::v2::LinkFile::decode(f.as_bytes())?;
                Ok(file
                    .links
                    .first()
                    .map(|l| link_credentials(l, &file.secret, &self.remote_site_id)))
            }
            Access::Claim(_) | Access::Grant(_) => Ok(None),
        }
    }

    /// The user-facing status line of this link.
    pub fn status(&self) -> LinkStatus {
        LinkStatus {
            name: self.name.clone(),
            connected: self.state.is_connected(),
            reason: match &self.state {
                LinkState::Pending => Some(match self.access {
                    Access::Grant(_) => {
                        format!(
                            "waiting for the AccessToken at {} to be redeemed",
                            self.target
                        )
                    }
                    _ => format!("waiting for the claim at {} to be redeemed", self.target),
                }),
                LinkState::Connecting => Some(format!("connecting to {}", self.target)),
                other => other.reason(),
            },
            since: match &self.state {
                LinkState::Connected { since } => Some(*since),
                _ => None,
            },
        }
    }

    // -- transitions ---------------------------------------------------------

    /// Moves the link to `next`, recording `why` and `now` in its history,
    /// and returns the change; `None` when `next` changes nothing (the same
    /// state; connected again, which keeps `since`; revoked again, which
    /// keeps the first revocation).
    ///
    /// Refuses changes that do not make sense, with the reason in
    /// [`TransitionError`]: a link with its claim can only be pending or
    /// failed ([`NO_CREDENTIALS`]); a link with credentials cannot be
    /// pending ([`ALREADY_REDEEMED`]) or failed ([`NO_CLAIM`]); a revoked
    /// link stays revoked ([`REVOKED_IS_TERMINAL`]). The one change from
    /// claim to credentials is [`LinkRecord::redeemed`].
    pub fn transition(
        &mut self,
        next: LinkState,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LinkChange>, TransitionError> {
        let token = self.access.is_token();
        let refused = match (token, &next) {
            _ if self.state.is_revoked() && !next.is_revoked() => Some(REVOKED_IS_TERMINAL),
            (false, LinkState::Pending) => Some(ALREADY_REDEEMED),
            (false, LinkState::Failed { .. }) => Some(NO_CLAIM),
            (
                true,
                LinkState::Connecting
                | LinkState::Connected { .. }
                | LinkState::NotConnected { .. }
                | LinkState::Revoked { .. },
            ) => Some(NO_CREDENTIALS),
            _ => None,
        };
        if let Some(reason) = refused {
            return Err(self.refusal(&next, reason));
        }
        if self.state.same_as(&next) {
            return Ok(None);
        }
        Ok(Some(self.record(next, why, now)))
    }

    /// The claim was redeemed: the link trades its claim for `credentials`,
    /// now dials the endpoint in them (the edge one from an edge site) and
    /// is [`LinkState::Connecting`]. Only a link that holds its claim
    /// (pending or failed) can be redeemed.
    pub fn redeemed(
        &mut self,
        credentials: &CertToken,
        edge: bool,
        now: OffsetDateTime,
    ) -> Result<LinkChange, TransitionError> {
        if !matches!(self.access, Access::Claim(_)) {
            return Err(self.refusal(&LinkState::Connecting, ALREADY_REDEEMED));
        }
        self.access = Access::Credentials(credentials.encode());
        self.target = dial_endpoint(credentials, edge).to_string();
        self.remote_ca = ca_fingerprint(&credentials.ca_pem);
        Ok(self.record(LinkState::Connecting, "claim redeemed", now))
    }

    /// The AccessToken was redeemed: the link trades it for `link` and its
    /// `secret` (forgetting the code), is known from now on by the
    /// Secret's CA (the CA that signs link certificates), takes the Link's
    /// cost when it has one, dials its endpoint and is
    /// [`LinkState::Connecting`]. Only a link that holds its AccessToken
    /// (pending or failed) can be redeemed so.
    pub fn redeemed_grant(
        &mut self,
        link: &crate::v2::Link,
        secret: &crate::v2::TlsSecret,
        edge: bool,
        now: OffsetDateTime,
    ) -> Result<LinkChange, TransitionError> {
        if !matches!(self.access, Access::Grant(_)) {
            return Err(self.refusal(&LinkState::Connecting, ALREADY_REDEEMED));
        }
        self.remote_site_id = ca_site_id(&secret.ca_pem);
        self.remote_ca = ca_fingerprint(&secret.ca_pem);
        let credentials = link_credentials(link, secret, &self.remote_site_id);
        self.target = dial_endpoint(&credentials, edge).to_string();
        self.access = Access::LinkFile(one_link_file(link, secret));
        if link.cost > 0 {
            self.cost = link.cost;
        }
        Ok(self.record(LinkState::Connecting, "AccessToken redeemed", now))
    }

    fn refusal(&self, next: &LinkState, reason: &'static str) -> TransitionError {
        TransitionError {
            link: self.name.clone(),
            from: self.state.label(),
            to: next.label(),
            reason,
        }
    }

    /// Makes the (checked) change: history, state, and the change itself.
    fn record(&mut self, next: LinkState, why: &str, now: OffsetDateTime) -> LinkChange {
        if self.history.len() >= HISTORY_LEN {
            self.history.remove(0);
        }
        self.history.push(LinkTransition {
            at: now,
            from: self.state.label().to_owned(),
            to: next.label().to_owned(),
            why: why.to_owned(),
        });
        let from = std::mem::replace(&mut self.state, next.clone());
        LinkChange {
            link: self.name.clone(),
            from,
            to: next,
            why: why.to_owned(),
            at: now,
        }
    }
}

/// `link` and `secret` as a Link file of one Link (`link generate`'s
/// layout), as a link record keeps them.
fn one_link_file(link: &crate::v2::Link, secret: &crate::v2::TlsSecret) -> String {
    crate::v2::LinkFile {
        links: vec![link.clone()],
        secret: secret.clone(),
    }
    .encode_generated()
}

/// Where a site dials with a cert token: the edge endpoint from an edge
/// site, the inter-router endpoint from an interior site.
pub fn dial_endpoint(token: &CertToken, edge: bool) -> &crate::token::Endpoint {
    if edge {
        &token.edge
    } else {
        &token.inter_router
    }
}

/// One link's status line: `Link link1 is connected`, `Link link1 not
/// connected (<reason>)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    /// The link name.
    pub name: String,
    /// Whether it is connected.
    pub connected: bool,
    /// Why not, when it is not.
    pub reason: Option<String>,
    /// Since when it is connected.
    pub since: Option<OffsetDateTime>,
}

impl fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.connected, &self.reason) {
            (true, _) => write!(f, "Link {} is connected", self.name),
            (false, Some(reason)) => write!(f, "Link {} not connected ({reason})", self.name),
            (false, None) => write!(f, "Link {} not connected", self.name),
        }
    }
}

/// A time as RFC 3339 in UTC, whole seconds (`2026-11-28T11:00:00Z`).
fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC).truncate_to_second();
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// A name or id from another site, safe in one line: as it is when it is
/// plain printable ASCII (at most 253 characters, no quotes or
/// backslashes), quoted and escaped otherwise.
fn printable(s: &str) -> String {
    let clean = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if clean {
        s.to_owned()
    } else {
        let mut q = format!("{:?}", s.chars().take(253).collect::<String>());
        if s.chars().count() > 253 {
            q.push_str("...");
        }
        q
    }
}

/// One link as its dialer knows it: its instance
/// ([`LinkRecord::instance`]) and the credentials it dials with. A link
/// deleted and made again under the same name, or given new credentials,
/// is another instance: the dialer of the old one stops, and what it
/// reports is refused ([`crate::site::LinkError::LinkReplaced`]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkInstance {
    instance: String,
    credentials: String,
}

impl LinkInstance {
    /// Whether `link` is this instance.
    pub fn is_of(&self, link: &LinkRecord) -> bool {
        link.instance == self.instance && link.credentials() == Some(self.credentials.as_str())
    }

    /// The credentials, as stored ([`LinkRecord::credentials`]).
    pub fn credentials(&self) -> &str {
        &self.credentials
    }

    /// The instance ([`LinkRecord::instance`]).
    pub fn instance(&self) -> &str {
        &self.instance
    }
}

impl fmt::Debug for LinkInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkInstance")
            .field("instance", &self.instance)
            .field("credentials", &"<redacted>")
            .finish()
    }
}

// ---------------------------------------------------------------------------
// The stored layout
// ---------------------------------------------------------------------------

/// A link record as stored: the claim and the credentials as two optional
/// fields, the state tagged by `state`. Reading checks what the types of
/// [`LinkRecord`] guarantee (one of claim and credentials, and a state that
/// agrees with it).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct StoredLink {
    #[serde(default = "schema_v1")]
    schema_version: u32,
    name: String,
    cost: u32,
    remote_site_id: String,
    target: String,
    /// Schema 3: the remote CA's fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote_ca: Option<String>,
    #[serde(default)]
    claim: Option<String>,
    #[serde(default)]
    credentials: Option<String>,
    /// Schema 3: an unredeemed Skupper 2.x AccessToken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    /// Schema 3: Skupper 2.x credentials (one Link and its Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link_file: Option<String>,
    /// Schema 4: the URL of the AccessToken the link was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token_url: Option<String>,
    /// Schema 5: the link's instance.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    instance: String,
    state: StoredState,
    #[serde(default)]
    history: Vec<LinkTransition>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

fn schema_v1() -> u32 {
    1
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
enum StoredState {
    Pending,
    Connecting,
    Connected {
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
    NotConnected {
        reason: String,
    },
    Revoked {
        /// Schema 2.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<RemoteSite>,
        /// Schema 2.
        #[serde(
            default,
            with = "time::serde::rfc3339::option",
            skip_serializing_if = "Option::is_none"
        )]
        at: Option<OffsetDateTime>,
        /// Schema 1: the reason as a sentence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Failed {
        reason: String,
        retryable: bool,
    },
}

impl From<LinkRecord> for StoredLink {
    fn from(l: LinkRecord) -> StoredLink {
        let (mut claim, mut credentials, mut access_token, mut link_file) =
            (None, None, None, None);
        match l.access {
            Access::Claim(c) => claim = Some(c),
            Access::Credentials(c) => credentials = Some(c),
            Access::Grant(t) => access_token = Some(t),
            Access::LinkFile(f) => link_file = Some(f),
        }
        StoredLink {
            schema_version: LINK_RECORD_SCHEMA,
            name: l.name,
            cost: l.cost,
            remote_site_id: l.remote_site_id,
            remote_ca: Some(l.remote_ca),
            target: l.target,
            claim,
            credentials,
            access_token,
            link_file,
            access_token_url: l.access_token_url,
            instance: l.instance,
            state: match l.state {
                LinkState::Pending => StoredState::Pending,
                LinkState::Connecting => StoredState::Connecting,
                LinkState::Connected { since } => StoredState::Connected { since },
                LinkState::NotConnected { reason } => StoredState::NotConnected { reason },
                LinkState::Revoked { by, at } => StoredState::Revoked {
                    by: Some(by),
                    at: Some(at),
                    reason: None,
                },
                LinkState::Failed { reason, retryable } => {
                    StoredState::Failed { reason, retryable }
                }
            },
            history: l.history,
            created_at: l.created_at,
        }
    }
}

impl TryFrom<StoredLink> for LinkRecord {
    type Error = String;

    fn try_from(s: StoredLink) -> Result<LinkRecord, String> {
        let name = &s.name;
        if s.schema_version > LINK_RECORD_SCHEMA {
            return Err(format!(
                "link {name:?} has schema version {}; this version reads up to {LINK_RECORD_SCHEMA}",
                s.schema_version
            ));
        }
        let held = [
            s.claim.map(Access::Claim),
            s.credentials.map(Access::Credentials),
            s.access_token.map(Access::Grant),
            s.link_file.map(Access::LinkFile),
        ];
        let mut held = held.into_iter().flatten();
        let access = match (held.next(), held.next()) {
            (Some(access), None) => access,
            (Some(_), Some(_)) => {
                return Err(format!(
                    "link {name:?} has more than one of a claim, an AccessToken and credentials"
                ))
            }
            (None, _) => return Err(format!("link {name:?} has neither a claim nor credentials")),
        };
        // Records from before schema 3 derive the CA's fingerprint from
        // what they hold (a 1.x token: they have no other kind).
        let remote_ca = match s.remote_ca {
            Some(fingerprint) => fingerprint,
            None => stored_ca(&access)
                .map(|ca| ca_fingerprint(&ca))
                .unwrap_or_default(),
        };
        let state = match s.state {
            StoredState::Pending => LinkState::Pending,
            StoredState::Connecting => LinkState::Connecting,
            StoredState::Connected { since } => LinkState::Connected { since },
            StoredState::NotConnected { reason } => LinkState::NotConnected { reason },
            StoredState::Failed { reason, retryable } => LinkState::Failed { reason, retryable },
            StoredState::Revoked {
                by: Some(by),
                at: Some(at),
                ..
            } => LinkState::Revoked { by, at },
            StoredState::Revoked {
                reason: Some(reason),
                ..
            } => revoked_from_sentence(&reason, &s.remote_site_id, &s.history, s.created_at),
            StoredState::Revoked { .. } => {
                return Err(format!(
                    "link {name:?} is revoked but does not say by whom and when"
                ))
            }
        };
        let with_claim = matches!(state, LinkState::Pending | LinkState::Failed { .. });
        if with_claim != access.is_token() {
            return Err(format!(
                "link {name:?} is {} but has {}",
                state.label(),
                if with_claim {
                    "credentials instead of its claim"
                } else {
                    "its claim instead of credentials"
                }
            ));
        }
        Ok(LinkRecord {
            name: s.name,
            cost: s.cost,
            remote_site_id: s.remote_site_id,
            remote_ca,
            created_at: s.created_at,
            access_token_url: s.access_token_url,
            instance: s.instance,
            target: s.target,
            access,
            state,
            history: s.history,
        })
    }
}

/// The CA certificate (PEM) in what a link holds, if it can be read.
fn stored_ca(access: &Access) -> Option<String> {
    match access {
        Access::Claim(c) => ClaimToken::decode(c.as_bytes()).ok().map(|t| t.ca_pem),
        Access::Credentials(c) => CertToken::decode(c.as_bytes()).ok().map(|t| t.ca_pem),
        Access::Grant(t) => crate::v2::AccessToken::decode(t.as_bytes())
            .ok()
            .map(|t| t.ca_pem),
        Access::LinkFile(f) => crate::v2::LinkFile::decode(f.as_bytes())
            .ok()
            .map(|f| f.secret.ca_pem),
    }
}

/// A schema 1 revoked state: the sentence `access revoked by <name> (site
/// <id>) at <time>; ...` it was stored as, read back into who and when.
/// What cannot be read from it falls back to the link's remote site id and
/// the time the link became revoked in its history.
fn revoked_from_sentence(
    reason: &str,
    remote_site_id: &str,
    history: &[LinkTransition],
    created_at: OffsetDateTime,
) -> LinkState {
    let parsed = reason.strip_prefix("access revoked by ").and_then(|rest| {
        let (name, rest) = rest.split_once(" (site ")?;
        let (id, rest) = rest.split_once(") at ")?;
        let at = rest.split(';').next()?;
        Some((name, id, OffsetDateTime::parse(at, &Rfc3339).ok()))
    });
    let unquote = |s: &str| {
        s.strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(s)
            .to_owned()
    };
    let (name, id, at) = match parsed {
        Some((name, id, at)) => (unquote(name), unquote(id), at),
        None => (remote_site_id.to_owned(), remote_site_id.to_owned(), None),
    };
    let at = at
        .or_else(|| {
            history
                .iter()
                .rev()
                .find(|t| t.to == "revoked")
                .map(|t| t.at)
        })
        .unwrap_or(created_at);
    LinkState::Revoked {
        by: RemoteSite { id, name },
        at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{CertToken, Endpoint};
    use time::macros::datetime;

    fn cert_token() -> CertToken {
        CertToken {
            name: "skupper".into(),
            issuer_site_id: "west-id".into(),
            issuer_version: String::new(),
            ca_pem: String::new(),
            cert_pem: String::new(),
            key_pem: crate::token::SecretPem::new(String::new()),
            inter_router: Endpoint {
                host: "127.0.0.1".into(),
                port: 55671,
            },
            edge: Endpoint {
                host: "127.0.0.1".into(),
                port: 45671,
            },
        }
    }

    fn cert_link() -> LinkRecord {
        let token = Token::Cert(cert_token());
        LinkRecord::new("link1".into(), 1, &token, false, OffsetDateTime::UNIX_EPOCH)
    }

    fn revoked() -> LinkState {
        LinkState::Revoked {
            by: RemoteSite {
                id: "west-id".into(),
                name: "west".into(),
            },
            at: datetime!(2026-11-28 10:15 UTC),
        }
    }

    #[test]
    fn a_revoked_link_says_why_and_will_not_connect() {
        let mut link = cert_link();
        assert_eq!(link.state().will_not_connect(), None);
        let change = link
            .transition(revoked(), "revocation notice", OffsetDateTime::UNIX_EPOCH)
            .unwrap()
            .expect("a change");
        assert_eq!(change.from, LinkState::Connecting);
        assert_eq!(change.to, revoked());
        let reason = "access revoked by west (site west-id) at 2026-11-28T10:15:00Z; \
                      to link again, get a new token from that site and replace this link with it";
        assert_eq!(link.state().label(), "revoked");
        assert_eq!(link.state().will_not_connect().as_deref(), Some(reason));
        assert_eq!(
            link.status().to_string(),
            format!("Link link1 not connected ({reason})")
        );
        assert_eq!(link.history().last().unwrap().to, "revoked");
    }

    #[test]
    fn a_revoking_site_with_an_odd_name_is_quoted() {
        let state = LinkState::Revoked {
            by: RemoteSite {
                id: "west-id".into(),
                name: "we\nst".into(),
            },
            at: datetime!(2026-11-28 10:15:00.5 +1),
        };
        assert!(
            state.reason().unwrap().starts_with(
                "access revoked by \"we\\nst\" (site west-id) at 2026-11-28T09:15:00Z;"
            ),
            "{state:?}"
        );
    }

    #[test]
    fn a_failed_redemption_will_not_connect_and_other_states_may() {
        for retryable in [false, true] {
            let failed = LinkState::Failed {
                reason: "Failed to redeem claim: Claim refused".into(),
                retryable,
            };
            assert_eq!(
                failed.will_not_connect().as_deref(),
                Some("Failed to redeem claim: Claim refused")
            );
        }
        for state in [
            LinkState::Pending,
            LinkState::Connecting,
            LinkState::NotConnected {
                reason: "peer unreachable".into(),
            },
        ] {
            assert_eq!(state.will_not_connect(), None, "{state:?}");
        }
    }
}
