//! "A claim token can be restricted by time and usage": a token made with
//! `--uses 2 --expiry 30m0s` links two sites, refuses a third, and refuses
//! everyone once it has expired. A refused link leaves nothing behind.

use skupper_token::duration::GoDuration;
use skupper_token::harness::{HarnessError, Network};
use skupper_token::site::{LinkError, LinkOptions, SiteError, TokenOptions};
use skupper_token::time::Duration;

use super::{link1, status};

fn refusal(net: &Network, site: &str, token: &[u8]) -> String {
    match net.create_link(site, token, &LinkOptions::default()) {
        Err(HarnessError::Site(
            e @ SiteError::Link(LinkError::ClaimRedemption {
                retryable: false, ..
            }),
        )) => {
            assert_eq!(net.site(site).unwrap().links().unwrap(), [], "nothing left");
            e.to_string()
        }
        other => panic!("expected a final refusal, got {other:?}"),
    }
}

#[test]
fn a_claim_token_links_as_many_sites_as_it_has_uses_until_it_expires() {
    let net = Network::new(7);
    for site in ["west", "east", "north", "south", "late"] {
        net.add_site(site).unwrap();
    }
    // $ skupper token create secret.yaml --expiry 30m0s --uses 2 -t claim
    let options = TokenOptions::claim()
        .uses(2)
        .expiry(GoDuration::from_secs(30 * 60));
    let token = net.create_token("west", &options).unwrap();
    let file = token.encode();
    for site in ["east", "north"] {
        net.create_link(site, file.as_bytes(), &LinkOptions::default())
            .unwrap();
    }
    net.tick().unwrap();
    assert_eq!(link1(&net, "east"), "Link link1 is connected");
    assert_eq!(link1(&net, "north"), "Link link1 is connected");
    assert_eq!(
        status(&net, "west"),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 2 other sites."
    );
    assert_eq!(
        refusal(&net, "south", file.as_bytes()),
        "Failed to redeem claim: No such claim: no uses left (2 uses allowed)"
    );

    // Another token, used after its 30 minutes.
    let token = net.create_token("west", &options).unwrap();
    net.run_for(Duration::minutes(30)).unwrap();
    assert_eq!(
        refusal(&net, "late", token.encode().as_bytes()),
        "Failed to redeem claim: No such claim: expired at 2026-01-01T00:30:00Z"
    );
    // The links made in time are still up.
    assert_eq!(net.status("west").unwrap().linked_sites, 2);
}
