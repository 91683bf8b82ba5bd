//! Claims: the rules for redeeming one, from the request to the HTTP
//! status the claims server answers with, in this one file.
//!
//! [`crate::site::Site::redeem_claim`] runs them in this order:
//!
//! 1. the request: the requester's version ([`RedeemError::VersionTooOld`],
//!    400), its site id, which names the certificate
//!    ([`RedeemError::MissingSiteName`], [`RedeemError::InvalidSiteName`],
//!    400), and the claim name ([`RedeemError::NoSuchClaim`], 404);
//! 2. the claim record: it exists under the site's current CA
//!    ([`RedeemError::NoSuchClaim`], 404), then [`ClaimRecord::check`]:
//!    the password before anything else is revealed
//!    ([`RedeemError::WrongPassword`], 403), the expiry
//!    ([`RedeemError::Expired`], 404) and the uses ([`RedeemError::UsedUp`],
//!    404). A refusal is counted in the record, best effort;
//! 3. the certificate is made, and one compare-and-swap of the claim record
//!    spends the use and records it ([`RedeemError::Conflict`], 503, when
//!    other processes keep winning; [`RedeemError::Store`] and
//!    [`RedeemError::Issue`], 500);
//! 4. the cert token is returned, or the refusal answered with
//!    [`RedeemError::http_status`] and [`RedeemError::http_body`].
//!
//! What the issuing site remembers about each claim token (never its
//! password) is a [`ClaimRecord`], kept in [`crate::records`] and
//! re-exported here.

use std::fmt;

use time::OffsetDateTime;

use crate::claim_queue::{ClaimQueue, Failures, Turn};
use crate::random::Random;
pub(crate) use crate::records::claim::hex;
pub use crate::records::{ClaimRecord, ClaimState, FailedAttempt};
use crate::records::{IssuedBatch, IssuedCert, CLAIM_ISSUED_KEPT};
use crate::site_id::SiteIdError;
use crate::store::{typed, Cas, Key, Record, RecordKind, Store, StoreError, Version, Versioned};
use crate::token::CertToken;
use crate::version::{check_remote_version, VersionError, MINIMUM_VERSION_MESSAGE};

/// Default claim token expiry: 15 minutes, as in Skupper.
pub const DEFAULT_EXPIRY: time::Duration = time::Duration::minutes(15);

/// Default number of uses of a claim token: 1, as in Skupper.
pub const DEFAULT_USES: u32 = 1;

/// How many times a redemption retries its compare-and-swap when other
/// redeemers of the same claim keep winning.
pub const MAX_CAS_ATTEMPTS: u32 = 16;

impl ClaimRecord {
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
    /// The certificate could not be made; nothing was spent (the
    /// certificate is made before the write that spends the use).
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

/// What a redemption needs from the site that redeems the claim.
pub(crate) struct Redeemer<'a> {
    /// The site's store.
    pub(crate) store: &'a dyn Store,
    /// Redemptions of one claim through the site handle take turns here.
    pub(crate) queue: &'a ClaimQueue,
    /// The site's own version: the requester's must be at least the
    /// minimum it accepts.
    pub(crate) site_version: &'a str,
    /// The site's current CA generation: claims made under another are
    /// void.
    pub(crate) ca_generation: u32,
}

/// A cert token made for a redemption, and what its claim record keeps of
/// its certificate.
pub(crate) type Made = (CertToken, IssuedCert);

