//! What an outgoing link needs from the network, as values: the site says
//! what must be done, the caller does it (over HTTPS, TLS, or in memory)
//! and hands the outcome back. Nothing here blocks or opens a socket.
//!
//! - [`Redemption`]: redeem this claim at this URL, trusting this CA, with
//!   this request. From [`Site::create_link`](crate::site::Site::create_link),
//!   [`Site::redeem_link`](crate::site::Site::redeem_link) and
//!   [`Site::process_links`](crate::site::Site::process_links); the answer
//!   goes to [`Site::handle_redemption`](crate::site::Site::handle_redemption).
//! - [`Dial`]: connect this link to this endpoint with these credentials
//!   and run a [`Connection`] on it. From
//!   [`Site::dial_link`](crate::site::Site::dial_link) and
//!   [`Site::process_links`](crate::site::Site::process_links); what happens
//!   goes to [`Site::handle_dial`](crate::site::Site::handle_dial),
//!   [`Site::handle_link_closed`](crate::site::Site::handle_link_closed) and
//!   [`Site::handle_revoke_notice`](crate::site::Site::handle_revoke_notice).
//!
//! Both are owned (`'static`, `Send`, `Clone`), so an async caller can move
//! them into a task, and independent: a caller may run every action of one
//! [`Site::process_links`](crate::site::Site::process_links) at once, so
//! one slow peer stalls no other link.

use std::fmt;

use time::OffsetDateTime;

use crate::claim::RedeemRequest;
use crate::link::{self, LinkInstance, LinkRecord, TransitionError};
use crate::protocol::printable::{printable, printable_text};
use crate::protocol::{CloseReason, Connection, LocalSite, NoticeError, Timing};
use crate::site::{LinkError, SiteMode};
use crate::token::{CertToken, Endpoint};
use crate::transport::TransportError;
use crate::v2::GrantRequest;

/// A claim redemption the site needs done: POST `request` to `url`
/// (`https://host:port/<claim>`), trusting only `ca_pem` for the server.
/// Give the answer to
/// [`Site::handle_redemption`](crate::site::Site::handle_redemption).
///
/// It holds the claim's password: its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Redemption {
    /// The link the claim is for.
    pub link: String,
    /// The claims server's URL, from the claim token.
    pub url: String,
    /// The issuing site's CA certificate, PEM: the only one to trust.
    pub ca_pem: String,
    /// What to send.
    pub request: RedeemRequest,
    /// The site the claim token is from: the cert token that comes back
    /// must be from it too.
    pub remote_site_id: String,
    /// Whether the link was made by this redemption's
    /// [`Site::create_link`](crate::site::Site::create_link): if it fails,
    /// the link is deleted again (a link that was never made leaves
    /// nothing behind). Otherwise a failure leaves it
    /// [`LinkState::Failed`](crate::link::LinkState::Failed).
    pub new_link: bool,
}

impl fmt::Debug for Redemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redemption")
            .field("link", &self.link)
            .field("url", &self.url)
            .field("request", &self.request)
            .field("remote_site_id", &self.remote_site_id)
            .field("new_link", &self.new_link)
            .finish_non_exhaustive()
    }
}

/// A link the site wants connected: open a TLS connection to `endpoint`
/// with the client certificate in `credentials`, trusting only their CA,
/// then run [`Dial::connection`] over it. Report with
/// [`Site::handle_dial`](crate::site::Site::handle_dial) (the connection
/// could not be made, or [`Event::Connected`](crate::protocol::Event)),
/// [`Site::handle_link_closed`](crate::site::Site::handle_link_closed) and
/// [`Site::handle_revoke_notice`](crate::site::Site::handle_revoke_notice).
///
/// Every report lands only while the link is still the instance dialed
/// ([`LinkInstance::is_of`]): a dial for a link that was made again or
/// given new credentials meanwhile is answered with
/// [`LinkError::LinkReplaced`] and changes nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Dial {
    /// The link name on the dialing site.
    pub link: String,
    /// The dialing site.
    pub local: LocalSite,
    /// The site the link's token is from: the listener must be it.
    pub remote_site_id: String,
    /// Where to connect.
    pub endpoint: Endpoint,
    /// The client certificate, its key and the CA to trust.
    pub credentials: CertToken,
    /// The link instance dialed, to tell a replaced link.
    pub(crate) held: LinkInstance,
}

