//! Refused redemption attempts are kept in the claim record (so `token
//! status`, in another process than the claims server, can show them),
//! without changing any answer and without failing or holding up honest
//! redemptions; revoke-access says how many claims it really stopped.

// Tests may use threads: the clippy bans on threads are for the I/O-free core.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::sync::{Arc, Barrier};

use skupper_token::claim::{ClaimRecord, FailedAttempt, RedeemError, RedeemRequest};
use skupper_token::duration::GoDuration;
use skupper_token::random::SeededRandom;
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::token::ClaimToken;
use skupper_token::version::VERSION;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

type West = Site<Arc<MemoryStore>>;

fn west() -> (West, SeededRandom) {
    let mut rng = SeededRandom::new(21);
    let site = Site::create(
        Arc::new(MemoryStore::new()),
        &SiteConfig::new("west"),
        NOW,
        &mut rng,
    )
    .expect("create site");
    (site, rng)
}

fn claim(site: &West, rng: &mut SeededRandom, options: &TokenOptions) -> ClaimToken {
    site.create_claim_token(options, NOW, rng)
        .expect("claim token")
}

fn request(token: &ClaimToken, site_id: &str, right: bool) -> RedeemRequest {
    let password = if right {
        token.password.expose().as_bytes().to_vec()
    } else {
        b"guessed".to_vec()
    };
    RedeemRequest {
        claim: token.name.clone(),
        password,
        site_id: site_id.to_owned(),
        site_version: VERSION.to_owned(),
    }
}

fn record(site: &West, name: &str) -> ClaimRecord {
    site.claims()
        .expect("claims")
        .into_iter()
        .find(|c| c.name == name)
        .expect("claim record")
}

#[test]
fn refused_attempts_are_counted_with_the_latest_one() {
    let (site, mut rng) = west();
    let token = claim(&site, &mut rng, &TokenOptions::claim().uses(1));
    assert_eq!(record(&site, &token.name).failed_attempts, 0);

    for (i, who) in ["mallory", "eve"].iter().enumerate() {
        let at = NOW + Duration::seconds(i as i64);
        let err = site
            .redeem_claim(&request(&token, who, false), at, &mut rng)
            .unwrap_err();
        // The answer is what it always was.
        assert_eq!(
            err,
            RedeemError::WrongPassword {
                claim: token.name.clone()
            }
        );
        assert_eq!(
            (err.http_status(), err.http_body()),
            (403, "Claim refused\n".into())
        );
    }
    site.redeem_claim(&request(&token, "east", true), NOW, &mut rng)
        .expect("the right password still works");
    let err = site
        .redeem_claim(
            &request(&token, "north", true),
            NOW + Duration::seconds(5),
            &mut rng,
        )
        .unwrap_err();
    assert!(
        matches!(err, RedeemError::UsedUp { allowed: 1, .. }),
        "{err:?}"
    );

    let r = record(&site, &token.name);
    assert_eq!(r.claims_made, 1);
    assert_eq!(r.uses_remaining, Some(0));
    assert_eq!(r.failed_attempts, 3);
    assert_eq!(
        r.last_failed_attempt,
        Some(FailedAttempt {
            at: NOW + Duration::seconds(5),
            site: "north".into(),
            reason: "no uses left".into(),
        })
    );
}

#[test]
fn attempts_after_expiry_are_counted_and_unknown_claims_are_not() {
    let (site, mut rng) = west();
    let token = claim(
        &site,
        &mut rng,
        &TokenOptions::claim().expiry(GoDuration::from_secs(60)),
    );
    let later = NOW + Duration::minutes(2);
    let err = site
        .redeem_claim(&request(&token, "east", true), later, &mut rng)
        .unwrap_err();
    assert!(matches!(err, RedeemError::Expired { .. }), "{err:?}");
    let mut unknown = request(&token, "east", true);
    unknown.claim = "no-such-claim".into();
    assert!(matches!(
        site.redeem_claim(&unknown, later, &mut rng),
        Err(RedeemError::NoSuchClaim { .. })
    ));
    let r = record(&site, &token.name);
    assert_eq!(r.failed_attempts, 1);
    assert_eq!(
        r.last_failed_attempt.map(|a| a.reason),
        Some("expired".to_owned())
    );
    assert_eq!(
        site.claims().unwrap().len(),
        1,
        "no record for an unknown claim"
    );
}

/// Honest redemptions and wrong guesses of one many-use claim at once,
/// through one handle: every honest one succeeds, every guess is refused
/// and counted, none is lost.
#[test]
fn guesses_racing_honest_redemptions_are_all_counted_and_fail_nobody() {
    const THREADS: usize = 16;
    const ROUNDS: usize = 10;
    let (site, mut rng) = west();
    let token = claim(&site, &mut rng, &TokenOptions::claim().uses(0));
    let barrier = Barrier::new(THREADS);
    let outcomes: Vec<(bool, Result<(), RedeemError>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (site, token, barrier) = (&site, &token, &barrier);
                s.spawn(move || {
                    let honest = t % 2 == 0;
                    let mut rng = SeededRandom::new(100 + t as u64);
                    barrier.wait();
                    (0..ROUNDS)
                        .map(|_| {
                            let r = request(token, &format!("site-{t}"), honest);
                            (honest, site.redeem_claim(&r, NOW, &mut rng).map(|_| ()))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("thread"))
            .collect()
    });
    let mut guesses = 0;
    for (honest, outcome) in outcomes {
        match (honest, outcome) {
            (true, Ok(())) => {}
            (false, Err(RedeemError::WrongPassword { .. })) => guesses += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    let r = record(&site, &token.name);
    assert_eq!(r.claims_made as usize, THREADS / 2 * ROUNDS);
    assert_eq!(r.failed_attempts, guesses);
    assert_eq!(guesses as usize, THREADS / 2 * ROUNDS);
}

/// `revoke-access` deletes every claim record, but only claims that could
/// still have been redeemed were stopped by it.
#[test]
fn revoke_access_counts_only_claims_that_could_still_be_redeemed() {
    let (site, mut rng) = west();
    let live = claim(&site, &mut rng, &TokenOptions::claim().uses(2));
    let used = claim(&site, &mut rng, &TokenOptions::claim().uses(1));
    let _expired = claim(
        &site,
        &mut rng,
        &TokenOptions::claim().expiry(GoDuration::from_secs(30)),
    );
    let _never = claim(
        &site,
        &mut rng,
        &TokenOptions::claim()
            .expiry(GoDuration::from_secs(0))
            .uses(0),
    );
    site.redeem_claim(&request(&used, "east", true), NOW, &mut rng)
        .expect("redeemed");
    site.redeem_claim(&request(&live, "east", true), NOW, &mut rng)
        .expect("redeemed");
    let revoked = site
        .revoke_access(NOW + Duration::minutes(1), &mut rng)
        .expect("revoke");
    assert_eq!(revoked.claims_deleted, 4);
    assert_eq!(
        revoked.claims_voided, 2,
        "the two-use claim and the unlimited one"
    );
    assert!(site.claims().unwrap().is_empty());
}
