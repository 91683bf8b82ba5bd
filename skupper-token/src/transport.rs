//! How a site reaches other sites: redeeming claims and dialing links.
//!
//! The core never opens a socket. A [`Transport`] does it: the CLI crate
//! implements it with HTTPS and mutual TLS, and
//! [`crate::harness::Network`] implements it in memory for tests.

use std::fmt;

use crate::claim::RedeemRequest;
use crate::token::{CertToken, Endpoint};

/// Why a transport operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The claims server answered with an error status.
    #[error("{}", body_text(.body))]
    Refused {
        /// The HTTP status (404 no such claim, 403 refused, 400, 5xx).
        status: u16,
        /// The response body (the server's reason).
        body: String,
    },
    /// The remote site could not be reached (no route, connection refused,
    /// timeout, or it is not running).
    #[error("{reason}")]
    Unreachable {
        /// What happened, naming the address.
        reason: String,
    },
    /// The TLS handshake failed (for example the remote site's certificate
    /// is not from the CA in the token, or it refused this site's
    /// certificate).
    #[error("{reason}")]
    Handshake {
        /// What happened.
        reason: String,
    },
    /// The remote site refused this site's certificate after the handshake
    /// (for example access was revoked).
    #[error("{reason}")]
    Rejected {
        /// The remote site's reason.
        reason: String,
    },
    /// The remote side answered something that is not the protocol.
    #[error("{reason}")]
    Protocol {
        /// What was wrong.
        reason: String,
    },
}

fn body_text(body: &str) -> &str {
    body.trim_end()
}

impl TransportError {
    /// Whether trying again later may succeed: the peer was unreachable or
    /// busy, or refused the claim with 403 or 5xx (Skupper's retry rule);
    /// 404 and 400 are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Refused { status, .. } => *status == 403 || *status >= 500,
            TransportError::Unreachable { .. } | TransportError::Handshake { .. } => true,
            TransportError::Rejected { .. } | TransportError::Protocol { .. } => false,
        }
    }
}

/// A link to dial: which link, from which site, where to, with which
/// credentials.
pub struct Dial<'a> {
    /// The link name on the dialing site.
    pub link: &'a str,
    /// The dialing site's id.
    pub site_id: &'a str,
    /// The dialing site's name.
    pub site_name: &'a str,
    /// Where to connect.
    pub endpoint: &'a Endpoint,
    /// The client certificate, its key and the CA to trust.
    pub credentials: &'a CertToken,
}

impl fmt::Debug for Dial<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dial")
            .field("link", &self.link)
            .field("site_id", &self.site_id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The network, as the core sees it.
pub trait Transport {
    /// Redeems a claim at `url` (`https://host:port/<claim>`), trusting only
    /// `ca_pem` for the server, and returns the cert token the issuing site
    /// sent back.
    fn redeem_claim(
        &self,
        url: &str,
        ca_pem: &str,
        request: &RedeemRequest,
    ) -> Result<CertToken, TransportError>;

    /// Makes sure the link described by `dial` is up: connects if it is not,
    /// or checks that the existing connection is alive. `Ok` means the remote
    /// site accepted this site's certificate and the link is up now.
    fn connect(&self, dial: &Dial<'_>) -> Result<(), TransportError>;
}

impl<T: Transport + ?Sized> Transport for &T {
    fn redeem_claim(
        &self,
        url: &str,
        ca_pem: &str,
        request: &RedeemRequest,
    ) -> Result<CertToken, TransportError> {
        (**self).redeem_claim(url, ca_pem, request)
    }
    fn connect(&self, dial: &Dial<'_>) -> Result<(), TransportError> {
        (**self).connect(dial)
    }
}