impl Dial {
    /// What dialing `link` of the site `local` (in `mode`) takes: its
    /// endpoint (the edge one from an edge site) and credentials. A link
    /// without credentials cannot be dialed ([`TransitionError`] with
    /// [`link::NO_CREDENTIALS`]).
    ///
    /// Unlike [`Site::dial_link`](crate::site::Site::dial_link) this does
    /// not refuse a revoked link: a runtime that keeps such a link's
    /// dialer (at the longest wait, [`crate::protocol::Redial`]) dials it,
    /// the listener refuses it, and the link stays revoked.
    pub fn for_link(
        link: &LinkRecord,
        local: LocalSite,
        mode: SiteMode,
    ) -> Result<Dial, LinkError> {
        let (Some(cert), Some(held)) = (link.cert_token()?, link.dial_instance()) else {
            return Err(TransitionError {
                link: link.name.clone(),
                from: link.state().label(),
                to: "connected",
                reason: link::NO_CREDENTIALS,
            }
            .into());
        };
        Ok(Dial {
            link: link.name.clone(),
            local,
            remote_site_id: link.remote_site_id.clone(),
            endpoint: link::dial_endpoint(&cert, mode == SiteMode::Edge).clone(),
            credentials: cert,
            held,
        })
    }

    /// Why this dial failed, as the link's state reason: `peer unreachable:
    /// ...`, `TLS handshake failed: ...`, `certificate rejected by the
    /// remote site: ...`. The reasons name the address (the driver's
    /// [`TransportError`] says which of the endpoint's addresses failed
    /// how).
    pub fn failure_reason(&self, error: &TransportError) -> String {
        match error {
            TransportError::Unreachable { reason } => format!("peer unreachable: {reason}"),
            TransportError::Handshake { reason } => format!("TLS handshake failed: {reason}"),
            TransportError::Rejected { reason } => {
                format!("certificate rejected by the remote site: {reason}")
            }
            other => format!("{}: {other}", self.endpoint),
        }
    }

    /// Why a connection of this dial ended, as the link's state reason
    /// (see [`LinkClosed`]).
    pub fn closed_reason(&self, closed: &LinkClosed) -> String {
        if let Some(e) = &closed.transport {
            return self.failure_reason(e);
        }
        let at = &closed.peer;
        let Some(name) = &closed.remote_site_name else {
            // It ended before the remote site accepted the link.
            return match &closed.reason {
                CloseReason::Refused { reason } => {
                    format!("certificate rejected by the remote site: {reason} ({at})")
                }
                CloseReason::WrongSite { expected, actual } => format!(
                    "the site at {at} is {actual}, not {expected} (the site this link's token is from)"
                ),
                CloseReason::SetupTimeout { after } => format!(
                    "no answer from {at} within {} after the TLS handshake",
                    rounded(*after)
                ),
                CloseReason::PeerClosed | CloseReason::Bye { .. } => format!(
                    "link refused by the remote site: {at} closed the connection before accepting the link"
                ),
                CloseReason::Protocol { reason } => format!(
                    "the remote side at {at} does not speak this link protocol: {reason}"
                ),
                CloseReason::Transport { reason } => {
                    format!("connection to {at} lost during link setup: {reason}")
                }
                other => format!("connection to {at} ended during link setup: {other}"),
            };
        };
        let peer = format!("{at} (site {})", printable(name));
        match &closed.reason {
            CloseReason::Dead { silent } => format!(
                "heartbeat timeout: no answer from {peer} for {}",
                rounded(*silent)
            ),
            CloseReason::PeerClosed => {
                format!("the connection to {peer} was closed by the remote site")
            }
            CloseReason::Bye { reason } => format!(
                "the remote site {peer} closed the link: {}",
                printable_text(reason)
            ),
            CloseReason::Transport { reason } => format!("connection to {peer} lost: {reason}"),
            CloseReason::Local { .. } => {
                format!("the connection to {peer} was closed by this site")
            }
            other => format!("{peer}: {other}"),
        }
    }

    /// The link protocol's dialing side for this link, to start once the
    /// TLS handshake is done: it sends the hello at once.
    pub fn connection(&self, now: OffsetDateTime, timing: Timing) -> Connection {
        Connection::dial(
            now,
            self.local.clone(),
            self.link.clone(),
            self.remote_site_id.clone(),
            timing,
        )
    }

    /// The link instance this dial is for: a report lands only while the
    /// link is still it ([`LinkInstance::is_of`]).
    pub fn instance(&self) -> &LinkInstance {
        &self.held
    }
}

/// A duration for a reason text: whole seconds from one second on (a live
/// clock says 3.004 s where 3 s were allowed), milliseconds below.
fn rounded(d: time::Duration) -> time::Duration {
    if d >= time::Duration::SECOND {
        time::Duration::seconds(d.whole_seconds())
    } else {
        time::Duration::milliseconds(d.whole_milliseconds().try_into().unwrap_or(i64::MAX))
    }
}

