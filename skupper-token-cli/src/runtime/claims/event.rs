//! What the claims server did, for a one-line log ([`ServerEvent`]), and
//! which events are repeats of one cause ([`ServerEvent::cause`], for
//! [`crate::log_summary`]).

use std::fmt;
use std::net::SocketAddr;

use skupper_token::claim::{RedeemError, RedeemRequest};
use skupper_token::pki::{certificate_info, pem_to_der};
use skupper_token::token::CertToken;
use skupper_token::v2::{GrantError, GrantRedemption, LinkFile};

use crate::admission::Full;

/// Something the server did, for a one-line log. `Display` gives the line;
/// no event ever holds a password or a key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A request was answered.
    Answered {
        /// The client's address.
        peer: SocketAddr,
        /// The `skupper-site-name` header (the redeeming site's id), as
        /// sent.
        site: Option<String>,
        /// The claim asked for (the URL path), when the request had one.
        claim: Option<String>,
        /// The HTTP status sent.
        status: u16,
        /// What happened: for a redemption the outcome with the reason, for
        /// other answers the body sent.
        detail: String,
    },
    /// A connection closed without an answer: the TLS handshake failed,
    /// the client sent nothing useful in time, or it went away.
    Dropped {
        /// The client's address.
        peer: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A connection was closed at once: a cap was reached and every open
    /// connection was being answered.
    Busy {
        /// The client's address.
        peer: SocketAddr,
        /// Which cap.
        full: Full,
    },
    /// The site's certificate could not be loaded for a handshake (the
    /// handshake fails).
    CertificateUnavailable {
        /// Why.
        reason: String,
    },
    /// Accepting connections failed (the server goes on).
    AcceptFailed {
        /// The OS error.
        reason: String,
    },
}

impl fmt::Display for ServerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerEvent::Answered {
                peer,
                site,
                claim,
                status,
                detail,
            } => {
                // `{:?}` quotes and escapes what the client sent, so a
                // header cannot forge log lines.
                match claim {
                    Some(c) => write!(f, "claim {c:?}")?,
                    None => f.write_str("request")?,
                }
                match site {
                    Some(s) => write!(f, " from site {s:?} ({peer})")?,
                    None => write!(f, " from {peer}")?,
                }
                write!(f, ": {status} {}", detail.trim_end())
            }
            ServerEvent::Dropped { peer, reason } => {
                write!(
                    f,
                    "connection from {peer} closed without an answer: {reason}"
                )
            }
            ServerEvent::Busy { peer, full } => {
                write!(f, "connection from {peer} refused: {full}")
            }
            ServerEvent::CertificateUnavailable { reason } => {
                write!(f, "no server certificate for a TLS handshake: {reason}")
            }
            ServerEvent::AcceptFailed { reason } => {
                write!(f, "accepting a connection failed: {reason}")
            }
        }
    }
}

impl ServerEvent {
    /// What this event repeats when it is one of many alike, for a log that
    /// counts repeats instead of printing each ([`crate::log_summary`]):
    /// refusals, connections closed without an answer, a full server.
    /// `None` for what is always worth its own line: a redemption that
    /// succeeded, and the server's own errors (5xx).
    pub fn cause(&self) -> Option<String> {
        match self {
            ServerEvent::Answered { status, .. } => match status {
                200 | 500.. => None,
                403 => Some("claims: refused, wrong password (403)".into()),
                404 => Some("claims: refused, no such claim (404)".into()),
                other => Some(format!("claims: refused request ({other})")),
            },
            ServerEvent::Dropped { .. } => {
                Some("claims: connection closed without an answer".into())
            }
            ServerEvent::Busy { .. } => Some("claims: connection refused, server full".into()),
            ServerEvent::CertificateUnavailable { .. } => {
                Some("claims: no server certificate for a handshake".into())
            }
            ServerEvent::AcceptFailed { .. } => {
                Some("claims: accepting a connection failed".into())
            }
        }
    }
}

/// The outcome of a redemption for [`ServerEvent::Answered::detail`]:
/// `redeemed: certificate serial 0a1b... issued to "east-id"`, or
/// `refused: ` and the reason.
pub(crate) fn outcome(request: &RedeemRequest, result: &Result<CertToken, RedeemError>) -> String {
    match result {
        Ok(token) => {
            let serial = pem_to_der(&token.cert_pem)
                .and_then(|der| certificate_info(&der))
                .map(|info| format!(" serial {}", info.serial_hex))
                .unwrap_or_default();
            format!(
                "redeemed: certificate{serial} issued to {:?}",
                request.site_id
            )
        }
        Err(e) => format!("refused: {e}"),
    }
}

/// The outcome of a grant redemption for [`ServerEvent::Answered::detail`]:
/// `redeemed grant: certificate serial 0a1b... issued to "east-id"`, or
/// `refused: ` and the reason.
pub(crate) fn grant_outcome(
    request: &GrantRedemption,
    result: &Result<LinkFile, GrantError>,
) -> String {
    match result {
        Ok(file) => {
            let serial = pem_to_der(&file.secret.cert_pem)
                .and_then(|der| certificate_info(&der))
                .map(|info| format!(" serial {}", info.serial_hex))
                .unwrap_or_default();
            let to = request
                .subject
                .as_deref()
                .or(request.name.as_deref())
                .unwrap_or_default();
            format!("redeemed grant: certificate{serial} issued to {to:?}")
        }
        Err(e) => format!("refused: {e}"),
    }
}
