//! "Revoking access to a site", as the documentation tells it: west links
//! to north and east links to west; `skupper revoke-access` on west drops
//! the incoming link and keeps the outgoing one. East learns it at once
//! from a notice signed by the CA that issued its certificate: its link is
//! revoked, it never dials with those credentials again, and it links
//! again only after deleting the link and using a new token.

use skupper_token::harness::{HarnessError, Network};
use skupper_token::link::{LinkState, RemoteSite};
use skupper_token::site::{LinkError, LinkOptions, SiteError, TokenOptions};
use skupper_token::time::Duration;

use super::{link1, status, times_of};

#[test]
fn revoke_access_sends_a_signed_notice_and_the_linked_site_stops_dialing() {
    let net = Network::new(5);
    for site in ["west", "east", "north"] {
        net.add_site(site).unwrap();
    }
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
    net.run_for(Duration::seconds(30)).unwrap();

    // $ skupper status
    assert_eq!(
        status(&net, "west"),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 2 other sites."
    );
    // $ skupper link status
    assert_eq!(link1(&net, "west"), "Link link1 is connected");

    // $ skupper revoke-access
    let revoked_at = net.now();
    let revoked = net.revoke_access("west").unwrap();
    assert_eq!(revoked.ca_generation, 2);
    assert_eq!(revoked.incoming_dropped.len(), 1);
    assert_eq!(
        status(&net, "west"),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 1 other site."
    );
    assert_eq!(link1(&net, "west"), "Link link1 is connected");

    // East's link is revoked, by west, at that moment.
    let west_id = net.site("west").unwrap().id().to_owned();
    let east = net.site("east").unwrap();
    assert_eq!(
        *east.link("link1").unwrap().state(),
        LinkState::Revoked {
            by: RemoteSite {
                id: west_id.clone(),
                name: "west".into()
            },
            at: revoked_at
        }
    );
    assert_eq!(
        link1(&net, "east"),
        format!(
            "Link link1 not connected (access revoked by west (site {west_id}) at \
             2026-01-01T00:00:30Z; to link again, get a new token from that site and replace \
             this link with it)"
        )
    );
    let log = net.events();
    assert!(
        log.contains(
            &"+30.000s east link1: link revoked: all access revoked (new CA, generation 2)"
                .to_owned()
        ),
        "{log:#?}"
    );

    // It never dials with those credentials again.
    net.run_for(Duration::minutes(5)).unwrap();
    assert_eq!(times_of(&net, "east link1", "TLS connection to").len(), 1);
    assert_eq!(times_of(&net, "east link1", "dial failed").len(), 0);
    assert!(east.link("link1").unwrap().state().is_revoked());

    // "Already connected to <site>" until the link is deleted.
    let again = net.create_token("west", &TokenOptions::claim()).unwrap();
    assert_eq!(
        net.create_link("east", again.encode().as_bytes(), &LinkOptions::default()),
        Err(HarnessError::Site(SiteError::Link(
            LinkError::AlreadyConnected {
                site: west_id,
                link: "link1".into()
            }
        )))
    );
    // $ skupper link delete link1, and link again.
    net.delete_link("east", "link1").unwrap();
    net.create_link("east", again.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    net.tick().unwrap();
    assert_eq!(link1(&net, "east"), "Link link1 is connected");
    assert_eq!(
        status(&net, "west"),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 2 other sites."
    );
}
