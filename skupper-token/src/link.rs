//! Outgoing links: what a linking site keeps about each link, and the link
//! state machine.
//!
//! Every state change goes through [`LinkRecord::transition`], which checks
//! that the change makes sense and records why it happened.

use std::fmt;

use time::OffsetDateTime;

use crate::token::{CertToken, ClaimToken, DecodeError, Token};

/// Default link cost, as in Skupper.
pub const DEFAULT_COST: u32 = 1;

/// How many past transitions a link record keeps.
pub const HISTORY_LEN: usize = 16;

/// The state of an outgoing link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum LinkState {
    /// Made from a claim token that has not been redeemed yet.
    Pending,
    /// Has credentials; no connection has been made yet.
    Connecting,
    /// Connected to the remote site.
    Connected {
        /// Since when.
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
    /// Has credentials but is not connected, for this reason.
    NotConnected {
        /// Why, in words a user can act on.
        reason: String,
    },
    /// The remote site said, in a notice signed by the CA that issued this
    /// link's certificate, that it no longer accepts the certificate
    /// (`revoke-access` there). The link does not connect with these
    /// credentials again: linking again needs a new token from that site.
    Revoked {
        /// Who revoked access and when, and what to do.
        reason: String,
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

    /// Why the link cannot connect until someone acts, if it cannot: its
    /// claim redemption failed ([`LinkState::Failed`]: it has no
    /// credentials until the claim is redeemed again, with
    /// [`crate::site::Site::redeem_link`], which
    /// [`crate::site::Site::process_links`] does for a retryable failure)
    /// or the remote site revoked its access ([`LinkState::Revoked`]).
    /// `None` for a link that is connected or may still connect by itself.
    pub fn will_not_connect(&self) -> Option<&str> {
        match self {
            LinkState::Failed { reason, .. } | LinkState::Revoked { reason } => Some(reason),
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

/// What a linking site keeps about one outgoing link.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LinkRecord {
    /// The link name (`link1`, or the user's `--name`).
    pub name: String,
    /// The link cost.
    pub cost: u32,
    /// The id of the site this link goes to (the token's `generated-by`).
    pub remote_site_id: String,
    /// Where the link goes: the claim URL for claim tokens, `host:port` for
    /// cert tokens.
    pub target: String,
    /// The claim token (Skupper Secret YAML) while it has not been redeemed;
    /// dropped once it has, so the password is not kept.
    #[serde(default)]
    pub claim: Option<String>,
    /// The credentials (a cert token, Skupper Secret YAML) once known.
    #[serde(default)]
    pub credentials: Option<String>,
    /// The current state.
    pub state: LinkState,
    /// The last [`HISTORY_LEN`] state changes, oldest first.
    #[serde(default)]
    pub history: Vec<LinkTransition>,
    /// When the link was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl fmt::Debug for LinkRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkRecord")
            .field("name", &self.name)
            .field("cost", &self.cost)
            .field("remote_site_id", &self.remote_site_id)
            .field("target", &self.target)
            .field("claim", &self.claim.as_ref().map(|_| "<redacted>"))
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
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
        let (target, claim, credentials, state) = match token {
            Token::Claim(c) => (c.url.clone(), Some(c.encode()), None, LinkState::Pending),
            Token::Cert(c) => (
                dial_endpoint(c, edge).to_string(),
                None,
                Some(c.encode()),
                LinkState::Connecting,
            ),
        };
        LinkRecord {
            name,
            cost,
            remote_site_id: token.issuer_site_id().to_owned(),
            target,
            claim,
            credentials,
            state,
            history: Vec::new(),
            created_at: now,
        }
    }

    /// Whether the link's claim was refused for good
    /// ([`LinkState::is_refused`]).
    pub fn is_refused(&self) -> bool {
        self.state.is_refused()
    }

    /// The unredeemed claim token, if the link still has one.
    pub fn claim_token(&self) -> Result<Option<ClaimToken>, DecodeError> {
        self.claim
            .as_deref()
            .map(|c| ClaimToken::decode(c.as_bytes()))
            .transpose()
    }

    /// The link's credentials, once it has them.
    pub fn cert_token(&self) -> Result<Option<CertToken>, DecodeError> {
        self.credentials
            .as_deref()
            .map(|c| CertToken::decode(c.as_bytes()))
            .transpose()
    }

    /// Moves the link to `next`, recording `why` and `now`. Refuses changes
    /// that do not make sense: a link without credentials can only be
    /// pending or failed; only a link that still holds its claim can be
    /// pending.
    ///
    /// Setting the state it already has records nothing (keeps `since`).
    pub fn transition(
        &mut self,
        next: LinkState,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<(), TransitionError> {
        let err = |reason| TransitionError {
            link: self.name.clone(),
            from: self.state.label(),
            to: next.label(),
            reason,
        };
        match &next {
            LinkState::Pending if self.claim.is_none() => {
                return Err(err("the link has no claim to redeem"))
            }
            LinkState::Pending if self.credentials.is_some() => {
                return Err(err("the claim was already redeemed"))
            }
            LinkState::Connecting
            | LinkState::Connected { .. }
            | LinkState::NotConnected { .. }
            | LinkState::Revoked { .. }
                if self.credentials.is_none() =>
            {
                return Err(err(
                    "the link has no credentials yet (its claim is not redeemed)",
                ))
            }
            LinkState::Failed { .. } if self.claim.is_none() => {
                return Err(err(
                    "only a claim redemption can fail; the link has no claim",
                ))
            }
            _ => {}
        }
        let same = match (&self.state, &next) {
            (LinkState::Connected { .. }, LinkState::Connected { .. }) => true,
            (a, b) => a == b,
        };
        if same {
            return Ok(());
        }
        if self.history.len() >= HISTORY_LEN {
            self.history.remove(0);
        }
        self.history.push(LinkTransition {
            at: now,
            from: self.state.label().to_owned(),
            to: next.label().to_owned(),
            why: why.to_owned(),
        });
        self.state = next;
        Ok(())
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
                LinkState::Connected { .. } => None,
                LinkState::NotConnected { reason }
                | LinkState::Revoked { reason }
                | LinkState::Failed { reason, .. } => Some(reason.clone()),
            },
            since: match &self.state {
                LinkState::Connected { since } => Some(*since),
                _ => None,
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{CertToken, Endpoint};

    fn cert_link() -> LinkRecord {
        let token = Token::Cert(CertToken {
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
        });
        LinkRecord::new("link1".into(), 1, &token, false, OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn a_revoked_link_says_why_and_will_not_connect() {
        let mut link = cert_link();
        assert_eq!(link.state.will_not_connect(), None);
        let reason = "access revoked by west (site west-id) at 2026-11-28T10:15:00Z";
        link.transition(
            LinkState::Revoked {
                reason: reason.into(),
            },
            "revocation notice",
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(link.state.label(), "revoked");
        assert_eq!(link.state.will_not_connect(), Some(reason));
        assert_eq!(
            link.status().to_string(),
            format!("Link link1 not connected ({reason})")
        );
        assert_eq!(link.history.last().unwrap().to, "revoked");
    }

    #[test]
    fn a_failed_redemption_will_not_connect_and_other_states_may() {
        for retryable in [false, true] {
            let failed = LinkState::Failed {
                reason: "Failed to redeem claim: Claim refused".into(),
                retryable,
            };
            assert_eq!(
                failed.will_not_connect(),
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
