//! What the link runtime reports: one [`LinkEvent`] per thing that happened,
//! each a log line through `Display`. No event holds key material or a
//! password; strings a peer sent are quoted and escaped.

use std::fmt;
use std::net::SocketAddr;

use crate::admission::Full;
use skupper_token::protocol::printable::printable;

/// Which port a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerKind {
    /// The inter-router port (interior sites link here).
    InterRouter,
    /// The edge port (edge sites link here).
    Edge,
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenerKind::InterRouter => "inter-router",
            ListenerKind::Edge => "edge",
        })
    }
}

/// Something the link runtime did or saw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// A listener is up.
    Listening {
        /// Which port.
        listener: ListenerKind,
        /// The address bound.
        addr: SocketAddr,
    },
    /// Another site's link was authenticated and accepted.
    IncomingAccepted {
        /// Which port.
        listener: ListenerKind,
        /// The connection's address.
        remote: SocketAddr,
        /// The remote site's id (from its hello).
        peer_site_id: String,
        /// The remote site's name (from its hello).
        peer_site_name: String,
        /// The remote site's name for the link.
        link: String,
        /// The certificate's common name.
        certificate_cn: String,
        /// The certificate's serial number.
        certificate_serial: String,
    },
    /// A connection was refused: its certificate (the reason says why), its
    /// hello, or the TLS handshake.
    IncomingRefused {
        /// Which port.
        listener: ListenerKind,
        /// The connection's address.
        remote: SocketAddr,
        /// Why.
        reason: String,
    },
    /// An accepted link closed.
    IncomingClosed {
        /// The connection's address.
        remote: SocketAddr,
        /// The remote site's id.
        peer_site_id: String,
        /// The remote site's name.
        peer_site_name: String,
        /// The remote site's name for the link.
        link: String,
        /// Why.
        reason: String,
    },
    /// A connection was closed at once: a cap was reached and every open
    /// connection was linked.
    Busy {
        /// Which port.
        listener: ListenerKind,
        /// The connection's address.
        remote: SocketAddr,
        /// Which cap.
        full: Full,
    },
    /// An outgoing link connected (the remote site accepted it).
    LinkConnected {
        /// The link name.
        link: String,
        /// The remote site's id.
        remote_site_id: String,
        /// The remote site's name (from its answer).
        remote_site_name: String,
        /// Where.
        target: String,
    },
    /// An outgoing link is not connected (first failure, a lost
    /// connection, or a new reason).
    LinkDisconnected {
        /// The link name.
        link: String,
        /// Why (the reason `link status` shows).
        reason: String,
    },
    /// This site started dialing a link (new link, or at start).
    DialerStarted {
        /// The link name.
        link: String,
        /// Where it goes.
        target: String,
    },
    /// This site stopped dialing a link.
    DialerStopped {
        /// The link name.
        link: String,
        /// Why (deleted, made again or new credentials, stopping).
        reason: String,
    },
    /// A signed revocation notice was sent to a linked site, and its
    /// connection closed.
    RevocationSent {
        /// The remote site's id.
        peer_site_id: String,
        /// The remote site's name.
        peer_site_name: String,
        /// The remote site's name for the link.
        link: String,
        /// What was revoked.
        what: String,
    },
    /// A linked site's connection no longer authenticates and was closed
    /// without a notice (no key to sign one, or not a revocation: for
    /// example its certificate expired).
    IncomingRevoked {
        /// The remote site's id.
        peer_site_id: String,
        /// The remote site's name.
        peer_site_name: String,
        /// The remote site's name for the link.
        link: String,
        /// Why.
        reason: String,
    },
    /// A verified revocation notice arrived on an outgoing link.
    RevocationReceived {
        /// The link name.
        link: String,
        /// The link's new reason (`access revoked by ...`).
        reason: String,
    },
    /// A revocation notice that cannot be verified arrived; it was ignored.
    RevocationIgnored {
        /// The link name.
        link: String,
        /// Why it was not trusted.
        reason: String,
    },
    /// The site's CA changed (revoke-access): new handshakes present the new
    /// server certificate.
    CaChanged {
        /// The new CA generation.
        ca_generation: u32,
    },
    /// Something failed that the runtime works around (store errors,
    /// accept errors).
    Error {
        /// What was being done.
        context: String,
        /// What happened.
        reason: String,
    },
}

