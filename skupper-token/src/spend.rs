//! Spending one use of a stored record in one write: the rule 1.x claims
//! ([`crate::claim`]) and 2.x grants ([`crate::v2::grant_redeem`]) share.
//!
//! For a request that presents a secret (a claim's password, a grant's
//! code), [`spend_one`]:
//!
//! 1. reads the record and, when it accepts the request as it is now, makes
//!    what the redemption returns (the certificate: the slow part) before
//!    taking its turn, so redemptions of one record make their keys side by
//!    side and refused requests make none;
//! 2. takes its turn in the site handle's [`ClaimQueue`] (other redemptions
//!    of the record through this handle wait, instead of racing);
//! 3. reads the record again (unless the turn did not wait and the first
//!    read accepted the request: one read per uncontended redemption) and
//!    checks the request again: a refusal is counted in the record, best
//!    effort ([`record_refusal`]);
//! 4. writes ONE compare-and-swap that spends the use, records the issued
//!    certificate and the refusals earlier turns left; when the record
//!    holds [`CLAIM_ISSUED_KEPT`] certificates they move to an
//!    [`IssuedBatch`](crate::records::IssuedBatch) record first;
//! 5. a lost race (another process won) goes back to step 3 with what was
//!    made; after [`MAX_CAS_ATTEMPTS`] it gives up
//!    ([`Spendable::conflict`]).
//!
//! So however many redeemers race, on however many handles, no more uses
//! are spent than the record allows, and what is returned was recorded
//! first.

use time::OffsetDateTime;

use crate::claim_queue::{ClaimQueue, Failures, Turn};
use crate::records::{FailedAttempt, IssuedBatch, IssuedCert, CLAIM_ISSUED_KEPT};
use crate::store::{typed, Cas, Key, Record, RecordKind, Store, StoreError, Version, Versioned};

/// How many times a redemption retries its compare-and-swap when other
/// redeemers of the same claim or grant keep winning.
pub const MAX_CAS_ATTEMPTS: u32 = 16;

/// A stored record whose uses are spent one per redemption.
pub(crate) trait Spendable: Sized {
    /// Why a redemption is refused or fails.
    type Error;

    /// Checks a request that presents `secret`, in the order that reveals
    /// nothing to a caller without it.
    fn check(&self, secret: &[u8], now: OffsetDateTime) -> Result<(), Self::Error>;

    /// The words a refusal is counted with (`None`: not a refusal to count).
    fn refusal_reason(error: &Self::Error) -> Option<&'static str>;

    /// This record with `count` more refused attempts, the latest `last`.
    fn with_failed_attempts(&self, count: u32, last: Option<&FailedAttempt>) -> Self;

    /// How many issued certificates the record holds.
    fn issued_len(&self) -> usize;

    /// The certificates it holds, as a batch to move out.
    fn issued_batch(&self) -> IssuedBatch;

    /// This record without the certificates it holds (moved out).
    fn without_issued(self) -> Self;

    /// This record after one more redemption that issued `cert`.
    fn spent_issuing(&self, cert: IssuedCert) -> Result<Self, Self::Error>;

    /// The record to store.
    fn into_record(self) -> Record;

    /// The store failed while redeeming the record named `name`.
    fn store_error(name: &str, source: StoreError) -> Self::Error;

    /// Other redeemers of `name` won the compare-and-swap `attempts` times.
    fn conflict(name: &str, attempts: u32) -> Self::Error;
}

/// Where the record is and how to read it.
pub(crate) struct SpendTarget<'a, R: Spendable> {
    /// The site's store.
    pub(crate) store: &'a dyn Store,
    /// The site handle's queue.
    pub(crate) queue: &'a ClaimQueue,
    /// The record's name in the queue.
    pub(crate) turn: &'a str,
    /// The record's key.
    pub(crate) key: &'a Key,
    /// Reads the record (a missing one is the caller's refusal).
    pub(crate) load: &'a dyn Fn() -> Result<Versioned<R>, R::Error>,
}

