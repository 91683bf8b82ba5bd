//! `skupper-token revoke-access --site east`: only east's certificate stops
//! working. East is told in a notice signed by west's current CA and its
//! link is revoked; north stays linked.

use skupper_token::harness::Network;
use skupper_token::link::{LinkState, RemoteSite};
use skupper_token::pki::{certificate_info, pem_to_der};
use skupper_token::site::{LinkOptions, TokenOptions};
use skupper_token::time::Duration;

use super::{link1, status};

#[test]
fn revoking_one_site_revokes_its_link_and_no_other() {
    let net = Network::new(6);
    for site in ["west", "east", "north"] {
        net.add_site(site).unwrap();
    }
    for site in ["east", "north"] {
        let token = net.create_token("west", &TokenOptions::claim()).unwrap();
        net.create_link(site, token.encode().as_bytes(), &LinkOptions::default())
            .unwrap();
    }
    net.run_for(Duration::seconds(5)).unwrap();
    assert_eq!(
        status(&net, "west"),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 2 other sites."
    );

    let east_id = net.site("east").unwrap().id().to_owned();
    let east_cert = net
        .site("east")
        .unwrap()
        .link("link1")
        .unwrap()
        .cert_token()
        .unwrap()
        .unwrap();
    let serial = certificate_info(&pem_to_der(&east_cert.cert_pem).unwrap())
        .unwrap()
        .serial_hex;
    let at = net.now();
    let revoked = net.revoke_peer("west", &east_id).unwrap();
    assert_eq!(revoked.revoked.len(), 1);
    assert_eq!(revoked.revoked[0].serial, serial);

    let west_id = net.site("west").unwrap().id().to_owned();
    assert_eq!(
        *net.site("east").unwrap().link("link1").unwrap().state(),
        LinkState::Revoked {
            by: RemoteSite {
                id: west_id,
                name: "west".into()
            },
            at
        }
    );
    let log = net.events();
    assert!(
        log.contains(&format!(
            "+5.000s east link1: link revoked: certificate(s) {serial} revoked"
        )),
        "{log:#?}"
    );

    // A minute later north is still linked, east is not.
    net.run_for(Duration::minutes(1)).unwrap();
    assert_eq!(link1(&net, "north"), "Link link1 is connected");
    assert_eq!(
        status(&net, "west"),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 1 other site."
    );
    let incoming = net.site("west").unwrap().incoming();
    assert_eq!(incoming.len(), 1);
    assert_eq!(incoming[0].peer_site_name, "north");
}
