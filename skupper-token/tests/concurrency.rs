//! Concurrent redemption of one claim on one store: the use count is a
//! compare-and-swap, so however the redeemers race, a claim with N uses
//! gives exactly N certificates.
//!
//! Two ways: all threads share one `Site` handle, or each opens its own
//! handle on the same `Arc<MemoryStore>` (as separate processes sharing a
//! store would).
//!
//! Why `RedeemError::Conflict` cannot happen here: a redeemer's
//! compare-and-swap fails only when another redeemer spent a use between its
//! read and its write, and only successful spends change the claim record.
//! So a redeemer fails at most (total successes) times in a row, which is
//! below `MAX_CAS_ATTEMPTS` (16) for 5 uses, and at most 15 for 16 threads on
//! an unlimited claim.

// Tests may use threads: the clippy bans on threads are for the I/O-free core.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::thread;

use skupper_token::claim::{RedeemError, RedeemRequest, MAX_CAS_ATTEMPTS};
use skupper_token::duration::GoDuration;
use skupper_token::pki::{certificate_info, pem_to_der};
use skupper_token::random::SeededRandom;
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::token::{CertToken, ClaimToken};
use skupper_token::version::VERSION;
use time::macros::datetime;
use time::OffsetDateTime;

const THREADS: usize = 16;
const USES: u32 = 5;
const ROUNDS: u64 = 8;
const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

/// How each thread gets its handle on the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handles {
    /// One `Arc<Site>` shared by every thread.
    Shared,
    /// `Site::open` on the same store in every thread.
    PerThread,
}

type MemorySite = Site<Arc<MemoryStore>>;

/// A fresh site in a fresh store and a claim token with `uses` uses (0 =
/// unlimited).
fn site_with_claim(seed: u64, uses: u32) -> (Arc<MemoryStore>, Arc<MemorySite>, ClaimToken) {
    let store = Arc::new(MemoryStore::new());
    let mut rng = SeededRandom::new(seed);
    let site =
        Site::create(store.clone(), &SiteConfig::new("west"), NOW, &mut rng).expect("create site");
    let token = site
        .create_claim_token(
            &TokenOptions::claim()
                .uses(uses)
                .expiry(GoDuration::from_secs(3600)),
            NOW,
            &mut rng,
        )
        .expect("create claim token");
    (store, Arc::new(site), token)
}

fn requester(thread: usize) -> String {
    format!("site-{thread:02}")
}

/// `THREADS` threads redeem `token` at once (released together by a
/// barrier), each as its own requesting site with its own random generator.
/// Returns (requesting site id, outcome) per thread.
fn race(
    round: u64,
    handles: Handles,
    store: &Arc<MemoryStore>,
    site: &Arc<MemorySite>,
    token: &ClaimToken,
) -> Vec<(String, Result<CertToken, RedeemError>)> {
    let barrier = Barrier::new(THREADS);
    thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let handle = match handles {
                        Handles::Shared => site.clone(),
                        Handles::PerThread => {
                            Arc::new(Site::open(store.clone()).expect("open site"))
                        }
                    };
                    let mut rng = SeededRandom::new(1_000_000 * (round + 1) + t as u64);
                    let request = RedeemRequest {
                        claim: token.name.clone(),
                        password: token.password.expose().as_bytes().to_vec(),
                        site_id: requester(t),
                        site_version: VERSION.to_owned(),
                    };
                    barrier.wait();
                    (requester(t), handle.redeem_claim(&request, NOW, &mut rng))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("redeemer thread panicked"))
            .collect()
    })
}

/// Checks the winners' certificates and the site's records: distinct
/// serials, CN = requesting site id, one issued record each, each
/// authenticates at the site; the claim counts exactly `successes`.
fn check_winners(
    site: &MemorySite,
    token: &ClaimToken,
    winners: &[(String, CertToken)],
    uses_allowed: Option<u32>,
) {
    let mut serials = BTreeSet::new();
    for (requester, cert) in winners {
        assert_eq!(cert.issuer_site_id, site.id());
        let der = pem_to_der(&cert.cert_pem).expect("certificate PEM");
        let info = certificate_info(&der).expect("certificate info");
        assert_eq!(
            info.common_name.as_deref(),
            Some(requester.as_str()),
            "CN = requesting site id"
        );
        assert!(
            serials.insert(info.serial_hex.clone()),
            "serial {} issued twice",
            info.serial_hex
        );
        let peer = site
            .authenticate_peer(&[&der], NOW)
            .expect("issued certificate authenticates");
        assert_eq!(peer.common_name, *requester);
        assert_eq!(peer.serial_hex, info.serial_hex);
    }
    let issued: BTreeSet<(String, String)> = site
        .issued()
        .expect("issued records")
        .into_iter()
        .map(|r| (r.serial, r.common_name))
        .collect();
    let expected: BTreeSet<(String, String)> = winners
        .iter()
        .map(|(requester, cert)| {
            let der = pem_to_der(&cert.cert_pem).expect("certificate PEM");
            (
                certificate_info(&der).expect("certificate info").serial_hex,
                requester.clone(),
            )
        })
        .collect();
    assert_eq!(
        issued, expected,
        "one issued record per certificate handed out"
    );
    let claims = site.claims().expect("claims");
    assert_eq!(claims.len(), 1);
    let claim = &claims[0];
    assert_eq!(claim.name, token.name);
    assert_eq!(claim.claims_made as usize, winners.len(), "claims made");
    assert_eq!(claim.uses_allowed, uses_allowed);
    assert_eq!(
        claim.uses_remaining,
        uses_allowed.map(|u| u - winners.len() as u32),
        "uses remaining"
    );
}

