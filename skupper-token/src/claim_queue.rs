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
//! after the turn ends. Handles in other processes still race through the
//! store's compare-and-swap.
//!
//! No I/O: a mutex and a condition variable. The set of busy claims holds
//! only the claims being spent right now, so it never grows with the
//! number of claims or with the names that callers send.

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The claims whose use is being spent right now, and a signal for when
/// one is done.
#[derive(Debug, Default)]
pub(crate) struct ClaimQueue {
    busy: Mutex<BTreeSet<String>>,
    done: Condvar,
}

/// One request's turn at a claim; the next request's turn starts when this
/// is dropped.
#[derive(Debug)]
pub(crate) struct Turn<'a> {
    queue: &'a ClaimQueue,
    claim: String,
}

fn lock(m: &Mutex<BTreeSet<String>>) -> MutexGuard<'_, BTreeSet<String>> {
    // The set is changed in single insert/remove calls: a panic elsewhere
    // cannot leave it half-changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClaimQueue {
    /// Waits until no other request holds a turn at `claim`, and takes it.
    pub(crate) fn turn(&self, claim: &str) -> Turn<'_> {
        let mut busy = lock(&self.busy);
        while busy.contains(claim) {
            busy = self.done.wait(busy).unwrap_or_else(PoisonError::into_inner);
        }
        busy.insert(claim.to_owned());
        Turn {
            queue: self,
            claim: claim.to_owned(),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        lock(&self.queue.busy).remove(&self.claim);
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
        drop(other);
        drop(first);
        assert!(lock(&queue.busy).is_empty(), "nothing is kept");
        let again = queue.turn("c1");
        drop(again);
        assert!(lock(&queue.busy).is_empty());
    }
}