impl LinkEvent {
    /// What this event repeats when it is one of many alike, for a log that
    /// counts repeats instead of printing each ([`crate::log_summary`]):
    /// refused connections, a full listener, errors the runtime works
    /// around (by what was being done). `None` for every link event
    /// (accepted, closed, connected, revoked...): always its own line.
    pub fn cause(&self) -> Option<String> {
        match self {
            LinkEvent::IncomingRefused { listener, .. } => {
                Some(format!("links: connection on the {listener} port refused"))
            }
            LinkEvent::Busy { listener, .. } => Some(format!(
                "links: connection on the {listener} port refused, too many open"
            )),
            LinkEvent::Error { context, .. } => Some(format!("links: {context}")),
            _ => None,
        }
    }
}

impl fmt::Display for LinkEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkEvent::Listening { listener, addr } => {
                write!(f, "listening for links on the {listener} port at {addr}")
            }
            LinkEvent::IncomingAccepted {
                listener,
                remote,
                peer_site_id,
                peer_site_name,
                link,
                certificate_cn,
                certificate_serial,
            } => write!(
                f,
                "incoming link {} from site {} (id {}) accepted on the {listener} port from {remote}: certificate CN={} serial {certificate_serial}",
                printable(link),
                printable(peer_site_name),
                printable(peer_site_id),
                printable(certificate_cn),
            ),
            LinkEvent::IncomingRefused {
                listener,
                remote,
                reason,
            } => write!(
                f,
                "incoming connection from {remote} on the {listener} port refused: {reason}"
            ),
            LinkEvent::IncomingClosed {
                remote,
                peer_site_id,
                peer_site_name,
                link,
                reason,
            } => write!(
                f,
                "incoming link {} from site {} (id {}, {remote}) closed: {reason}",
                printable(link),
                printable(peer_site_name),
                printable(peer_site_id),
            ),
            LinkEvent::Busy {
                listener,
                remote,
                full,
            } => write!(
                f,
                "connection from {remote} on the {listener} port refused: {full}"
            ),
            LinkEvent::LinkConnected {
                link,
                remote_site_id,
                remote_site_name,
                target,
            } => write!(
                f,
                "link {link} connected to site {} (id {}) at {target}",
                printable(remote_site_name),
                printable(remote_site_id),
            ),
            LinkEvent::LinkDisconnected { link, reason } => {
                write!(f, "link {link} not connected: {reason}")
            }
            LinkEvent::DialerStarted { link, target } => {
                write!(f, "link {link}: dialing {target}")
            }
            LinkEvent::DialerStopped { link, reason } => {
                write!(f, "link {link}: stopped dialing: {reason}")
            }
            LinkEvent::RevocationSent {
                peer_site_id,
                peer_site_name,
                link,
                what,
            } => write!(
                f,
                "revocation notice sent to site {} (id {}) on its link {}: {what}; connection closed",
                printable(peer_site_name),
                printable(peer_site_id),
                printable(link),
            ),
            LinkEvent::IncomingRevoked {
                peer_site_id,
                peer_site_name,
                link,
                reason,
            } => write!(
                f,
                "incoming link {} from site {} (id {}) closed: its certificate no longer authenticates: {reason}",
                printable(link),
                printable(peer_site_name),
                printable(peer_site_id),
            ),
            LinkEvent::RevocationReceived { link, reason } => {
                write!(f, "link {link}: revocation notice received: {reason}")
            }
            LinkEvent::RevocationIgnored { link, reason } => write!(
                f,
                "link {link}: ignored a revocation notice that cannot be verified: {reason}"
            ),
            LinkEvent::CaChanged { ca_generation } => write!(
                f,
                "the site CA changed (generation {ca_generation}): new connections get the new server certificate; links authenticated by the old CA are being closed"
            ),
            LinkEvent::Error { context, reason } => write!(f, "{context}: {reason}"),
        }
    }
}
