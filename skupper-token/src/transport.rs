//! How a call to another site failed.
//!
//! The core never opens a socket: it says what must be done
//! ([`crate::link_ops`]) and whoever does it (the CLI crate over HTTPS and
//! mutual TLS, [`crate::harness::Network`] in memory) reports a failure as
//! a [`TransportError`].

/// Why a remote call (a claim redemption, a dial) failed.
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
    /// Whether trying again later may succeed: the peer could not be
    /// reached, or answered that it is busy or failing (5xx). An answer that
    /// refuses the claim (400, 403 wrong password, 404 no such claim,
    /// expired or used up), a TLS handshake that failed (the site's
    /// certificate is not from the token's CA: it revoked access since) and
    /// anything else the peer said are final: the same request would be
    /// refused again.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Refused { status, .. } => status_is_retryable(*status),
            TransportError::Unreachable { .. } => true,
            TransportError::Handshake { .. }
            | TransportError::Rejected { .. }
            | TransportError::Protocol { .. } => false,
        }
    }
}

/// Whether a claims server's answer with HTTP `status` is worth trying
/// again: only 5xx (busy, failing). 4xx answers refuse the request itself.
pub fn status_is_retryable(status: u16) -> bool {
    status >= 500
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreachable_busy_or_failing_site_is_worth_trying_again() {
        let refused = |status| TransportError::Refused {
            status,
            body: String::new(),
        };
        for status in [400, 403, 404, 405, 431] {
            assert!(!refused(status).is_retryable(), "{status}");
        }
        for status in [500, 502, 503] {
            assert!(refused(status).is_retryable(), "{status}");
        }
        let reason = String::new;
        assert!(TransportError::Unreachable { reason: reason() }.is_retryable());
        assert!(!TransportError::Handshake { reason: reason() }.is_retryable());
        assert!(!TransportError::Rejected { reason: reason() }.is_retryable());
        assert!(!TransportError::Protocol { reason: reason() }.is_retryable());
    }
}
