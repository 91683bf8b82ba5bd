//! The user documentation (`using-skupper-tokens.txt`), scenario by
//! scenario, over an in-memory network of three sites: west, east, north.

use skupper_token::claim::RedeemRequest;
use skupper_token::duration::GoDuration;
use skupper_token::harness::{HarnessError, Network};
use skupper_token::link::LinkState;
use skupper_token::pki::{certificate_info, pem_to_der, AuthError};
use skupper_token::site::{
    LinkError, LinkOptions, RevokeError, SiteConfig, SiteError, SiteMode, TokenOptions,
};
use skupper_token::token::Token;
use time::Duration;

fn three_sites() -> Network {
    let net = Network::new(2026);
    for name in ["west", "east", "north"] {
        net.add_site(name).expect("add site");
    }
    net
}

fn redemption_error(e: HarnessError) -> String {
    match e {
        HarnessError::Site(SiteError::Link(LinkError::ClaimRedemption { reason, .. })) => reason,
        other => panic!("expected a claim redemption failure, got {other:?}"),
    }
}

/// `skupper token create $HOME/secret.yaml --expiry 30m0s --uses 2 -t
/// claim`: two links can be made with it, the third is refused.
#[test]
fn claim_token_with_two_uses_links_twice_then_is_refused() {
    let net = three_sites();
    net.add_site("south").unwrap();
    let options = TokenOptions::claim()
        .expiry(GoDuration::parse("30m0s").unwrap())
        .uses(2);
    let token = net.create_token("west", &options).unwrap();
    let Token::Claim(claim) = &token else {
        panic!("-t claim gives a claim token")
    };
    assert_eq!(claim.expires_at, Some(net.now() + Duration::minutes(30)));
    let file = token.encode();

    for site in ["east", "north"] {
        let link = net
            .create_link(site, file.as_bytes(), &LinkOptions::default())
            .unwrap();
        assert_eq!(link.name, "link1");
        assert_eq!(*link.state(), LinkState::Connecting, "claim redeemed");
    }
    let err = net
        .create_link("south", file.as_bytes(), &LinkOptions::default())
        .unwrap_err();
    let reason = redemption_error(err);
    assert!(reason.starts_with("No such claim"), "{reason}");
    assert!(reason.contains("no uses left (2 uses allowed)"), "{reason}");

    // The refused link leaves nothing behind.
    assert_eq!(
        net.site("south").unwrap().links().unwrap(),
        Vec::new(),
        "a refused link is not kept"
    );
    let claims = net.site("west").unwrap().claims().unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].claims_made, 2);
    assert_eq!(claims[0].uses_remaining, Some(0));

    // So a new token from the same site links at once: no "Already
    // connected to" for a link that never connected.
    let again = net.create_token("west", &TokenOptions::claim()).unwrap();
    let link = net
        .create_link("south", again.encode().as_bytes(), &LinkOptions::default())
        .expect("a refused link does not block the next one");
    assert_eq!(link.name, "link1");
    assert_eq!(*link.state(), LinkState::Connecting);
}