/// Spends one use of the record (the steps are in the [module
/// documentation](self)) for a request presenting `secret` from `site`
/// (who asked, for a counted refusal). `make` makes what the redemption
/// returns for the record as read, and is called only for a request the
/// record accepts; `issued` is the certificate in it.
pub(crate) fn spend_one<R: Spendable, M>(
    target: &SpendTarget<'_, R>,
    secret: &[u8],
    site: &str,
    now: OffsetDateTime,
    mut make: impl FnMut(&R) -> Result<M, R::Error>,
    issued: impl Fn(&M) -> IssuedCert,
) -> Result<M, R::Error> {
    let name = &target.key.name;
    let first = (target.load)();
    let mut made = match &first {
        Ok(v) if v.record.check(secret, now).is_ok() => Some(make(&v.record)?),
        _ => None,
    };
    let turn = target.queue.turn(target.turn);
    // A turn that did not wait uses the record read above, which accepted
    // the request, instead of reading it again: nothing went before it
    // here. Had the record changed since all the same (another process,
    // or a turn that ended just before this one began), the
    // compare-and-swap fails and the next attempt reads it. A refusal is
    // always checked against a fresh read: its count is written with a
    // single compare-and-swap, which a stale version would lose.
    let mut unchanged = match first {
        Ok(read) if !turn.waited() && made.is_some() => Some(read),
        _ => None,
    };
    for _ in 0..MAX_CAS_ATTEMPTS {
        let Versioned { version, record } = match unchanged.take() {
            Some(read) => read,
            None => (target.load)()?,
        };
        if let Err(refused) = record.check(secret, now) {
            record_refusal(target, &turn, version, &record, site, &refused, now);
            return Err(refused);
        }
        let made_now = match made.take() {
            Some(m) => m,
            None => make(&record)?,
        };
        // Refusals that earlier turns left are written with the use.
        let failures = turn.failures();
        let mut next = record.with_failed_attempts(failures.count, failures.last.as_ref());
        if next.issued_len() >= CLAIM_ISSUED_KEPT {
            move_out_issued(target.store, record.issued_batch())
                .map_err(|e| R::store_error(name, e))?;
            next = next.without_issued();
        }
        let next = next.spent_issuing(issued(&made_now))?;
        match target
            .store
            .compare_and_swap(target.key, Some(version), Some(next.into_record()))
            .map_err(|e| R::store_error(name, e))?
        {
            Cas::Done(_) => {
                turn.take_failures();
                return Ok(made_now);
            }
            Cas::Conflict(_) => made = Some(made_now),
        }
    }
    Err(R::conflict(name, MAX_CAS_ATTEMPTS))
}

/// Counts a refused attempt in the record, best effort: the caller's
/// answer is the same whatever happens here, and nothing here can fail the
/// redemption. When other requests wait for the record, the refusal is
/// left to the next turn's write (a spent use, or the last refusal), so a
/// flood of refusals costs an honest redemption at most one record write.
/// One compare-and-swap, not retried: a refusal that loses a race with
/// another process is not counted.
fn record_refusal<R: Spendable>(
    target: &SpendTarget<'_, R>,
    turn: &Turn<'_>,
    version: Version,
    record: &R,
    site: &str,
    refused: &R::Error,
    now: OffsetDateTime,
) {
    let Some(reason) = R::refusal_reason(refused) else {
        return;
    };
    let mut failures = turn.take_failures();
    failures.add(Failures {
        count: 1,
        last: Some(FailedAttempt {
            at: now,
            site: site.to_owned(),
            reason: reason.to_owned(),
        }),
    });
    if turn.others_waiting() {
        turn.leave_failures(failures);
        return;
    }
    let next = record.with_failed_attempts(failures.count, failures.last.as_ref());
    let _ = target
        .store
        .compare_and_swap(target.key, Some(version), Some(next.into_record()));
}

/// Writes `batch` (the certificates a claim or grant record holds) to an
/// [`IssuedBatch`] record named after its first certificate (merged with
/// one already there: an earlier attempt of this or a concurrent
/// redemption wrote it), so that the claim or grant record can drop them.
fn move_out_issued(store: &dyn Store, batch: IssuedBatch) -> Result<(), StoreError> {
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
