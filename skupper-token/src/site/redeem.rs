//! Claim redemption as the site runs it: the rules, in order, from the
//! request to the HTTP status of each refusal, are in [`crate::claim`];
//! this gives them the site's store, its claim queue, its version and CA
//! generation, and the way to make the cert token.

use time::OffsetDateTime;

use super::{Site, TokenError};
use crate::claim::{RedeemError, RedeemRequest, Redeemer};
use crate::random::Random;
use crate::store::Store;
use crate::token::CertToken;

impl<S: Store> Site<S> {
    /// Redeems a claim: checks the request, the claim and its password, expiry
    /// and uses; makes a cert token whose certificate's common name is the
    /// requesting site's id (as in Skupper, the cert token, the Secret, is
    /// named after that id too); then spends one use *and* records that
    /// certificate in the claim record with one compare-and-swap (retried up to
    /// [`MAX_CAS_ATTEMPTS`](crate::claim::MAX_CAS_ATTEMPTS) times against
    /// concurrent redeemers), and only then returns the token. The rules, in
    /// order, and the HTTP status of each refusal are in [`crate::claim`].
    ///
    /// A claim name that no claim can have (not a token name,
    /// [`TokenOptions::name`](super::TokenOptions::name)) is
    /// [`RedeemError::NoSuchClaim`], as is a name the store cannot hold.
    ///
    /// An attempt the claim refuses (wrong password, expired, used up) is
    /// counted in its record
    /// ([`ClaimRecord::failed_attempts`](crate::claim::ClaimRecord::failed_attempts)),
    /// best effort: the answer is the same whether or not that write happens.
    /// The claim is checked before any key is made, so refused attempts cost no
    /// key generation.
    ///
    /// # One write, and what a crash can do
    ///
    /// A redemption writes the store once: the claim record, with one use fewer
    /// and the new certificate in
    /// [`ClaimRecord::issued`](crate::claim::ClaimRecord::issued). (A claim of
    /// more than [`CLAIM_ISSUED_KEPT`](crate::records::CLAIM_ISSUED_KEPT) uses
    /// costs one more write every that many redemptions, moving the
    /// certificates its record holds to an
    /// [`IssuedBatch`](crate::records::IssuedBatch) first.)
    ///
    /// - A crash (or store failure) before that write: nothing was spent and
    ///   nothing recorded; the certificate made was never handed out and is
    ///   forgotten.
    /// - A crash after it, before the token reaches the caller: the use is
    ///   spent and the certificate recorded but never used; the claim allows
    ///   one redemption fewer (the safe direction).
    /// - A crash between moving certificates to a batch and the write: they are
    ///   in both records; [`Site::issued`] counts each serial once.
    ///
    /// So a use is never spent without its certificate recorded (one write does
    /// both), and a certificate is never handed out without its use spent (it
    /// is returned only after the write is done).
    ///
    /// Redemptions of one claim through this handle take turns at spending
    /// (they wait, they do not fail; each makes its certificate before its
    /// turn); only handles in other processes can make the compare-and-swap
    /// conflict, and [`RedeemError::Conflict`] after
    /// [`MAX_CAS_ATTEMPTS`](crate::claim::MAX_CAS_ATTEMPTS) says so. A server
    /// may retry it after a pause (the CLI's claims server does).
    pub fn redeem_claim(
        &self,
        request: &RedeemRequest,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<CertToken, RedeemError> {
        let site_err = |e: TokenError| match e {
            TokenError::Store(source) => RedeemError::Store {
                claim: request.claim.clone(),
                source,
            },
            other => RedeemError::Issue {
                claim: request.claim.clone(),
                reason: other.to_string(),
            },
        };
        let loaded = self.loaded().map_err(|e| site_err(e.into()))?;
        let redeemer = Redeemer {
            store: &self.store,
            queue: &self.claim_queue,
            site_version: &loaded.record.version,
            ca_generation: loaded.record.ca_generation,
        };
        redeemer.redeem(request, now, rng, |rng| {
            self.make_cert_token(
                &loaded,
                &request.site_id,
                &request.site_id,
                loaded.record.cert_validity(),
                now,
                rng,
            )
            .map_err(site_err)
        })
    }
}