/// A link whose claim the issuing site refused for good (made with
/// `add_link` and `redeem_link`, as a running site retries pending links)
/// is not a link to that site: the next token from it replaces the refused
/// link instead of being refused as "Already connected".
#[test]
fn a_refused_link_does_not_count_as_a_link_to_its_site() {
    let net = three_sites();
    let used = net.create_token("west", &TokenOptions::claim()).unwrap();
    net.create_link("north", used.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    let east = net.site("east").unwrap();
    let link = east
        .add_link(
            used.encode().as_bytes(),
            &LinkOptions::default(),
            net.now(),
            &mut skupper_token::random::SeededRandom::new(7),
        )
        .unwrap();
    assert_eq!(*link.state(), LinkState::Pending);
    let refused = net.redeem_link("east", &link.name).unwrap_err();
    assert!(
        matches!(
            refused,
            HarnessError::Site(SiteError::Link(LinkError::ClaimRedemption {
                retryable: false,
                ..
            }))
        ),
        "{refused:?}"
    );
    assert!(east.link("link1").unwrap().is_refused());

    let again = net.create_token("west", &TokenOptions::claim()).unwrap();
    let link = net
        .create_link("east", again.encode().as_bytes(), &LinkOptions::default())
        .expect("the refused link is replaced");
    assert_eq!(link.name, "link1");
    assert_eq!(*link.state(), LinkState::Connecting);
    assert_eq!(east.links().unwrap().len(), 1);
    net.tick().unwrap();
    assert_eq!(
        net.link_status("east", "link1").unwrap().to_string(),
        "Link link1 is connected"
    );
}

/// `--expiry`: once the time passes the claim is refused, with the time.
#[test]
fn claim_token_is_refused_after_it_expires() {
    let net = three_sites();
    let token = net
        .create_token(
            "west",
            &TokenOptions::claim()
                .expiry(GoDuration::parse("30m0s").unwrap())
                .uses(5),
        )
        .unwrap();
    net.advance(Duration::minutes(29));
    net.create_link("east", token.encode().as_bytes(), &LinkOptions::default())
        .expect("still valid after 29 minutes");
    net.advance(Duration::minutes(1));
    let err = net
        .create_link("north", token.encode().as_bytes(), &LinkOptions::default())
        .unwrap_err();
    let reason = redemption_error(err);
    let expected_time = (skupper_token::harness::DEFAULT_START + Duration::minutes(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(reason, format!("No such claim: expired at {expected_time}"));
}

/// Default claim token: 15 minutes, one use. `--expiry 0` never expires.
#[test]
fn claim_token_defaults_and_never_expiring_tokens() {
    let net = three_sites();
    let token = net.create_token("west", &TokenOptions::claim()).unwrap();
    let Token::Claim(claim) = &token else {
        panic!()
    };
    assert_eq!(claim.expires_at, Some(net.now() + Duration::minutes(15)));
    assert_eq!(claim.password.expose().len(), 24);
    assert!(claim
        .password
        .expose()
        .bytes()
        .all(|b| b.is_ascii_alphanumeric()));
    assert!(
        uuid_like(&claim.name),
        "default claim name is a UUID: {}",
        claim.name
    );
    assert_eq!(claim.url, format!("https://west:8081/{}", claim.name));
    net.create_link("east", token.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    let reason = redemption_error(
        net.create_link("north", token.encode().as_bytes(), &LinkOptions::default())
            .unwrap_err(),
    );
    assert!(reason.contains("(1 use allowed)"), "{reason}");

    let forever = net
        .create_token(
            "west",
            &TokenOptions::claim().expiry(GoDuration::ZERO).uses(0),
        )
        .unwrap();
    let Token::Claim(c) = &forever else { panic!() };
    assert_eq!(c.expires_at, None);
    net.advance(Duration::days(365));
    for i in 0..5 {
        let name = format!("far{i}");
        net.add_site(&name).unwrap();
        net.create_link(&name, forever.encode().as_bytes(), &LinkOptions::default())
            .expect("unlimited, never-expiring claim");
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
}

/// Cert tokens "can be reused indefinitely unless revoked".
#[test]
fn cert_token_is_reused_by_many_sites() {
    let net = three_sites();
    let token = net.create_token("west", &TokenOptions::cert()).unwrap();
    let Token::Cert(cert) = &token else {
        panic!("-t cert")
    };
    assert_eq!(cert.name, "skupper");
    let info = certificate_info(&pem_to_der(&cert.cert_pem).unwrap()).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("skupper"));
    let file = token.encode();
    let mut sites = vec!["east".to_owned(), "north".to_owned()];
    for i in 0..6 {
        let name = format!("site{i}");
        net.add_site(&name).unwrap();
        sites.push(name);
    }
    for site in &sites {
        net.create_link(site, file.as_bytes(), &LinkOptions::default())
            .unwrap();
    }
    net.tick().unwrap();
    for site in &sites {
        assert_eq!(
            net.link_status(site, "link1").unwrap().to_string(),
            "Link link1 is connected"
        );
    }
    assert_eq!(
        net.status("west").unwrap().to_string(),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 8 other sites."
    );
}

/// The revoke-access section: west links to north, east links to west;
/// west is linked to 2 other sites; revoke-access drops the incoming link
/// and keeps the outgoing one; east cannot link again until it deletes its
/// stale link.
#[test]
fn revoking_access_drops_incoming_links_and_keeps_outgoing_ones() {
    let net = three_sites();
    let to_north = net.create_token("north", &TokenOptions::claim()).unwrap();
    net.create_link(
        "west",
        to_north.encode().as_bytes(),
        &LinkOptions::default(),
    )
    .unwrap();
    let to_west = net.create_token("west", &TokenOptions::claim()).unwrap();
    net.create_link("east", to_west.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    net.tick().unwrap();

    // $ skupper status
    assert_eq!(
        net.status("west").unwrap().to_string(),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 2 other sites."
    );
    // $ skupper link status: one outgoing link, so one incoming link.
    assert_eq!(
        net.link_status("west", "link1").unwrap().to_string(),
        "Link link1 is connected"
    );
    let west = net.site("west").unwrap();
    assert_eq!(west.links().unwrap().len(), 1);
    assert_eq!(west.incoming().len(), 1);
    assert_eq!(west.incoming()[0].peer_site_name, "east");
    let east_cert = net
        .site("east")
        .unwrap()
        .link("link1")
        .unwrap()
        .cert_token()
        .unwrap()
        .unwrap();

    // $ skupper revoke-access
    let outstanding = net.create_token("west", &TokenOptions::claim()).unwrap();
    let revoked = net.revoke_access("west").unwrap();
    assert_eq!(revoked.ca_generation, 2);
    assert_eq!(revoked.claims_deleted, 2);
    assert_eq!(revoked.incoming_dropped.len(), 1);
    assert_eq!(
        net.status("west").unwrap().to_string(),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 1 other site."
    );
    net.tick().unwrap();
    assert_eq!(
        net.status("west").unwrap().to_string(),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 1 other site."
    );
    assert_eq!(
        net.link_status("west", "link1").unwrap().to_string(),
        "Link link1 is connected",
        "outgoing links are still connected"
    );
    // West's signed notice told east at once: its link is revoked.
    assert_eq!(
        net.link_status("east", "link1").unwrap().to_string(),
        format!(
            "Link link1 not connected (access revoked by west (site {}) at 2026-01-01T00:00:00Z; \
             to link again, get a new token from that site and replace this link with it)",
            west.id()
        )
    );

    // The old certificate cannot authenticate again.
    let der = pem_to_der(&east_cert.cert_pem).unwrap();
    assert!(matches!(
        west.authenticate_peer(&[&der], net.now()),
        Err(AuthError::UnknownIssuer { .. })
    ));
    // The claim token made before the revoke no longer works.
    let request = match &outstanding {
        Token::Claim(c) => RedeemRequest {
            claim: c.name.clone(),
            password: c.password.expose().as_bytes().to_vec(),
            site_id: "someone".into(),
            site_version: "1.9.6".into(),
        },
        Token::Cert(_) => unreachable!(),
    };
    assert!(net
        .with_rng(|rng| west.redeem_claim(&request, net.now(), rng))
        .is_err());

    // The remote site still has its link: "Already connected to <site>".
    let again = net.create_token("west", &TokenOptions::claim()).unwrap();
    let err = net
        .create_link("east", again.encode().as_bytes(), &LinkOptions::default())
        .unwrap_err();
    let message = err.to_string();
    // The library describes the situation; the command to run is the
    // CLI's to add.
    assert_eq!(
        message,
        format!(
            "Already connected to \"{}\". The existing link \"link1\" goes to that site.",
            west.id()
        )
    );
    assert_eq!(
        west.claims().unwrap()[0].claims_made,
        0,
        "a refused link spends no use"
    );

    // $ skupper link delete link1, then link again.
    net.delete_link("east", "link1").unwrap();
    net.create_link("east", again.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    net.tick().unwrap();
    assert_eq!(
        net.link_status("east", "link1").unwrap().to_string(),
        "Link link1 is connected"
    );
    assert_eq!(
        net.status("west").unwrap().to_string(),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 2 other sites."
    );
}

/// Revoking one remote site: its certificates stop authenticating, every
/// other site stays linked.
#[test]
fn revoking_one_site_leaves_the_others_linked() {
    let net = three_sites();
    for site in ["east", "north"] {
        let token = net.create_token("west", &TokenOptions::claim()).unwrap();
        net.create_link(site, token.encode().as_bytes(), &LinkOptions::default())
            .unwrap();
    }
    net.tick().unwrap();
    assert_eq!(net.status("west").unwrap().linked_sites, 2);
    let east_id = net.site("east").unwrap().id().to_owned();
    let revoked = net.revoke_peer("west", &east_id).unwrap();
    assert_eq!(revoked.revoked.len(), 1);
    assert_eq!(revoked.incoming_dropped.len(), 1);
    net.tick().unwrap();
    assert_eq!(net.status("west").unwrap().linked_sites, 1);
    assert_eq!(
        net.link_status("north", "link1").unwrap().to_string(),
        "Link link1 is connected"
    );
    // West's signed notice told east: its link is revoked.
    assert_eq!(
        net.link_status("east", "link1").unwrap().to_string(),
        format!(
            "Link link1 not connected (access revoked by west (site {}) at 2026-01-01T00:00:00Z; \
             to link again, get a new token from that site and replace this link with it)",
            net.site("west").unwrap().id()
        )
    );

    // Revoking by site name works too, and an unknown peer is an error.
    net.revoke_peer("west", "north").unwrap();
    net.tick().unwrap();
    assert_eq!(net.status("west").unwrap().linked_sites, 0);
    assert!(matches!(
        net.revoke_peer("west", "nobody"),
        Err(HarnessError::Site(SiteError::Revoke(
            RevokeError::UnknownPeer { .. }
        )))
    ));
}

/// The checks of `link create`, in Skupper's words, all before any claim
/// is redeemed.
#[test]
fn link_create_checks_run_before_redemption() {
    let net = three_sites();
    let token = net
        .create_token("west", &TokenOptions::claim().uses(1))
        .unwrap();
    let file = token.encode();

    let own = net.create_token("east", &TokenOptions::claim()).unwrap();
    let err = net
        .create_link("east", own.encode().as_bytes(), &LinkOptions::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Can't create connection to self with token"
    );

    let incomplete = file.replace("  password:", "  passwd:");
    let err = net
        .create_link("east", incomplete.as_bytes(), &LinkOptions::default())
        .unwrap_err();
    assert_eq!(err.to_string(), "Expected password field in secret data");

    let north = net.create_token("north", &TokenOptions::cert()).unwrap();
    net.create_link(
        "east",
        north.encode().as_bytes(),
        &LinkOptions::default().name("mine"),
    )
    .unwrap();
    let err = net
        .create_link(
            "east",
            file.as_bytes(),
            &LinkOptions::default().name("mine"),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "The connector secret \"mine\" already exists, please choose a different name"
    );
    assert_eq!(
        net.site("west").unwrap().claims().unwrap()[0].claims_made,
        0,
        "no check above spent the single use"
    );
    let link = net
        .create_link("east", file.as_bytes(), &LinkOptions::default().cost(5))
        .unwrap();
    assert_eq!((link.name.as_str(), link.cost), ("link1", 5));
    assert!(
        !link.has_claim(),
        "the password is not kept after redemption"
    );
    assert_eq!(link.target(), "west:55671");

    let err = net.link_status("east", "link7").unwrap_err();
    assert_eq!(err.to_string(), "No such link \"link7\"");
    net.delete_link("east", "mine").unwrap();
    assert_eq!(
        net.link_status("east", "mine").unwrap_err().to_string(),
        "No such link \"mine\""
    );
}

/// Edge sites cannot issue tokens or accept links, and say so; they link
/// to the edge port.
#[test]
fn edge_sites_link_but_do_not_accept() {
    let net = three_sites();
    net.add_site_with(SiteConfig::new("branch").mode(SiteMode::Edge))
        .unwrap();
    let err = net
        .create_token("branch", &TokenOptions::claim())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Edge configuration cannot accept connections"
    );
    let token = net.create_token("west", &TokenOptions::claim()).unwrap();
    let link = net
        .create_link("branch", token.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    assert_eq!(link.target(), "west:45671");
    net.tick().unwrap();
    assert_eq!(
        net.status("branch").unwrap().to_string(),
        "Skupper is enabled for namespace \"branch\" in edge mode. It is linked to 1 other site."
    );
    assert_eq!(net.status("west").unwrap().linked_sites, 1);
}

/// A site that becomes unreachable: its links go down with a reason and
/// come back when it returns.
#[test]
fn unreachable_sites_drop_and_recover() {
    let net = three_sites();
    let token = net.create_token("west", &TokenOptions::cert()).unwrap();
    net.create_link("east", token.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    net.tick().unwrap();
    assert_eq!(net.status("west").unwrap().linked_sites, 1);

    // Both sides notice by the dead-peer timeout (3 s without a heartbeat).
    net.set_reachable("east", false).unwrap();
    net.run_for(Duration::seconds(3)).unwrap();
    assert_eq!(net.status("west").unwrap().linked_sites, 0);
    assert_eq!(
        net.link_status("east", "link1").unwrap().to_string(),
        "Link link1 not connected (heartbeat timeout: no answer from west:55671 (site west) \
         for 3s)"
    );

    // East dials again after its first backoff wait (at most 1 s).
    net.set_reachable("east", true).unwrap();
    net.run_for(Duration::seconds(1)).unwrap();
    assert_eq!(net.status("west").unwrap().linked_sites, 1);
    assert_eq!(
        net.link_status("east", "link1").unwrap().to_string(),
        "Link link1 is connected"
    );
    let link = net.site("east").unwrap().link("link1").unwrap();
    let history = link.history();
    let steps: Vec<_> = history.iter().map(|t| t.to.as_str()).collect();
    assert_eq!(steps, ["connected", "not-connected", "connected"]);
}

/// Runs repeat exactly: same seed, same tokens.
#[test]
fn networks_are_deterministic() {
    let run = || {
        let net = three_sites();
        let token = net.create_token("west", &TokenOptions::claim()).unwrap();
        net.create_link("east", token.encode().as_bytes(), &LinkOptions::default())
            .unwrap();
        (token.encode(), net.site("east").unwrap().id().to_owned())
    };
    assert_eq!(run(), run());
}

/// A claim deleted by its site (for example because its token file could
/// not be written) can no longer be redeemed.
#[test]
fn deleted_claims_are_refused() {
    let net = three_sites();
    let token = net.create_token("west", &TokenOptions::claim()).unwrap();
    let west = net.site("west").unwrap();
    assert!(west.delete_claim(token.name()).unwrap(), "it existed");
    assert!(!west.delete_claim(token.name()).unwrap(), "it is gone");
    let reason = redemption_error(
        net.create_link("east", token.encode().as_bytes(), &LinkOptions::default())
            .unwrap_err(),
    );
    assert_eq!(reason, "No such claim");
}
