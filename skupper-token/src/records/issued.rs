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
    /// Redeeming this Skupper 2.x access grant.
    Grant {
        /// The grant's name.
        name: String,
        /// The grant's id (the last part of its AccessToken's URL).
        grant: String,
    },
    /// A Skupper 2.x Link file (`link generate`).
    LinkFile {
        /// The Secret's name (the file's `tlsCredentials`).
        name: String,
    },
}

/// A certificate this site's CA issued (kept to revoke one peer).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IssuedRecord {
    /// Serial number, uppercase hex (the record's name).
    pub serial: String,
    /// Common name: the redeeming site's id, or the cert token's (or link
    /// file's) name.
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

/// A certificate issued by redeeming a claim, as the claim's record (or an
/// [`IssuedBatch`]) keeps it: the use it spent and this entry are written
/// together, in one store write.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IssuedCert {
    /// Serial number, uppercase hex.
    pub serial: String,
    /// Common name: the id of the site that redeemed the claim.
    pub common_name: String,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

impl IssuedCert {
    /// This certificate as an [`IssuedRecord`] of claim `claim`, issued by
    /// CA generation `ca_generation`.
    pub fn to_record(&self, claim: &str, ca_generation: u32) -> IssuedRecord {
        IssuedRecord {
            serial: self.serial.clone(),
            common_name: self.common_name.clone(),
            via: IssuedVia::Claim {
                name: claim.to_owned(),
            },
            ca_generation,
            issued_at: self.issued_at,
            not_after: self.not_after,
        }
    }
}

/// Certificates issued by redeeming one claim (or one grant), moved out of
/// its record once it held [`CLAIM_ISSUED_KEPT`] of them, so that the claim
/// record of a claim with many uses stays small. Stored under the serial of
/// its first certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IssuedBatch {
    /// The claim redeemed (or, when [`Self::grant`] is set, the grant's
    /// name).
    pub claim: String,
    /// When the certificates were issued by redeeming a Skupper 2.x grant:
    /// its id. Batches from before grants have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// The CA generation that issued them (the claim's).
    pub ca_generation: u32,
    /// The certificates, in the order they were issued.
    pub certs: Vec<IssuedCert>,
}

impl IssuedBatch {
    /// The store name of this batch: the serial of its first certificate
    /// (`None` for an empty batch, which is never stored).
    pub fn name(&self) -> Option<&str> {
        self.certs.first().map(|c| c.serial.as_str())
    }

    /// The certificates as [`IssuedRecord`]s.
    pub fn records(&self) -> impl Iterator<Item = IssuedRecord> + '_ {
        self.certs.iter().map(|c| {
            let mut record = c.to_record(&self.claim, self.ca_generation);
            if let Some(grant) = &self.grant {
                record.via = IssuedVia::Grant {
                    name: self.claim.clone(),
                    grant: grant.clone(),
                };
            }
            record
        })
    }
}

/// How many issued certificates a claim record keeps before the redemption
/// that would add one more first moves them to an [`IssuedBatch`]: a claim
/// of up to this many uses (every default claim: one use) costs exactly one
/// store write per redemption, a claim of more uses one more write every
/// this many redemptions.
pub const CLAIM_ISSUED_KEPT: usize = 32;
