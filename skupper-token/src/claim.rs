//! Claims: what the issuing site remembers about each claim token, and the
//! rules for redeeming one.
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
use crate::site_id::SiteIdError;
use crate::store::StoreError;
use crate::version::{VersionError, MINIMUM_VERSION_MESSAGE};

/// Default claim token expiry: 15 minutes, as in Skupper.
pub const DEFAULT_EXPIRY: time::Duration = time::Duration::minutes(15);

/// Default number of uses of a claim token: 1, as in Skupper.
pub const DEFAULT_USES: u32 = 1;

/// How many times a redemption retries its compare-and-swap when other
/// redeemers of the same claim keep winning.
pub const MAX_CAS_ATTEMPTS: u32 = 16;

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

    /// Checks a redemption attempt, in the order that reveals nothing to a
    /// caller without the password: password, then expiry, then uses.
    pub fn check(&self, password: &[u8], now: OffsetDateTime) -> Result<(), RedeemError> {
        if !self.password_matches(password) {
            return Err(RedeemError::WrongPassword {
                claim: self.name.clone(),
            });
        }
        match self.state(now) {
            ClaimState::Active => Ok(()),
            ClaimState::Expired => Err(RedeemError::Expired {
                claim: self.name.clone(),
                expired_at: self.expires_at.unwrap_or(now),
                now,
            }),
            ClaimState::UsedUp => Err(RedeemError::UsedUp {
                claim: self.name.clone(),
                allowed: self.uses_allowed.unwrap_or(0),
            }),
        }
    }

    /// This record after one more successful redemption.
    pub fn spent(&self) -> ClaimRecord {
        let mut next = self.clone();
        next.uses_remaining = next.uses_remaining.map(|n| n.saturating_sub(1));
        next.claims_made = next.claims_made.saturating_add(1);
        next
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

impl RedeemError {
    /// For a refusal by [`ClaimRecord::check`], the few words a failed
    /// attempt is recorded with: `wrong password`, `expired`, `no uses
    /// left`.
    pub fn refusal_reason(&self) -> Option<&'static str> {
        match self {
            RedeemError::WrongPassword { .. } => Some("wrong password"),
            RedeemError::Expired { .. } => Some("expired"),
            RedeemError::UsedUp { .. } => Some("no uses left"),
            _ => None,
        }
    }
}

/// A claim redemption request, as the linking site sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedeemRequest {
    /// The claim name (the URL path).
    pub claim: String,
    /// The password bytes (the request body).
    pub password: Vec<u8>,
    /// The linking site's id (`skupper-site-name`): the issued
    /// certificate's common name.
    pub site_id: String,
    /// The linking site's version (`site-version`).
    pub site_version: String,
}

impl fmt::Debug for RedeemRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedeemRequest")
            .field("claim", &self.claim)
            .field("password", &"<redacted>")
            .field("site_id", &self.site_id)
            .field("site_version", &self.site_version)
            .finish()
    }
}

/// Why a claim was not redeemed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedeemError {
    /// The linking site's version is too old (or empty).
    #[error("claim {claim:?} refused: {source}")]
    VersionTooOld {
        /// The claim asked for.
        claim: String,
        /// What the version check said.
        source: VersionError,
    },
    /// No claim of that name (never made, or deleted when access was
    /// revoked).
    #[error("No such claim: {claim:?} does not exist on this site (never issued, or deleted when access to the site was revoked)")]
    NoSuchClaim {
        /// The claim asked for.
        claim: String,
    },
    /// The password does not match.
    #[error("Claim refused: wrong password for claim {claim:?}")]
    WrongPassword {
        /// The claim asked for.
        claim: String,
    },
    /// The claim's expiry has passed.
    #[error("No such claim: claim {claim:?} expired at {}", rfc3339(.expired_at))]
    Expired {
        /// The claim asked for.
        claim: String,
        /// When it expired.
        expired_at: OffsetDateTime,
        /// The time of the attempt.
        now: OffsetDateTime,
    },
    /// Every use of the claim has been redeemed.
    #[error("No such claim: claim {claim:?} has no uses left (all {allowed} allowed uses were redeemed)")]
    UsedUp {
        /// The claim asked for.
        claim: String,
        /// How many uses it allowed.
        allowed: u32,
    },
    /// The request names no linking site (empty `skupper-site-name`), so no
    /// certificate can be issued; nothing was spent.
    #[error("claim {claim:?} refused: the request names no site (the skupper-site-name header is empty)")]
    MissingSiteName {
        /// The claim asked for.
        claim: String,
    },
    /// The request's site id (the `skupper-site-name` header, or the claim
    /// name when the header is missing, as in Skupper) cannot name a
    /// certificate; nothing was looked up or spent.
    ///
    /// The rule is [`crate::site_id::check`]: 1 to 64 printable ASCII
    /// characters (letters, digits, punctuation). Every real Skupper site
    /// id, a UUID, passes. A longer id, or one with spaces, control
    /// characters or non-ASCII text, would get a certificate that no
    /// listener accepts, wasting a use. Answered with 400.
    #[error("claim {claim:?} refused: the requesting site's id (the skupper-site-name header) cannot name a certificate: {source}")]
    InvalidSiteName {
        /// The claim asked for.
        claim: String,
        /// What is wrong with the id.
        source: SiteIdError,
    },
    /// Other handles on the store (other processes) kept changing the
    /// claim record; nothing was spent. Redemptions through one handle take
    /// turns and never cause this.
    #[error("claim {claim:?} is being redeemed concurrently through another handle on the site's store (another process): gave up after {attempts} attempts; try again")]
    Conflict {
        /// The claim asked for.
        claim: String,
        /// How many compare-and-swap attempts were made.
        attempts: u32,
    },
    /// The site's store failed.
    #[error("claim {claim:?} could not be redeemed: {source}")]
    Store {
        /// The claim asked for.
        claim: String,
        /// The store's error.
        source: StoreError,
    },
    /// The certificate could not be issued (the use was spent: the safe
    /// direction).
    #[error("claim {claim:?} could not be redeemed: issuing the certificate failed: {reason}")]
    Issue {
        /// The claim asked for.
        claim: String,
        /// What failed.
        reason: String,
    },
}

