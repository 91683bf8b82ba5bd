//! Redemptions of one claim through one site handle take turns.
//!
//! Spending a use is a compare-and-swap on the claim record. When many
//! requests for one many-use claim arrive at once, every one but the winner
//! of each round has to read the record again and retry, and a request that
//! keeps losing gives up ([`crate::claim::RedeemError::Conflict`]). Within
//! one [`crate::site::Site`] handle (one `serve` process) that contention is
//! needless: the requests can simply wait for each other. A [`ClaimQueue`]
//! lets one request at a time spend a use of a given claim; requests for
//! other claims do not wait, and the certificate, the slow part, is made
//! before the turn begins. Handles in other processes still race through
//! the store's compare-and-swap.
//!
//! The queue also carries refused attempts ([`Failures`]) from one turn to
//! the next: a refused request that sees others waiting leaves its failure
//! to the next turn instead of writing the claim record itself, and the
//! next write (a spent use, or the last refusal of a burst) records them
//! all at once. So a flood of wrong passwords costs at most one record
//! write in front of an honest redemption, not one per attempt.
//!
//! No I/O: a mutex and a condition variable. The map holds only the claims
//! being redeemed right now, so it never grows with the number of claims or
//! with the names that callers send.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::records::FailedAttempt;

/// Refused redemption attempts not yet written to the claim record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Failures {
    /// How many.
    pub(crate) count: u32,
    /// The latest.
    pub(crate) last: Option<FailedAttempt>,
}

impl Failures {
    /// Adds `later`, which happened after these.
    pub(crate) fn add(&mut self, later: Failures) {
        self.count = self.count.saturating_add(later.count);
        if later.last.is_some() {
            self.last = later.last;
        }
    }
}

/// A claim that is being redeemed.
#[derive(Debug, Default)]
struct Busy {
    /// Whether a request holds the turn.
    held: bool,
    /// How many requests wait for it.
    waiting: usize,
    /// Refusals left for the next turn to write.
    failures: Failures,
}

/// The claims being redeemed right now, and a signal for when a turn ends.
#[derive(Debug, Default)]
pub(crate) struct ClaimQueue {
    busy: Mutex<BTreeMap<String, Busy>>,
    done: Condvar,
}

/// One request's turn at a claim; the next request's turn starts when this
/// is dropped.
#[derive(Debug)]
pub(crate) struct Turn<'a> {
    queue: &'a ClaimQueue,
    claim: String,
    /// Another request held the claim when this one asked.
    waited: bool,
}

fn lock(m: &Mutex<BTreeMap<String, Busy>>) -> MutexGuard<'_, BTreeMap<String, Busy>> {
    // Every change below is a few field updates that cannot panic halfway.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClaimQueue {
    /// Waits until no other request holds a turn at `claim`, and takes it.
    pub(crate) fn turn(&self, claim: &str) -> Turn<'_> {
        let mut busy = lock(&self.busy);
        let entry = busy.entry(claim.to_owned()).or_default();
        let waited = entry.held;
        if waited {
            entry.waiting += 1;
            while busy.get(claim).is_some_and(|b| b.held) {
                busy = self.done.wait(busy).unwrap_or_else(PoisonError::into_inner);
            }
            let entry = busy.entry(claim.to_owned()).or_default();
            entry.waiting = entry.waiting.saturating_sub(1);
            entry.held = true;
        } else {
            entry.held = true;
        }
        Turn {
            queue: self,
            claim: claim.to_owned(),
            waited,
        }
    }
}

impl Turn<'_> {
    fn with<T>(&self, f: impl FnOnce(&mut Busy) -> T) -> T {
        let mut busy = lock(&self.queue.busy);
        f(busy.entry(self.claim.clone()).or_default())
    }

    /// Whether this turn had to wait for another request's.
    pub(crate) fn waited(&self) -> bool {
        self.waited
    }

    /// Whether other requests wait for this claim.
    pub(crate) fn others_waiting(&self) -> bool {
        self.with(|b| b.waiting > 0)
    }

    /// The refusals earlier turns left to be written.
    pub(crate) fn failures(&self) -> Failures {
        self.with(|b| b.failures.clone())
    }

    /// Takes the refusals earlier turns left (this turn writes them).
    pub(crate) fn take_failures(&self) -> Failures {
        self.with(|b| std::mem::take(&mut b.failures))
    }

    /// Leaves `failures` for the next turn to write.
    pub(crate) fn leave_failures(&self, failures: Failures) {
        self.with(|b| b.failures.add(failures));
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut busy = lock(&self.queue.busy);
        match busy.get_mut(&self.claim) {
            Some(b) if b.waiting > 0 => b.held = false,
            // Nobody waits: forget the claim (a turn that left failures
            // always sees a waiter, who writes them).
            _ => {
                busy.remove(&self.claim);
            }
        }
        drop(busy);
        // Waiters for other claims wake too and wait again: there are only
        // as many as there are requests in flight.
        self.queue.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_at_one_claim_exclude_each_other_and_others_do_not_wait() {
        let queue = ClaimQueue::default();
        let first = queue.turn("c1");
        // Another claim is not held up.
        let other = queue.turn("c2");
        assert_eq!(lock(&queue.busy).len(), 2);
        assert!(!first.others_waiting());
        drop(other);
        drop(first);
        assert!(lock(&queue.busy).is_empty(), "nothing is kept");
    }

    // Turns that wait for each other across threads are tested where
    // threads may be started: tests/failed_attempts.rs and the CLI's
    // claims_from_files.rs (16 threads on one claim, exact counts).
    #[test]
    fn failures_left_on_a_turn_add_up_until_taken() {
        let queue = ClaimQueue::default();
        let turn = queue.turn("c1");
        turn.leave_failures(Failures {
            count: 2,
            last: None,
        });
        turn.leave_failures(Failures {
            count: 1,
            last: None,
        });
        assert_eq!(turn.failures().count, 3);
        assert_eq!(turn.take_failures().count, 3);
        assert_eq!(turn.take_failures(), Failures::default(), "taken once");
        drop(turn);
        assert!(lock(&queue.busy).is_empty());
    }
}
