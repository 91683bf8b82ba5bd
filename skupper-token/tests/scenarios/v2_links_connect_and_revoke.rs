//! Links made from Skupper 2.x files, run: east redeems an AccessToken of
//! west's, north uses a Link file west generated. Both know west only by
//! its CA until the hello; they connect, learn west's site id from it, and
//! `revoke-access` on west then revokes both with a notice they verify.

use skupper_token::harness::Network;
use skupper_token::link::{ca_site_id, LinkState, RemoteSite};
use skupper_token::site::LinkOptions;
use skupper_token::time::Duration;
use skupper_token::v2::GrantOptions;

use super::{link1, status};

#[test]
fn access_token_and_link_file_links_connect_and_are_revoked() {
    let net = Network::new(21);
    for site in ["west", "east", "north"] {
        net.add_site(site).unwrap();
    }
    let west_ca = net
        .site("west")
        .unwrap()
        .record()
        .unwrap()
        .ca
        .unwrap()
        .cert_pem;
    // $ skupper token issue west.yaml  (on west); skupper token redeem west.yaml  (on east)
    let (_, token) = net
        .issue_grant("west", &GrantOptions::new("for-east"))
        .unwrap();
    let east = net
        .create_link("east", token.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    // $ skupper link generate > link.yaml  (on west); skupper link create link.yaml  (on north)
    let file = net.generate_link_file("west", "west-link", 1).unwrap();
    let north = net
        .create_link(
            "north",
            file.encode_generated().as_bytes(),
            &LinkOptions::default(),
        )
        .unwrap();
    for link in [&east, &north] {
        assert_eq!(link.remote_site_id, ca_site_id(&west_ca));
    }

    net.run_for(Duration::seconds(5)).unwrap();
    let west_id = net.site("west").unwrap().id().to_owned();
    for site in ["east", "north"] {
        assert_eq!(link1(&net, site), "Link link1 is connected", "{site}");
        // The hello told who west is.
        let link = net.site(site).unwrap().link("link1").unwrap();
        assert_eq!(link.remote_site_id, west_id, "{site}");
        assert!(!link.knows_site_by_ca());
    }
    assert_eq!(
        status(&net, "west"),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 2 other sites."
    );

    // $ skupper-token revoke-access  (on west)
    let at = net.now();
    net.revoke_access("west").unwrap();
    for site in ["east", "north"] {
        assert_eq!(
            *net.site(site).unwrap().link("link1").unwrap().state(),
            LinkState::Revoked {
                by: RemoteSite {
                    id: west_id.clone(),
                    name: "west".into()
                },
                at
            },
            "{site}"
        );
    }
    let log = net.events();
    for site in ["east", "north"] {
        assert!(
            log.contains(&format!(
                "+5.000s {site} link1: link revoked: all access revoked (new CA, generation 2)"
            )),
            "{log:#?}"
        );
    }
    net.run_for(Duration::minutes(1)).unwrap();
    assert_eq!(
        status(&net, "west"),
        "Skupper is enabled for namespace \"west\" in interior mode. It is not linked to any other sites."
    );
}
