//! What goes wrong with keys and certificates: [`PkiError`] when one cannot
//! be made, loaded or read, [`AuthError`] when a peer's certificate is
//! refused.

use time::{Duration, OffsetDateTime, UtcOffset};

/// Why a key or certificate could not be made, loaded or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The requested validity is zero or negative.
    #[error("certificate validity must be positive, got {validity}")]
    InvalidValidity {
        /// The validity that was asked for.
        validity: Duration,
    },
    /// `now + validity` does not fit in an X.509 date (year 9999 at most).
    #[error("certificate validity {validity} from {} ends after the year 9999: choose a shorter validity", rfc3339(.now))]
    ValidityOutOfRange {
        /// The start of the validity.
        now: OffsetDateTime,
        /// The requested validity.
        validity: Duration,
    },
    /// A certificate's common name (the site name for client certificates)
    /// was empty.
    #[error("the certificate common name must not be empty (it names the site)")]
    EmptyCommonName,
    /// A host name given for a server certificate cannot go into a
    /// certificate.
    #[error("host {host:?} cannot be put in a certificate: {reason}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No usable PEM block was found.
    #[error("no valid PEM {label} block: {reason}")]
    Pem {
        /// The PEM label that was looked for (`CERTIFICATE`, `PRIVATE KEY`).
        label: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A certificate could not be parsed.
    #[error("certificate cannot be parsed: {reason}")]
    Certificate {
        /// The parser's complaint.
        reason: String,
    },
    /// A private key could not be parsed.
    #[error("private key cannot be parsed: {reason}")]
    Key {
        /// What was wrong (never includes key material).
        reason: String,
    },
    /// A key of an algorithm that cannot be used for this purpose.
    #[error("{algorithm} keys are not supported {purpose}")]
    UnsupportedKey {
        /// The key algorithm seen, e.g. `RSA 2048`.
        algorithm: String,
        /// What it was to be used for, e.g. `for a site CA (only ECDSA P-256 can issue certificates here)`.
        purpose: &'static str,
    },
    /// The private key does not belong to the certificate.
    #[error(
        "the private key does not match the certificate {subject:?} (their public keys differ)"
    )]
    KeyMismatch {
        /// Subject of the certificate.
        subject: String,
    },
    /// A certificate used as a CA is not one.
    #[error("certificate {subject:?} cannot be used as a CA: {reason}")]
    NotACa {
        /// Subject of the certificate.
        subject: String,
        /// What is missing.
        reason: String,
    },
    /// The injected random generator kept returning unusable values.
    #[error(
        "the random generator returned {draws} unusable values in a row for a {what}: it is broken"
    )]
    BadRandom {
        /// What was being drawn (`private key`, `serial number`).
        what: &'static str,
        /// How many draws were tried.
        draws: usize,
    },
    /// Building the certificate failed (an internal error of the encoder).
    #[error("certificate could not be encoded: {reason}")]
    Encoding {
        /// The encoder's complaint.
        reason: String,
    },
}

/// Why a peer's certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The peer presented no certificate.
    #[error("no client certificate was presented: a linking site must present the certificate from its token")]
    EmptyChain,
    /// The certificate is not valid DER or breaks X.509 rules.
    #[error("peer certificate is malformed: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The certificate was not issued by this site's current CA. This is what
    /// certificates issued before a revoke-access give.
    #[error("certificate for {common_name:?} was issued by {issuer:?}, which is not this site's current CA (certificates from before access to the site was revoked no longer work; a new token is needed)")]
    UnknownIssuer {
        /// The certificate's common name.
        common_name: String,
        /// The issuer named in the certificate (and, when the name matches
        /// but the key does not, the key identifier).
        issuer: String,
    },
    /// The signature does not verify against this site's CA key.
    #[error("certificate for {common_name:?} has a signature that does not verify against this site's CA (altered, or issued by another CA with the same name)")]
    BadSignature {
        /// The certificate's common name.
        common_name: String,
    },
    /// The certificate is signed with an algorithm this verifier does not
    /// support for the CA's key.
    #[error("certificate for {common_name:?} is signed with algorithm {oid}, which is not supported with this site's {ca_key} CA key")]
    UnsupportedAlgorithm {
        /// The certificate's common name.
        common_name: String,
        /// The signature algorithm OID (dotted).
        oid: String,
        /// The CA key type, e.g. `ECDSA P-256`.
        ca_key: &'static str,
    },
    /// The certificate's validity has not started.
    #[error("certificate for {common_name:?} is not valid before {} (now {}): check the clocks of both sites", rfc3339(.not_before), rfc3339(.now))]
    NotYetValid {
        /// The certificate's common name.
        common_name: String,
        /// Start of validity.
        not_before: OffsetDateTime,
        /// The time of the check.
        now: OffsetDateTime,
    },
    /// The certificate has expired.
    #[error("certificate for {common_name:?} expired at {} (now {}): get a new token", rfc3339(.not_after), rfc3339(.now))]
    Expired {
        /// The certificate's common name.
        common_name: String,
        /// End of validity.
        not_after: OffsetDateTime,
        /// The time of the check.
        now: OffsetDateTime,
    },
    /// This site's own CA is not valid at the time of the check.
    #[error("this site's CA is valid from {} to {}, not at {}: it authenticates no one until the site has a new CA (revoking access makes one)", rfc3339(.not_before), rfc3339(.not_after), rfc3339(.now))]
    CaNotValid {
        /// Start of the CA's validity.
        not_before: OffsetDateTime,
        /// End of the CA's validity.
        not_after: OffsetDateTime,
        /// The time of the check.
        now: OffsetDateTime,
    },
    /// The certificate has an extended key usage that excludes client
    /// authentication.
    #[error("certificate for {common_name:?} is not allowed for TLS client authentication (its extended key usage lacks clientAuth)")]
    NotClientAuth {
        /// The certificate's common name.
        common_name: String,
    },
    /// A CA certificate was presented as a client certificate.
    #[error("certificate for {common_name:?} is a CA certificate (basicConstraints CA:TRUE) and cannot be used to link")]
    IsCa {
        /// The certificate's common name.
        common_name: String,
    },
    /// This site accepts no links (an edge site has no CA).
    #[error("this site accepts no incoming links (it is an edge site and has no CA); link to it from an interior site instead")]
    NotAccepting,
    /// Access was revoked for this certificate or site (checked outside this
    /// module, against the site's revocation lists).
    #[error("certificate for {common_name:?} is revoked: {reason}")]
    Revoked {
        /// The certificate's common name.
        common_name: String,
        /// Why (which list, since when).
        reason: String,
    },
    /// The certificate was issued for redeeming a claim, and so belongs to
    /// the site that redeemed it, but the connecting site says it is
    /// another site.
    #[error("certificate from claim {claim:?} belongs to site {common_name}, but the connecting site says it is {claimed_site_id:?}: a claim's certificate links only the site that redeemed it")]
    WrongSite {
        /// The claim the certificate was issued for.
        claim: String,
        /// The certificate's common name: the id of the site that redeemed
        /// the claim.
        common_name: String,
        /// The site id the connecting site gave.
        claimed_site_id: String,
    },
}

/// A time as messages show it: RFC 3339, UTC, whole seconds.
pub(super) fn rfc3339(t: &OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC).truncate_to_second();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_messages_are_rfc3339_utc_seconds() {
        let t = time::macros::datetime!(2026-01-01 01:00:00.5 +01:00);
        assert_eq!(rfc3339(&t), "2026-01-01T00:00:00Z");
    }
}