/// How a connection of a [`Dial`] ended, for
/// [`Site::handle_link_closed`](crate::site::Site::handle_link_closed):
/// the link's reason says where it was connected, whether the remote site
/// had accepted the link, and why it ended
/// ([`Dial::closed_reason`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClosed {
    /// The address the connection was made to (`10.0.0.1:55671`, or the
    /// endpoint when there is nothing more precise).
    pub peer: String,
    /// The remote site's name from its answer
    /// ([`Event::Connected`](crate::protocol::Event::Connected)); `None`
    /// when it ended before the remote site accepted the link.
    pub remote_site_name: Option<String>,
    /// Why the connection ended ([`Event::Closed`](crate::protocol::Event::Closed)).
    pub reason: CloseReason,
    /// What broke the connection under the link, when that says more than
    /// `reason`: with TLS 1.3 the listener checks the dialer's certificate
    /// after the dialer's handshake is done, so its refusal (an alert)
    /// arrives on the connection ([`TransportError::Rejected`]).
    pub transport: Option<TransportError>,
}

impl LinkClosed {
    /// A connection to `peer` that ended for `reason`.
    pub fn new(peer: impl Into<String>, reason: CloseReason) -> LinkClosed {
        LinkClosed {
            peer: peer.into(),
            remote_site_name: None,
            reason,
            transport: None,
        }
    }

    /// The remote site (`name`) had accepted the link.
    pub fn after_connected(mut self, remote_site_name: impl Into<String>) -> LinkClosed {
        self.remote_site_name = Some(remote_site_name.into());
        self
    }

    /// `error` broke the connection under the link.
    pub fn broken_by(mut self, error: TransportError) -> LinkClosed {
        self.transport = Some(error);
        self
    }
}

impl fmt::Debug for Dial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dial")
            .field("link", &self.link)
            .field("site_id", &self.local.site_id)
            .field("remote_site_id", &self.remote_site_id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// A Skupper 2.x AccessToken redemption the site needs done: send
/// `request` as it says ([`GrantRequest`]: POST, its headers and body,
/// trusting only its CA) and give the HTTP status and body of the answer
/// to [`Site::handle_grant_redemption`](crate::site::Site::handle_grant_redemption).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRedeem {
    /// The link the AccessToken is for.
    pub link: String,
    /// What to send, and how to read the answer.
    pub request: GrantRequest,
    /// Whether the link was made by this redemption's
    /// [`Site::create_link`](crate::site::Site::create_link): if it fails,
    /// the link is deleted again. Otherwise a failure leaves it
    /// [`LinkState::Failed`](crate::link::LinkState::Failed).
    pub new_link: bool,
}

/// What [`Site::create_link`](crate::site::Site::create_link) made: the
/// link, and for a claim token or an AccessToken the redemption to do
/// before it can connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedLink {
    /// The link as stored: pending (claim token, AccessToken) or connecting
    /// (cert token, Link file).
    pub link: LinkRecord,
    /// For a claim token: redeem it, then give the answer to
    /// [`Site::handle_redemption`](crate::site::Site::handle_redemption).
    pub redemption: Option<Redemption>,
    /// For a Skupper 2.x AccessToken: redeem it, then give the answer to
    /// [`Site::handle_grant_redemption`](crate::site::Site::handle_grant_redemption).
    pub grant_redemption: Option<GrantRedeem>,
    /// For a Skupper 2.x Link file with several Links (one per endpoint
    /// group of the remote site): the links made for the Links after the
    /// first, named `<name>-2`, `<name>-3`, ...
    pub more: Vec<LinkRecord>,
}

/// What a running site does next for one outgoing link
/// ([`Site::process_links`](crate::site::Site::process_links)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkAction {
    /// Redeem the link's claim (pending, or failed in a way worth trying
    /// again).
    Redeem(Redemption),
    /// Make sure the link is connected: a driver that holds a live
    /// connection for it with the same credentials keeps it; otherwise it
    /// dials.
    Dial(Dial),
}

impl LinkAction {
    /// The link the action is for.
    pub fn link(&self) -> &str {
        match self {
            LinkAction::Redeem(r) => &r.link,
            LinkAction::Dial(d) => &d.link,
        }
    }
}

/// Why a revocation notice changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoticeRejected {
    /// The notice is not genuine (or not for this link): ignore it and keep
    /// the connection.
    #[error("revocation notice for link {link:?} ignored: {source}")]
    NotGenuine {
        /// The link.
        link: String,
        /// What is wrong with it.
        source: NoticeError,
    },
    /// The link's certificate cannot be read, so no notice can be checked
    /// against it.
    #[error("the certificate of link {link:?} cannot be read: {reason}")]
    OwnCertificate {
        /// The link.
        link: String,
        /// Why.
        reason: String,
    },
    /// The site could not record the revocation.
    #[error(transparent)]
    Site(#[from] LinkError),
}
