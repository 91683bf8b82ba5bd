//! What a site remembers about the certificates its CA issued.

use time::OffsetDateTime;

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