impl Redeemer<'_> {
    /// Redeems a claim (the rules are in the [module documentation](self));
    /// `make_cert` makes the cert token for the requesting site, and is
    /// called at most once, only for a request the claim accepts.
    ///
    /// One store write per redemption; what a crash at each point does is
    /// documented on [`crate::site::Site::redeem_claim`].
    pub(crate) fn redeem(
        &self,
        request: &RedeemRequest,
        now: OffsetDateTime,
        rng: &mut dyn Random,
        make_cert: impl Fn(&mut dyn Random) -> Result<Made, RedeemError>,
    ) -> Result<CertToken, RedeemError> {
        let claim_name = &request.claim;
        let store_err = |source: StoreError| RedeemError::Store {
            claim: claim_name.clone(),
            source,
        };
        check_remote_version(&request.site_version, self.site_version).map_err(|source| {
            RedeemError::VersionTooOld {
                claim: claim_name.clone(),
                source,
            }
        })?;
        if request.site_id.is_empty() {
            return Err(RedeemError::MissingSiteName {
                claim: claim_name.clone(),
            });
        }
        crate::site_id::check(&request.site_id).map_err(|source| RedeemError::InvalidSiteName {
            claim: claim_name.clone(),
            source,
        })?;
        let no_such_claim = || RedeemError::NoSuchClaim {
            claim: claim_name.clone(),
        };
        // Every claim is made with a token name (or a UUID), so another
        // name is no claim; the store is not asked.
        if crate::object_name::check(claim_name).is_err() {
            return Err(no_such_claim());
        }
        let key = Key::new(RecordKind::Claim, claim_name.clone());
        let load_claim = || match typed::load(self.store, &key, typed::claim) {
            Ok(Some(claim)) if claim.record.ca_generation == self.ca_generation => Ok(claim),
            // Gone, or a claim of an older CA (voided by revoke-access).
            Ok(_) => Err(no_such_claim()),
            // A name this store cannot keep holds no claim.
            Err(StoreError::InvalidKey { .. }) => Err(no_such_claim()),
            Err(e) => Err(store_err(e)),
        };
        // The certificate is made before this redemption's turn, so that
        // redemptions of one claim make their keys side by side, and only
        // when the claim as it is now accepts the request, so that refused
        // requests make none. The turn checks the claim again.
        let first = load_claim();
        let mut cert = match &first {
            Ok(claim) if claim.record.check(&request.password, now).is_ok() => {
                Some(make_cert(rng)?)
            }
            _ => None,
        };
        // Other redemptions of this claim through this handle wait here
        // instead of racing for the compare-and-swap.
        let turn = self.queue.turn(claim_name);
        // A turn that did not wait uses the claim read above, which
        // accepted the request, instead of reading it again: nothing went
        // before it here. Had the claim changed since all the same
        // (another process, or a turn that ended just before this one
        // began), the compare-and-swap fails and the next attempt reads
        // it. A refusal is always checked against a fresh read: its count
        // is written with a single compare-and-swap, which a stale version
        // would lose.
        let mut unchanged = match first {
            Ok(claim) if !turn.waited() && cert.is_some() => Some(claim),
            _ => None,
        };
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Versioned { version, record } = match unchanged.take() {
                Some(claim) => claim,
                None => load_claim()?,
            };
            if let Err(refused) = record.check(&request.password, now) {
                self.record_refusal(&turn, &key, version, &record, request, &refused, now);
                return Err(refused);
            }
            let (token, issued) = match cert.take() {
                Some(made) => made,
                None => make_cert(rng)?,
            };
            // Refusals that earlier turns left are written with the use.
            let failures = turn.failures();
            let mut next = record.with_failed_attempts(failures.count, failures.last.as_ref());
            if next.issued.len() >= CLAIM_ISSUED_KEPT {
                move_out_issued(self.store, claim_batch(&record)).map_err(store_err)?;
                next.issued.clear();
            }
            let next = next.redeemed(issued.clone());
            match self
                .store
                .compare_and_swap(&key, Some(version), Some(Record::Claim(next)))
                .map_err(store_err)?
            {
                Cas::Done(_) => {
                    turn.take_failures();
                    return Ok(token);
                }
                Cas::Conflict(_) => cert = Some((token, issued)),
            }
        }
        Err(RedeemError::Conflict {
            claim: claim_name.clone(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    /// Counts a refused redemption attempt in the claim record, best
    /// effort: the caller's answer is the same whatever happens here, and
    /// nothing here can fail the redemption. When other requests wait for
    /// the claim, the refusal is left to the next turn's write (a spent
    /// use, or the last refusal), so a flood of refusals costs an honest
    /// redemption at most one record write. One compare-and-swap, not
    /// retried: a refusal that loses a race with another process is not
    /// counted.
    #[allow(clippy::too_many_arguments)]
    fn record_refusal(
        &self,
        turn: &Turn<'_>,
        key: &Key,
        version: Version,
        record: &ClaimRecord,
        request: &RedeemRequest,
        refused: &RedeemError,
        now: OffsetDateTime,
    ) {
        let Some(reason) = refused.refusal_reason() else {
            return;
        };
        let mut failures = turn.take_failures();
        failures.add(Failures {
            count: 1,
            last: Some(FailedAttempt {
                at: now,
                site: request.site_id.clone(),
                reason: reason.to_owned(),
            }),
        });
        if turn.others_waiting() {
            turn.leave_failures(failures);
            return;
        }
        let next = record.with_failed_attempts(failures.count, failures.last.as_ref());
        let _ = self
            .store
            .compare_and_swap(key, Some(version), Some(Record::Claim(next)));
    }
}

/// The certificates `claim` holds, as a batch to move out of its record.
fn claim_batch(claim: &ClaimRecord) -> IssuedBatch {
    IssuedBatch {
        claim: claim.name.clone(),
        grant: None,
        ca_generation: claim.ca_generation,
        certs: claim.issued.clone(),
    }
}

/// Writes `batch` (the certificates a claim or grant record holds) to an
/// [`IssuedBatch`] record named after its first certificate (merged with
/// one already there: an earlier attempt of this or a concurrent
/// redemption wrote it), so that the claim or grant record can drop them.
pub(crate) fn move_out_issued(store: &dyn Store, batch: IssuedBatch) -> Result<(), StoreError> {
    let Some(name) = batch.name() else {
        return Ok(());
    };
    let key = Key::new(RecordKind::ClaimIssued, name);
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (expected, mut merged) = match typed::load(store, &key, typed::claim_issued)? {
            None => (None, batch.clone()),
            Some(Versioned { version, record }) => (Some(version), record),
        };
        let missing: Vec<_> = batch
            .certs
            .iter()
            .filter(|c| !merged.certs.iter().any(|m| m.serial == c.serial))
            .cloned()
            .collect();
        if expected.is_some() && missing.is_empty() {
            return Ok(());
        }
        merged.certs.extend(missing);
        let new = Some(Record::ClaimIssued(merged));
        if let Cas::Done(_) = store.compare_and_swap(&key, expected, new)? {
            return Ok(());
        }
    }
    Err(StoreError::Unavailable {
        reason: format!("record {key} was changed concurrently {MAX_CAS_ATTEMPTS} times in a row"),
    })
}

pub(crate) fn rfc3339(t: &OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).truncate_to_second();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
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
}
