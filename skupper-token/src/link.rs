//! Outgoing links: what a linking site keeps about each link, and the link
//! state machine.
//!
//! A link holds either the claim token it was made from (until the claim is
//! redeemed) or its credentials (a cert token), never both and never
//! neither, and its [`LinkState`] always agrees: [`LinkState::Pending`] and
//! [`LinkState::Failed`] with the claim, every other state with the
//! credentials. The fields that carry this are private: every state change
//! goes through [`LinkRecord::transition`] (or, for the one change that
//! also trades the claim for credentials, [`LinkRecord::redeemed`]), which
//! checks that the change makes sense, records it in the link's history and
//! returns it as a [`LinkChange`]. [`LinkState::Revoked`] is terminal: only
//! a new token (a new link record) gets out of it.

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
/// who revoked access and when. Both read.
pub const LINK_RECORD_SCHEMA: u32 = 2;

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

/// What a link holds to reach its remote site: one of the two, never both.
#[derive(Clone, PartialEq, Eq)]
enum Access {
    /// The claim token (Skupper Secret YAML) while it has not been
    /// redeemed.
    Claim(String),
    /// The credentials (a cert token, Skupper Secret YAML). The claim is
    /// dropped once redeemed, so its password is not kept.
    Credentials(String),
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
    /// The id of the site this link goes to (the token's `generated-by`).
    pub remote_site_id: String,
    /// When the link was created.
    pub created_at: OffsetDateTime,
    target: String,
    access: Access,
    state: LinkState,
    history: Vec<LinkTransition>,
}

impl fmt::Debug for LinkRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let access = match &self.access {
            Access::Claim(_) => "claim <redacted>",
            Access::Credentials(_) => "credentials <redacted>",
        };
        f.debug_struct("LinkRecord")
            .field("name", &self.name)
            .field("cost", &self.cost)
            .field("remote_site_id", &self.remote_site_id)
            .field("target", &self.target)
            .field("access", &access)
            .field("state", &self.state)
            .field("history", &self.history)
            .field("created_at", &self.created_at)
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
pub const NO_CREDENTIALS: &str = "the link has no credentials yet (its claim is not redeemed)";
/// [`TransitionError::reason`] for a revoked link asked to leave that
/// state.
pub const REVOKED_IS_TERMINAL: &str =
    "the remote site revoked its access; only a new token from that site links again";
/// [`TransitionError::reason`] for a pending link on a link whose claim
/// was redeemed.
pub const ALREADY_REDEEMED: &str = "the claim was already redeemed";
/// [`TransitionError::reason`] for a failed redemption on a link without a
/// claim.
pub const NO_CLAIM: &str = "only a claim redemption can fail; the link has no claim";

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
        let (target, access, state) = match token {
            Token::Claim(c) => (c.url.clone(), Access::Claim(c.encode()), LinkState::Pending),
            Token::Cert(c) => (
                dial_endpoint(c, edge).to_string(),
                Access::Credentials(c.encode()),
                LinkState::Connecting,
            ),
        };
        LinkRecord {
            name,
            cost,
            remote_site_id: token.issuer_site_id().to_owned(),
            target,
            access,
            state,
            history: Vec::new(),
            created_at: now,
        }
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

    /// Whether the link still holds its unredeemed claim (pending or
    /// failed). Exactly one of this and [`LinkRecord::credentials`] holds.
    pub fn has_claim(&self) -> bool {
        matches!(self.access, Access::Claim(_))
    }

    /// The credentials (a cert token, Skupper Secret YAML) once the link
    /// has them.
    pub fn credentials(&self) -> Option<&str> {
        match &self.access {
            Access::Credentials(c) => Some(c),
            Access::Claim(_) => None,
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
            Access::Credentials(_) => Ok(None),
        }
    }

    /// The link's credentials, once it has them.
    pub fn cert_token(&self) -> Result<Option<CertToken>, DecodeError> {
        match &self.access {
            Access::Credentials(c) => CertToken::decode(c.as_bytes()).map(Some),
            Access::Claim(_) => Ok(None),
        }
    }

    /// The user-facing status line of this link.
    pub fn status(&self) -> LinkStatus {
        LinkStatus {
            name: self.name.clone(),
            connected: self.state.is_connected(),
            reason: match &self.state {
                LinkState::Pending => Some(format!(
                    "waiting for the claim at {} to be redeemed",
                    self.target
                )),
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
        let refused = match (&self.access, &next) {
            _ if self.state.is_revoked() && !next.is_revoked() => Some(REVOKED_IS_TERMINAL),
            (Access::Credentials(_), LinkState::Pending) => Some(ALREADY_REDEEMED),
            (Access::Credentials(_), LinkState::Failed { .. }) => Some(NO_CLAIM),
            (
                Access::Claim(_),
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
        if !self.has_claim() {
            return Err(self.refusal(&LinkState::Connecting, ALREADY_REDEEMED));
        }
        self.access = Access::Credentials(credentials.encode());
        self.target = dial_endpoint(credentials, edge).to_string();
        Ok(self.record(LinkState::Connecting, "claim redeemed", now))
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
    #[serde(default)]
    claim: Option<String>,
    #[serde(default)]
    credentials: Option<String>,
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
        let (claim, credentials) = match l.access {
            Access::Claim(c) => (Some(c), None),
            Access::Credentials(c) => (None, Some(c)),
        };
        StoredLink {
            schema_version: LINK_RECORD_SCHEMA,
            name: l.name,
            cost: l.cost,
            remote_site_id: l.remote_site_id,
            target: l.target,
            claim,
            credentials,
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
        let access = match (s.claim, s.credentials) {
            (Some(claim), None) => Access::Claim(claim),
            (None, Some(credentials)) => Access::Credentials(credentials),
            (Some(_), Some(_)) => {
                return Err(format!("link {name:?} has both a claim and credentials"))
            }
            (None, None) => {
                return Err(format!("link {name:?} has neither a claim nor credentials"))
            }
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
        if with_claim != matches!(access, Access::Claim(_)) {
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
            created_at: s.created_at,
            target: s.target,
            access,
            state,
            history: s.history,
        })
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
