#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests may touch the OS; the core library may not
#![allow(clippy::print_stdout)]
//! Rough timings of issuing and verifying (no assertions on wall-clock time).
//! Run with `cargo test --release -p skupper-token --test pki_timing -- --ignored --nocapture`.

use std::time::Instant;

use skupper_token::pki::{CaIssuer, DEFAULT_VALIDITY};
use skupper_token::random::SeededRandom;
use time::macros::datetime;

#[test]
#[ignore = "timing report; run in release with --nocapture"]
fn report_issue_and_verify_timings() {
    let now = datetime!(2026-03-01 12:00:00 UTC);
    let mut rng = SeededRandom::new(1);
    let n = 2000u32;

    let t = Instant::now();
    for _ in 0..50 {
        CaIssuer::new_site_ca(&mut rng, now, DEFAULT_VALIDITY).unwrap();
    }
    let per_ca = t.elapsed() / 50;

    let ca = CaIssuer::new_site_ca(&mut rng, now, DEFAULT_VALIDITY).unwrap();
    let t = Instant::now();
    let mut leaves = Vec::with_capacity(n as usize);
    for _ in 0..n {
        leaves.push(
            ca.issue_client("east", &mut rng, now, DEFAULT_VALIDITY)
                .unwrap(),
        );
    }
    let per_issue = t.elapsed() / n;

    let v = ca.peer_verifier().unwrap();
    let t = Instant::now();
    for leaf in &leaves {
        v.verify(&[&leaf.cert_der], now).unwrap();
    }
    let per_verify = t.elapsed() / n;

    println!("new_site_ca: {per_ca:?}  issue_client: {per_issue:?}  verify: {per_verify:?}");
}