impl RedeemError {
    /// The HTTP status Skupper 1.x answers with for this case.
    pub fn http_status(&self) -> u16 {
        match self {
            RedeemError::VersionTooOld { .. }
            | RedeemError::MissingSiteName { .. }
            | RedeemError::InvalidSiteName { .. } => 400,
            RedeemError::NoSuchClaim { .. }
            | RedeemError::Expired { .. }
            | RedeemError::UsedUp { .. } => 404,
            RedeemError::WrongPassword { .. } => 403,
            RedeemError::Conflict { .. } => 503,
            RedeemError::Store { .. } | RedeemError::Issue { .. } => 500,
        }
    }

    /// The response body for this case: Skupper's words first, then (only
    /// for a caller that presented the right password) which case it was.
    /// Ends with a newline, like Skupper's.
    pub fn http_body(&self) -> String {
        match self {
            RedeemError::VersionTooOld { .. } => format!("{MINIMUM_VERSION_MESSAGE}\n"),
            RedeemError::MissingSiteName { .. } => {
                "Request not valid: the skupper-site-name header is required\n".to_owned()
            }
            // Only about what the caller sent: nothing about the claim.
            RedeemError::InvalidSiteName { source, .. } => {
                format!("Request not valid: the skupper-site-name header is not a usable site id: {source}\n")
            }
            RedeemError::NoSuchClaim { .. } => "No such claim\n".to_owned(),
            RedeemError::WrongPassword { .. } => "Claim refused\n".to_owned(),
            RedeemError::Expired { expired_at, .. } => {
                format!("No such claim: expired at {}\n", rfc3339(expired_at))
            }
            RedeemError::UsedUp { allowed, .. } => format!(
                "No such claim: no uses left ({allowed} {} allowed)\n",
                if *allowed == 1 { "use" } else { "uses" }
            ),
            RedeemError::Conflict { .. }
            | RedeemError::Store { .. }
            | RedeemError::Issue { .. } => "Internal error\n".to_owned(),
        }
    }

    /// Whether trying again later can succeed: only for 5xx (a conflict or
    /// a store failure here); a refusal (400, 403, 404) is final
    /// ([`crate::transport::status_is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        crate::transport::status_is_retryable(self.http_status())
    }
}

pub(crate) fn rfc3339(t: &OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).truncate_to_second();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
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

fn unhex(text: &str) -> Option<Vec<u8>> {
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
    use crate::random::SeededRandom;
    use time::macros::datetime;

    fn record(uses: u32, expires_at: Option<OffsetDateTime>) -> ClaimRecord {
        ClaimRecord::new(
            "c1".into(),
            "secret-password",
            expires_at,
            uses,
            1,
            datetime!(2026-11-28 10:00 UTC),
            &mut SeededRandom::new(1),
        )
    }

    #[test]
    fn password_is_not_stored_and_checks() {
        let r = record(1, None);
        let yaml = format!("{r:?} {} {}", r.password_key, r.password_tag);
        assert!(!yaml.contains("secret-password"));
        assert!(r.password_matches(b"secret-password"));
        assert!(!r.password_matches(b"secret-passworD"));
        assert!(!r.password_matches(b""));
    }

    #[test]
    fn wrong_password_hides_expiry_and_uses() {
        let now = datetime!(2026-11-28 12:00 UTC);
        let expired = record(1, Some(datetime!(2026-11-28 11:00 UTC)));
        assert!(matches!(
            expired.check(b"nope", now),
            Err(RedeemError::WrongPassword { .. })
        ));
        let used = record(1, None).spent();
        assert!(matches!(
            used.check(b"nope", now),
            Err(RedeemError::WrongPassword { .. })
        ));
        let e = expired.check(b"secret-password", now).unwrap_err();
        assert_eq!(e.http_status(), 404);
        assert_eq!(
            e.http_body(),
            "No such claim: expired at 2026-11-28T11:00:00Z\n"
        );
        let e = used.check(b"secret-password", now).unwrap_err();
        assert_eq!(
            e.to_string(),
            "No such claim: claim \"c1\" has no uses left (all 1 allowed uses were redeemed)"
        );
    }

    #[test]
    fn unlimited_uses_never_run_out() {
        let mut r = record(0, None);
        for _ in 0..1000 {
            r = r.spent();
        }
        assert_eq!(r.state(datetime!(2030-01-01 0:00 UTC)), ClaimState::Active);
        assert_eq!(r.claims_made, 1000);
    }

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
