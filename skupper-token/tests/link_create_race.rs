//! Links made at once on one site through several handles on one store (as
//! several `link create` or `token redeem` processes on one site do): a
//! token of one remote site makes one link and every other try is
//! `AlreadyConnected`; tokens of different remote sites all make a link,
//! each under a default name of its own. A link name taken between the
//! checks and the write is not reported as taken when the caller chose no
//! name.

// Tests may use threads: the clippy bans on threads are for the I/O-free core.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::thread;

use skupper_token::random::SeededRandom;
use skupper_token::site::{LinkError, LinkOptions, Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use time::macros::datetime;
use time::OffsetDateTime;

const THREADS: usize = 12;
const ROUNDS: u64 = 6;
const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

/// A cert token file of a new remote site named `name`.
fn cert_token(name: &str, seed: u64) -> String {
    let mut rng = SeededRandom::new(seed);
    let site = Site::create(MemoryStore::new(), &SiteConfig::new(name), NOW, &mut rng).unwrap();
    site.create_cert_token(&TokenOptions::cert(), NOW, &mut rng)
        .unwrap()
        .encode()
}

/// `THREADS` handles on one fresh site's store, released together, each
/// adds a link with `tokens[thread]`; the outcomes, in thread order.
fn race(round: u64, tokens: &[String]) -> Vec<Result<String, LinkError>> {
    let store = Arc::new(MemoryStore::new());
    Site::create(
        store.clone(),
        &SiteConfig::new("east"),
        NOW,
        &mut SeededRandom::new(round),
    )
    .unwrap();
    let barrier = Barrier::new(THREADS);
    thread::scope(|s| {
        let workers: Vec<_> = tokens
            .iter()
            .map(|token| {
                let (barrier, store) = (&barrier, store.clone());
                s.spawn(move || {
                    let site = Site::open(store).unwrap();
                    barrier.wait();
                    site.add_link(
                        token.as_bytes(),
                        &LinkOptions::default(),
                        NOW,
                        &mut SeededRandom::new(7),
                    )
                    .map(|l| l.name)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    })
}

#[test]
fn one_remote_site_raced_from_many_handles_makes_one_link() {
    for round in 0..ROUNDS {
        let token = cert_token("west", 100 + round);
        let outcomes = race(round, &vec![token; THREADS]);
        let made: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(made, [&"link1".to_owned()], "round {round}: {outcomes:?}");
        for outcome in &outcomes {
            match outcome {
                Ok(_) => {}
                Err(LinkError::AlreadyConnected { link, .. }) => assert_eq!(link, "link1"),
                Err(other) => panic!("round {round}: {other:?} ({other})"),
            }
        }
    }
}

#[test]
fn many_remote_sites_raced_at_once_all_link_under_names_of_their_own() {
    for round in 0..ROUNDS {
        let tokens: Vec<String> = (0..THREADS)
            .map(|t| cert_token(&format!("remote-{t}"), 1000 * (round + 1) + t as u64))
            .collect();
        let outcomes = race(round, &tokens);
        let names: BTreeSet<String> = outcomes
            .iter()
            .map(|o| match o {
                Ok(name) => name.clone(),
                Err(e) => panic!("round {round}: {e:?} ({e})"),
            })
            .collect();
        let want: BTreeSet<String> = (1..=THREADS).map(|n| format!("link{n}")).collect();
        assert_eq!(names, want, "round {round}");
    }
}