fn limited_claim_race(handles: Handles) {
    const _: () = assert!(USES < MAX_CAS_ATTEMPTS && (USES as usize) < THREADS);
    for round in 0..ROUNDS {
        let (store, site, token) = site_with_claim(round, USES);
        let results = race(round, handles, &store, &site, &token);
        assert_eq!(results.len(), THREADS);
        let mut winners = Vec::new();
        let mut used_up = 0;
        for (requester, result) in results {
            match result {
                Ok(cert) => winners.push((requester, cert)),
                Err(RedeemError::UsedUp { allowed: USES, .. }) => used_up += 1,
                Err(e) => panic!("{handles:?} round {round}: {requester} got {e:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            USES as usize,
            "{handles:?} round {round}: successes"
        );
        assert_eq!(
            winners.len() + used_up,
            THREADS,
            "every attempt succeeded or was refused as used up"
        );
        check_winners(&site, &token, &winners, Some(USES));
        // Once used up, it stays used up: a late redeemer is refused too.
        let late = RedeemRequest {
            claim: token.name.clone(),
            password: token.password.expose().as_bytes().to_vec(),
            site_id: "late".into(),
            site_version: VERSION.to_owned(),
        };
        assert!(matches!(
            site.redeem_claim(&late, NOW, &mut SeededRandom::new(7)),
            Err(RedeemError::UsedUp { allowed: USES, .. })
        ));
    }
}

#[test]
fn five_use_claim_shared_handle_gives_exactly_five_certificates() {
    limited_claim_race(Handles::Shared);
}

#[test]
fn five_use_claim_handle_per_thread_gives_exactly_five_certificates() {
    limited_claim_race(Handles::PerThread);
}

/// No lost updates: on an unlimited claim every racing redemption succeeds
/// and is counted.
#[test]
fn unlimited_claim_counts_every_concurrent_redemption() {
    const _: () = assert!(THREADS <= MAX_CAS_ATTEMPTS as usize);
    for (round, handles) in [(10, Handles::Shared), (11, Handles::PerThread)] {
        let (store, site, token) = site_with_claim(round, 0);
        let results = race(round, handles, &store, &site, &token);
        let winners: Vec<(String, CertToken)> = results
            .into_iter()
            .map(|(requester, result)| match result {
                Ok(cert) => (requester, cert),
                Err(e) => panic!("{handles:?}: {requester} got {e:?}"),
            })
            .collect();
        assert_eq!(winners.len(), THREADS);
        check_winners(&site, &token, &winners, None);
    }
}

/// A claim of more uses than its record keeps certificates for: racing
/// redeemers (each with its own handle, as separate processes) move the
/// full record's certificates to a batch while others spend, and still get
/// exactly the claim's uses, each certificate recorded once.
#[test]
fn many_use_claim_raced_across_handles_records_every_certificate_once() {
    use skupper_token::records::CLAIM_ISSUED_KEPT;
    let uses = CLAIM_ISSUED_KEPT as u32 + 8;
    let races = (uses as usize).div_ceil(THREADS) as u64 + 1;
    let (store, site, token) = site_with_claim(20, uses);
    let mut winners = Vec::new();
    let mut used_up = 0;
    for round in 0..races {
        for (requester, result) in race(20 + round, Handles::PerThread, &store, &site, &token) {
            match result {
                Ok(cert) => winners.push((format!("{requester}-{round}"), cert)),
                Err(RedeemError::UsedUp { allowed, .. }) if allowed == uses => used_up += 1,
                Err(e) => panic!("round {round}: {requester} got {e:?}"),
            }
        }
    }
    assert_eq!(winners.len(), uses as usize, "exactly the claim's uses");
    assert_eq!(used_up, races as usize * THREADS - uses as usize);
    // The certificates' common names are the requesters without the round.
    let winners: Vec<(String, CertToken)> = winners
        .into_iter()
        .map(|(name, cert)| (name[..name.rfind('-').unwrap()].to_owned(), cert))
        .collect();
    check_winners(&site, &token, &winners, Some(uses));
    assert_eq!(
        site.claims().expect("claims")[0].issued.len(),
        uses as usize - CLAIM_ISSUED_KEPT
    );
}
