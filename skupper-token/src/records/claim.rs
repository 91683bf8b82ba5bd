//! The record of one claim: what the issuing site keeps about a claim
//! token, without its password.
//!
//! A claim record never holds the password: it holds an HMAC-SHA-256 tag of
//! it under a random per-claim key. Passwords are 24 characters drawn
//! uniformly from 62 symbols (about 143 bits), so a fast keyed hash is
//! enough: there is nothing to brute-force. Comparing uses
//! [`ring::hmac::verify`], which is constant-time.

use std::fmt;

use ring::hmac;
use time::OffsetDateTime;

use crate::random::Random;
use crate::records::{IssuedCert, IssuedRecord};

/// What the issuing site keeps about one claim token.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClaimRecord {
    /// The claim name (the last part of the claim URL).
    pub name: String,
    /// The HMAC-SHA-256 key for this claim's password tag, hex.
    pub password_key: String,
    /// HMAC-SHA-256(password_key, password), hex.
    pub password_tag: String,
    /// When the claim stops being redeemable; `None` = never.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    /// How many redemptions the token allows; `None` = unlimited.
    #[serde(default)]
    pub uses_allowed: Option<u32>,
    /// How many redemptions remain; `None` = unlimited.
    #[serde(default)]
    pub uses_remaining: Option<u32>,
    /// How many redemptions succeeded.
    pub claims_made: u32,
    /// The CA generation the claim was made under; claims from before a
    /// revoke-access are void.
    pub ca_generation: u32,
    /// When the claim was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// How many redemption attempts this claim refused: a wrong password,
    /// or the right one after it expired or ran out of uses. Counted on a
    /// best-effort basis, so that counting can never make a redemption
    /// fail: an attempt whose record write lost a race with another
    /// process is not counted. Records from before this field read as 0.
    #[serde(default)]
    pub failed_attempts: u32,
    /// The latest refused attempt, if any.
    #[serde(default)]
    pub last_failed_attempt: Option<FailedAttempt>,
    /// The layout version this record was written with
    /// ([`CLAIM_RECORD_SCHEMA`]). Records from before version 2 have no
    /// `schema-version` and read as 1: their certificates are separate
    /// [`crate::store::RecordKind::Issued`] records and
    /// [`ClaimRecord::issued`] is empty. A record of a newer version than
    /// this program's is refused as unreadable rather than read (and
    /// written back) without what it does not know.
    #[serde(default = "schema_v1", deserialize_with = "known_schema")]
    pub schema_version: u32,
    /// The certificates the latest redemptions issued, at most
    /// [`super::CLAIM_ISSUED_KEPT`]; older ones are in
    /// [`super::IssuedBatch`] records. Each was written in the same store
    /// write as the use it spent.
    #[serde(default)]
    pub issued: Vec<IssuedCert>,
}

/// The layout version of a stored claim record. 1 (records without a
/// `schema-version`) kept no certificates; 2 keeps those of the latest
/// redemptions ([`ClaimRecord::issued`]). Both read.
pub const CLAIM_RECORD_SCHEMA: u32 = 2;

fn schema_v1() -> u32 {
    1
}

fn known_schema<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let version = <u32 as serde::Deserialize>::deserialize(d)?;
    if version > CLAIM_RECORD_SCHEMA {
        return Err(serde::de::Error::custom(format_args!(
            "the claim record has schema version {version}; this version reads up to {CLAIM_RECORD_SCHEMA} (it was written by a newer skupper-token)"
        )));
    }
    Ok(version)
}

/// A redemption attempt that a claim refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FailedAttempt {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The site id the request gave (`skupper-site-name`; whoever sends a
    /// request chooses it).
    pub site: String,
    /// Why: `wrong password`, `expired` or `no uses left`.
    pub reason: String,
}

impl fmt::Debug for ClaimRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimRecord")
            .field("name", &self.name)
            .field("expires_at", &self.expires_at)
            .field("uses_allowed", &self.uses_allowed)
            .field("uses_remaining", &self.uses_remaining)
            .field("claims_made", &self.claims_made)
            .field("ca_generation", &self.ca_generation)
            .field("created_at", &self.created_at)
            .field("failed_attempts", &self.failed_attempts)
            .field("last_failed_attempt", &self.last_failed_attempt)
            .field("schema_version", &self.schema_version)
            .field("issued", &self.issued)
            .finish_non_exhaustive()
    }
}

/// Whether a claim can still be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    /// It can be redeemed.
    Active,
    /// Its expiry has passed.
    Expired,
    /// All its uses have been redeemed.
    UsedUp,
}

impl fmt::Display for ClaimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClaimState::Active => "active",
            ClaimState::Expired => "expired",
            ClaimState::UsedUp => "used up",
        })
    }
}

impl ClaimRecord {
    /// A new claim for `password`, expiring at `expires_at`, allowing
    /// `uses` redemptions (0 = unlimited).
    pub fn new(
        name: String,
        password: &str,
        expires_at: Option<OffsetDateTime>,
        uses: u32,
        ca_generation: u32,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> ClaimRecord {
        let mut key = [0u8; 32];
        rng.fill(&mut key);
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &key),
            password.as_bytes(),
        );
        let uses = (uses > 0).then_some(uses);
        ClaimRecord {
            name,
            password_key: hex(&key),
            password_tag: hex(tag.as_ref()),
            expires_at,
            uses_allowed: uses,
            uses_remaining: uses,
            claims_made: 0,
            ca_generation,
            created_at: now,
            failed_attempts: 0,
            last_failed_attempt: None,
            schema_version: CLAIM_RECORD_SCHEMA,
            issued: Vec::new(),
        }
    }

    /// Whether `password` is this claim's password (constant-time).
    pub fn password_matches(&self, password: &[u8]) -> bool {
        let (Some(key), Some(tag)) = (unhex(&self.password_key), unhex(&self.password_tag)) else {
            return false;
        };
        hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &key), password, &tag).is_ok()
    }

    /// The claim's state at `now`.
    pub fn state(&self, now: OffsetDateTime) -> ClaimState {
        if self.expires_at.is_some_and(|at| now >= at) {
            ClaimState::Expired
        } else if self.uses_remaining == Some(0) {
            ClaimState::UsedUp
        } else {
            ClaimState::Active
        }
    }

    /// This record after one more successful redemption.
    pub fn spent(&self) -> ClaimRecord {
        let mut next = self.clone();
        next.uses_remaining = next.uses_remaining.map(|n| n.saturating_sub(1));
        next.claims_made = next.claims_made.saturating_add(1);
        next
    }

    /// This record after one more successful redemption that issued
    /// `cert`: the use spent and the certificate recorded, for one write.
    pub fn redeemed(&self, cert: IssuedCert) -> ClaimRecord {
        let mut next = self.spent();
        next.schema_version = CLAIM_RECORD_SCHEMA;
        next.issued.push(cert);
        next
    }

    /// The certificates this record holds, as [`IssuedRecord`]s.
    pub fn issued_records(&self) -> impl Iterator<Item = IssuedRecord> + '_ {
        self.issued
            .iter()
            .map(|c| c.to_record(&self.name, self.ca_generation))
    }

    /// This record with `count` more refused attempts, the latest `last`.
    pub fn with_failed_attempts(&self, count: u32, last: Option<&FailedAttempt>) -> ClaimRecord {
        let mut next = self.clone();
        next.failed_attempts = next.failed_attempts.saturating_add(count);
        if let Some(last) = last {
            next.last_failed_attempt = Some(last.clone());
        }
        next
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(
            unhex(&hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abc"), None);
    }
}
