//! Redeeming an access grant on the issuing site: the one place where a
//! redemption is checked, spent and answered, with the guarantees of 1.x
//! claims ([`crate::claim`]).
//!
//! [`crate::site::Site::redeem_grant`] runs, for a [`GrantRedemption`]
//! (what a grant server read from the request):
//!
//! 1. the grant id: one no grant can have (not an object name), a grant
//!    that is not there, or one of an older CA generation (voided by a
//!    revoke-access): [`GrantError::NoSuchGrant`] (404 `No such claim`);
//! 2. [`GrantRecord::check`]: the code first, in constant time (403), then
//!    expiry and the redemptions left (404), so nothing about the grant is
//!    revealed to a caller without its code; a refusal is counted in the
//!    record, best effort;
//! 3. the `name` and `subject` headers ([`redemption_names`], 400);
//! 4. the certificate (CN = the subject) and the Link file are made, then
//!    ONE compare-and-swap of the grant record spends the redemption *and*
//!    records the certificate ([`GrantRecord::issued`]); a lost race reads
//!    the record again and goes back to step 2, so however many redeemers
//!    race, on however many handles, no more redemptions are made than the
//!    grant allows; giving up after
//!    [`crate::claim::MAX_CAS_ATTEMPTS`] is
//!    [`GrantError::Conflict`] (503);
//! 5. only after that write, the Link file is returned (200, its body
//!    [`LinkFile::encode_grant_response`]).
//!
//! Redemptions of one grant through one site handle take turns (the claim
//! queue), as claims' do; only handles in other processes race through the
//! compare-and-swap.

use std::fmt;

use time::OffsetDateTime;

use super::grant::{redemption_names, RedemptionNames};
use super::{GrantError, GrantRecord, GrantRequest, LinkFile};
use crate::claim_queue::ClaimQueue;
use crate::random::Random;
use crate::records::{FailedAttempt, IssuedBatch, IssuedCert};
use crate::spend::{spend_one, SpendTarget, Spendable};
use crate::store::{typed, Key, Record, RecordKind, Store, StoreError};

/// A redemption request as a grant server reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct GrantRedemption {
    /// The grant id: the last segment of the request's path.
    pub grant: String,
    /// The request body, raw: the access code.
    pub code: Vec<u8>,
    /// The `name` header, if sent.
    pub name: Option<String>,
    /// The `subject` header, if sent.
    pub subject: Option<String>,
}

impl fmt::Debug for GrantRedemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantRedemption")
            .field("grant", &self.grant)
            .field("code", &"<redacted>")
            .field("name", &self.name)
            .field("subject", &self.subject)
            .finish()
    }
}

impl GrantRedemption {
    /// What a grant server reads from `request` when it arrives as sent:
    /// the grant id (the URL's last path segment), the body and the
    /// headers. For servers in memory (the harness); an HTTP server reads
    /// the same from the request it got.
    pub fn of_request(request: &GrantRequest) -> GrantRedemption {
        let path = request.url.split(['?', '#']).next().unwrap_or_default();
        GrantRedemption {
            grant: path.rsplit('/').next().unwrap_or_default().to_owned(),
            code: request.body().to_vec(),
            name: Some(request.name.clone()),
            subject: Some(request.subject.clone()),
        }
    }
}

/// The HTTP answer to a redemption, as Skupper's grant server gives it:
/// 200 and [`LinkFile::encode_grant_response`] (content type `text/plain;
/// charset=utf-8`), or [`GrantError::http_status`] and
/// [`GrantError::http_body`].
pub fn http_answer(outcome: &Result<LinkFile, GrantError>) -> (u16, String) {
    match outcome {
        Ok(links) => (200, links.encode_grant_response()),
        Err(e) => (e.http_status(), e.http_body()),
    }
}

/// A Link file made for a redemption, and what the grant record keeps of
/// its certificate.
pub(crate) type MadeLinks = (LinkFile, IssuedCert);

/// What a grant redemption needs from the site that redeems it.
pub(crate) struct GrantRedeemer<'a> {
    /// The site's store.
    pub(crate) store: &'a dyn Store,
    /// Redemptions through one handle take turns here.
    pub(crate) queue: &'a ClaimQueue,
    /// The site's current CA generation: grants of another are void.
    pub(crate) ca_generation: u32,
}

impl GrantRedeemer<'_> {
    /// Redeems a grant (the rules are in the [module documentation](self));
    /// `make` makes the Link file for the redemption's names, and is called
    /// only for a request the grant accepts.
    pub(crate) fn redeem(
        &self,
        request: &GrantRedemption,
        now: OffsetDateTime,
        rng: &mut dyn Random,
        make: impl Fn(&RedemptionNames, &mut dyn Random) -> Result<MadeLinks, GrantError>,
    ) -> Result<LinkFile, GrantError> {
        let id = &request.grant;
        let store_err = |source: StoreError| GrantError::Store {
            grant: id.clone(),
            source,
        };
        let no_such_grant = || GrantError::NoSuchGrant { grant: id.clone() };
        // Every grant id is a UUID, so another name is no grant; the store
        // is not asked.
        if crate::object_name::check(id).is_err() {
            return Err(no_such_grant());
        }
        let key = Key::new(RecordKind::Grant, id.clone());
        let load = || match typed::load(self.store, &key, typed::grant) {
            Ok(Some(grant)) if grant.record.ca_generation == self.ca_generation => Ok(grant),
            Ok(_) | Err(StoreError::InvalidKey { .. }) => Err(no_such_grant()),
            Err(e) => Err(store_err(e)),
        };
        let names = |record: &GrantRecord| {
            redemption_names(
                id,
                &record.name,
                request.name.as_deref(),
                request.subject.as_deref(),
            )
        };
        let target = SpendTarget {
            store: self.store,
            queue: self.queue,
            turn: &format!("grant/{id}"),
            key: &key,
            load: &load,
        };
        let site = super::shorten(request.subject.as_deref().unwrap_or_default());
        spend_one(
            &target,
            &request.code,
            &site,
            now,
            |record| make(&names(record)?, rng),
            |(_, issued)| issued.clone(),
        )
        .map(|(links, _)| links)
    }
}

impl Spendable for GrantRecord {
    type Error = GrantError;

    fn check(&self, secret: &[u8], now: OffsetDateTime) -> Result<(), GrantError> {
        GrantRecord::check(self, secret, now)
    }

    fn refusal_reason(error: &GrantError) -> Option<&'static str> {
        error.refusal_reason()
    }

    fn with_failed_attempts(&self, count: u32, last: Option<&FailedAttempt>) -> Self {
        GrantRecord::with_failed_attempts(self, count, last)
    }

    fn issued_len(&self) -> usize {
        self.issued.len()
    }

    fn issued_batch(&self) -> IssuedBatch {
        GrantRecord::issued_batch(self)
    }

    fn without_issued(mut self) -> Self {
        self.issued.clear();
        self
    }

    fn spent_issuing(&self, cert: IssuedCert) -> Result<Self, GrantError> {
        Ok(self.spent()?.redeemed(cert))
    }

    fn into_record(self) -> Record {
        Record::Grant(Box::new(self))
    }

    fn store_error(name: &str, source: StoreError) -> GrantError {
        GrantError::Store {
            grant: name.to_owned(),
            source,
        }
    }

    fn conflict(name: &str, attempts: u32) -> GrantError {
        GrantError::Conflict {
            grant: name.to_owned(),
            attempts,
        }
    }
}
