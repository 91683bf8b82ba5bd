//! The record of one access grant (Skupper 2.x): what the issuing site
//! keeps about an AccessToken it issued, without its code.
//!
//! The rules for making and redeeming one are in [`crate::v2::grant`];
//! this is the stored shape and the rules that only read it.

use std::fmt;

use base64::Engine as _;
use ring::hmac;
use time::OffsetDateTime;

use crate::duration::GoDuration;
use crate::records::{FailedAttempt, IssuedBatch, IssuedCert, IssuedRecord, IssuedVia};

/// The layout version of a stored grant record. Reading refuses records of
/// a later version.
pub const GRANT_RECORD_SCHEMA: u32 = 1;

/// What the issuing site keeps about one access grant.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GrantRecord {
    /// The layout version ([`GRANT_RECORD_SCHEMA`]); reading refuses later
    /// versions.
    #[serde(deserialize_with = "schema_version")]
    pub schema_version: u32,
    /// The grant id: the last part of the AccessToken's URL, a random UUID
    /// (opaque, so that it cannot be guessed from the name).
    pub id: String,
    /// The grant's name.
    pub name: String,
    /// How many redemptions the grant allows (0 = none; never made so).
    pub redemptions_allowed: u32,
    /// How many redemptions succeeded.
    pub redemptions_made: u32,
    /// The expiration window it was made with.
    pub expiration_window: GoDuration,
    /// When the grant stops being redeemable: `created_at` plus the window.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The HMAC-SHA-256 key for this grant's code tag, base64.
    pub code_key: String,
    /// HMAC-SHA-256(code_key, code), base64.
    pub code_tag: String,
    /// The CA generation the grant was made under; grants from before a
    /// revoke-access are void.
    pub ca_generation: u32,
    /// When the grant was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// How many redemption attempts this grant refused (a wrong code, or
    /// the right one after it expired or was used up), counted on a
    /// best-effort basis as for claims
    /// ([`crate::claim::ClaimRecord::failed_attempts`]).
    #[serde(default)]
    pub failed_attempts: u32,
    /// The latest refused attempt, if any (its `site` is the request's
    /// subject).
    #[serde(default)]
    pub last_failed_attempt: Option<FailedAttempt>,
    /// The certificates the latest redemptions issued, at most
    /// [`super::CLAIM_ISSUED_KEPT`] (older ones are in
    /// [`super::IssuedBatch`] records, as a claim's are). Each was written
    /// in the same store write as the redemption it spent.
    #[serde(default)]
    pub issued: Vec<IssuedCert>,
}

fn schema_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let version = <u32 as serde::Deserialize>::deserialize(d)?;
    if version == 0 || version > GRANT_RECORD_SCHEMA {
        return Err(serde::de::Error::custom(format!(
            "grant record schema version {version}; this version reads 1 to {GRANT_RECORD_SCHEMA}"
        )));
    }
    Ok(version)
}

impl fmt::Debug for GrantRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("redemptions_allowed", &self.redemptions_allowed)
            .field("redemptions_made", &self.redemptions_made)
            .field("expiration_window", &self.expiration_window)
            .field("expires_at", &self.expires_at)
            .field("ca_generation", &self.ca_generation)
            .field("created_at", &self.created_at)
            .field("failed_attempts", &self.failed_attempts)
            .field("last_failed_attempt", &self.last_failed_attempt)
            .field("issued", &self.issued)
            .finish_non_exhaustive()
    }
}

/// Whether a grant can still be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantState {
    /// It can be redeemed.
    Active,
    /// Its expiration time has passed.
    Expired,
    /// All its redemptions were made.
    UsedUp,
}

impl fmt::Display for GrantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GrantState::Active => "active",
            GrantState::Expired => "expired",
            GrantState::UsedUp => "used up",
        })
    }
}

impl GrantRecord {
    /// Whether `code` is this grant's code, compared in constant time
    /// ([`ring::hmac::verify`]). A record whose key or tag is not base64
    /// matches nothing.
    pub fn code_matches(&self, code: &[u8]) -> bool {
        let b64 = base64::engine::general_purpose::STANDARD;
        let (Ok(key), Ok(tag)) = (b64.decode(&self.code_key), b64.decode(&self.code_tag)) else {
            return false;
        };
        hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &key), code, &tag).is_ok()
    }

    /// How many redemptions are left.
    pub fn redemptions_left(&self) -> u32 {
        self.redemptions_allowed
            .saturating_sub(self.redemptions_made)
    }

    /// The grant's state at `now`: expired from `expires_at` on, used up
    /// once every allowed redemption was made.
    pub fn state(&self, now: OffsetDateTime) -> GrantState {
        if now >= self.expires_at {
            GrantState::Expired
        } else if self.redemptions_left() == 0 {
            GrantState::UsedUp
        } else {
            GrantState::Active
        }
    }

    /// This record with `count` more refused attempts, the latest `last`.
    pub fn with_failed_attempts(&self, count: u32, last: Option<&FailedAttempt>) -> GrantRecord {
        let mut next = self.clone();
        next.failed_attempts = next.failed_attempts.saturating_add(count);
        if let Some(last) = last {
            next.last_failed_attempt = Some(last.clone());
        }
        next
    }

    /// This record with `cert`, the certificate of the redemption it
    /// spends, recorded (see [`GrantRecord::issued`]).
    pub fn redeemed(&self, cert: IssuedCert) -> GrantRecord {
        let mut next = self.clone();
        next.issued.push(cert);
        next
    }

    /// The certificates this record holds, as [`IssuedRecord`]s.
    pub fn issued_records(&self) -> impl Iterator<Item = IssuedRecord> + '_ {
        self.issued.iter().map(|c| IssuedRecord {
            serial: c.serial.clone(),
            common_name: c.common_name.clone(),
            via: IssuedVia::Grant {
                name: self.name.clone(),
                grant: self.id.clone(),
            },
            ca_generation: self.ca_generation,
            issued_at: c.issued_at,
            not_after: c.not_after,
        })
    }

    /// The certificates this record holds, as a batch to move out of it
    /// ([`IssuedBatch`]).
    pub fn issued_batch(&self) -> IssuedBatch {
        IssuedBatch {
            claim: self.name.clone(),
            grant: Some(self.id.clone()),
            ca_generation: self.ca_generation,
            certs: self.issued.clone(),
        }
    }
}
