//! The user documentation's three-site scenario with Skupper 2.x tokens:
//! a grant allowing 2 redemptions within 30 minutes links east and north to
//! west, refuses south (nothing is left behind, and south links again with
//! a new token), refuses everyone once expired; a second token to a site
//! already linked is "Already connected" whatever its format; revoke-access
//! voids the grants still outstanding.
//!
//! Redemptions go over the in-memory network to the grant server the
//! AccessToken's URL names. (The links' connections, and what they learn
//! from the hello: v2_links_connect_and_revoke.rs.)

use skupper_token::harness::{HarnessError, Network};
use skupper_token::link::ca_site_id;
use skupper_token::site::{LinkError, LinkOptions, SiteError};
use skupper_token::time::Duration;
use skupper_token::v2::{GrantOptions, GrantState};

use super::link1;

fn refusal(net: &Network, site: &str, token: &[u8]) -> String {
    match net.create_link(site, token, &LinkOptions::default()) {
        Err(HarnessError::Site(SiteError::Link(
            e @ LinkError::GrantRedemption {
                retryable: false, ..
            },
        ))) => {
            assert_eq!(net.site(site).unwrap().links().unwrap(), [], "nothing left");
            e.to_string()
        }
        other => panic!("expected a final refusal, got {other:?}"),
    }
}

/// `token status` on `site`: each grant's name, redemptions made/allowed
/// and state.
fn grants(net: &Network, site: &str) -> Vec<(String, u32, u32, GrantState)> {
    let now = net.now();
    net.site(site)
        .unwrap()
        .grants()
        .unwrap()
        .into_iter()
        .map(|g| {
            let state = g.state(now);
            (g.name, g.redemptions_made, g.redemptions_allowed, state)
        })
        .collect()
}

#[test]
fn an_access_token_links_as_many_sites_as_it_allows_until_it_expires() {
    let net = Network::new(7);
    for site in ["west", "east", "north", "south", "late"] {
        net.add_site(site).unwrap();
    }
    // $ skupper token issue west.yaml --redemptions-allowed 2 --expiration-window 30m
    let options = GrantOptions {
        redemptions_allowed: 2,
        expiration_window: Duration::minutes(30),
        ..GrantOptions::new("west-grant")
    };
    let (_, token) = net.issue_grant("west", &options).unwrap();
    let file = token.encode();
    let west_ca = net
        .site("west")
        .unwrap()
        .record()
        .unwrap()
        .ca
        .unwrap()
        .cert_pem;
    for site in ["east", "north"] {
        // $ skupper token redeem west.yaml  (on east, then north)
        let link = net
            .create_link(site, file.as_bytes(), &LinkOptions::default())
            .unwrap();
        assert_eq!(link.remote_site_id, ca_site_id(&west_ca));
        assert_eq!(
            link1(&net, site),
            "Link link1 not connected (connecting to west:55671)"
        );
    }
    assert_eq!(
        grants(&net, "west"),
        [("west-grant".to_owned(), 2, 2, GrantState::UsedUp)]
    );
    assert_eq!(
        refusal(&net, "south", file.as_bytes()),
        "the AccessToken of link \"link1\" was not redeemed: Controller got failed response: 404 (Not Found) No such access granted"
    );
    // South links again with a token of its own.
    let (_, again) = net
        .issue_grant("west", &GrantOptions::new("for-south"))
        .unwrap();
    net.create_link("south", again.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    assert_eq!(
        link1(&net, "south"),
        "Link link1 not connected (connecting to west:55671)"
    );

    // Another token, redeemed after its 30 minutes.
    let (_, late) = net
        .issue_grant(
            "west",
            &GrantOptions {
                name: "late-grant".into(),
                ..options.clone()
            },
        )
        .unwrap();
    net.run_for(Duration::minutes(30)).unwrap();
    assert_eq!(
        refusal(&net, "late", late.encode().as_bytes()),
        "the AccessToken of link \"link1\" was not redeemed: Controller got failed response: 404 (Not Found) No such claim"
    );
    let listed = grants(&net, "west");
    assert!(
        listed.contains(&("late-grant".to_owned(), 0, 2, GrantState::Expired)),
        "{listed:?}"
    );
}

#[test]
fn a_second_token_to_a_linked_site_is_already_connected_whatever_its_format() {
    let net = Network::new(8);
    for site in ["west", "east"] {
        net.add_site(site).unwrap();
    }
    let (_, token) = net
        .issue_grant("west", &GrantOptions::new("first"))
        .unwrap();
    net.create_link("east", token.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    let (_, second) = net
        .issue_grant("west", &GrantOptions::new("second"))
        .unwrap();
    let file = net.generate_link_file("west", "west-link", 1).unwrap();
    let claim = net
        .create_token("west", &skupper_token::site::TokenOptions::claim())
        .unwrap();
    for bytes in [second.encode(), file.encode_generated(), claim.encode()] {
        match net.create_link("east", bytes.as_bytes(), &LinkOptions::default()) {
            Err(HarnessError::Site(SiteError::Link(LinkError::AlreadyConnected {
                link, ..
            }))) => {
                assert_eq!(link, "link1")
            }
            other => panic!("expected Already connected, got {other:?}"),
        }
    }
    // Nothing was redeemed for the refused links.
    assert_eq!(
        grants(&net, "west")
            .into_iter()
            .find(|g| g.0 == "second")
            .map(|g| g.1),
        Some(0)
    );
    // --replace: the link goes, the new token makes it again.
    net.delete_link("east", "link1").unwrap();
    let link = net
        .create_link("east", second.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    assert_eq!(link.name, "link1");
    assert_eq!(link.token_kind(), "link file");
}

#[test]
fn revoke_access_voids_outstanding_grants_and_revokes_grant_linked_sites() {
    let net = Network::new(9);
    for site in ["west", "east", "north"] {
        net.add_site(site).unwrap();
    }
    let (_, used) = net.issue_grant("west", &GrantOptions::new("used")).unwrap();
    net.create_link("east", used.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    let (_, open) = net.issue_grant("west", &GrantOptions::new("open")).unwrap();
    // $ skupper-token revoke-access --site <east's id>  (on west)
    let east_id = net.site("east").unwrap().id().to_owned();
    let revoked = net.revoke_peer("west", &east_id).unwrap();
    assert_eq!(revoked.revoked.len(), 1);
    assert_eq!(revoked.revoked[0].common_name, east_id);
    // $ skupper-token revoke-access  (on west)
    let revoked = net.revoke_access("west").unwrap();
    assert_eq!((revoked.grants_deleted, revoked.grants_voided), (2, 1));
    assert_eq!(grants(&net, "west"), []);
    // The AccessToken trusts the old CA, which no longer certifies west's
    // endpoint: refused before anything is sent (a grant server asked
    // anyway answers 404 No such claim: tests/site_grants.rs).
    assert_eq!(
        refusal(&net, "north", open.encode().as_bytes()),
        "the AccessToken of link \"link1\" was not redeemed: the remote site's certificate is not issued by the CA in the token (the site has revoked access since the token was made)"
    );
}
