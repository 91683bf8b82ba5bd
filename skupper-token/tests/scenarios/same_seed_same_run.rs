//! The same seed and the same calls give the same run, to the last event:
//! ids, tokens, heartbeats, dead peers, backoff waits and revocations.

use skupper_token::harness::Network;
use skupper_token::site::{LinkOptions, TokenOptions};
use skupper_token::time::Duration;

fn run(seed: u64) -> Vec<String> {
    let net = Network::new(seed);
    for site in ["west", "east", "north"] {
        net.add_site(site).unwrap();
    }
    for site in ["east", "north"] {
        let token = net.create_token("west", &TokenOptions::claim()).unwrap();
        net.create_link(site, token.encode().as_bytes(), &LinkOptions::default())
            .unwrap();
    }
    net.run_for(Duration::seconds(5)).unwrap();
    net.set_reachable("north", false).unwrap();
    net.run_for(Duration::seconds(40)).unwrap();
    net.set_reachable("north", true).unwrap();
    net.run_for(Duration::seconds(40)).unwrap();
    net.ping("east", "link1").unwrap();
    net.revoke_access("west").unwrap();
    net.run_for(Duration::seconds(10)).unwrap();
    net.events()
}

#[test]
fn two_runs_with_one_seed_log_the_same_events() {
    let first = run(8);
    assert_eq!(first, run(8));
    // Long enough to mean something: the cut, the redials, the notices.
    for what in ["heartbeat timeout", "dial failed", "link revoked", "pong 1"] {
        assert!(first.iter().any(|l| l.contains(what)), "{what}: {first:#?}");
    }
    // Another seed draws other ids and other backoff waits.
    assert_ne!(first, run(9));
}
