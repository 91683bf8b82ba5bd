//! Scenarios on the in-memory network ([`skupper_token::harness::Network`]),
//! one per file, each told as the user documentation tells it: sites,
//! tokens, links, and what `skupper status` and `skupper link status` say.
//! Every link runs the core's link protocol on both ends, on a virtual
//! clock with seeded randomness, so each run repeats exactly and nothing
//! sleeps.

mod claim_uses_and_expiry;
mod dead_peer;
mod goodbye;
mod link_and_heartbeat;
mod mixed_token_formats;
mod ping;
mod reconnect_backoff;
mod revoke_access_notice;
mod revoke_one_site;
mod revoked_while_offline;
mod same_seed_same_run;
mod suspended_network;
mod v2_grants_three_sites;
mod v2_links_connect_and_revoke;

use skupper_token::harness::Network;
use skupper_token::site::{LinkOptions, TokenOptions};

/// `west` and `east`, and east linked to west with a claim token, the
/// link up (at the start of the clock).
fn east_linked_to_west(seed: u64) -> Network {
    let net = Network::new(seed);
    net.add_site("west").unwrap();
    net.add_site("east").unwrap();
    // $ skupper token create secret.yaml  (on west)
    let token = net.create_token("west", &TokenOptions::claim()).unwrap();
    // $ skupper link create secret.yaml  (on east)
    net.create_link("east", token.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    net.tick().unwrap();
    assert_eq!(
        net.link_status("east", "link1").unwrap().to_string(),
        "Link link1 is connected"
    );
    net
}

/// `skupper status` on `site`.
fn status(net: &Network, site: &str) -> String {
    net.status(site).unwrap().to_string()
}

/// `skupper link status link1` on `site`.
fn link1(net: &Network, site: &str) -> String {
    net.link_status(site, "link1").unwrap().to_string()
}

/// The times (since the start, in milliseconds) of the log lines of `who`
/// (`east link1`, `west <- east link1`) that contain `what`.
fn times_of(net: &Network, who: &str, what: &str) -> Vec<i64> {
    net.events()
        .iter()
        .filter_map(|l| {
            let (t, rest) = l
                .strip_prefix('+')
                .and_then(|l| l.split_once("s "))
                .unwrap_or_else(|| panic!("a log line starts with +<seconds>s: {l}"));
            let line = rest.strip_prefix(who)?.strip_prefix(": ")?;
            line.contains(what).then_some(t)
        })
        .map(|t| {
            let (s, ms) = t.split_once('.').expect("seconds.millis");
            s.parse::<i64>().unwrap() * 1000 + ms.parse::<i64>().unwrap()
        })
        .collect()
}
