//! One network, three token formats: east links to west with a 1.x claim
//! token, north with a 2.x AccessToken, south with a 2.x Link file. All
//! three connect and `skupper status` on west counts them alike.

use skupper_token::harness::Network;
use skupper_token::site::{LinkOptions, TokenOptions};
use skupper_token::time::Duration;
use skupper_token::v2::GrantOptions;

use super::{link1, status};

#[test]
fn claim_access_token_and_link_file_links_count_alike() {
    let net = Network::new(22);
    for site in ["west", "east", "north", "south"] {
        net.add_site(site).unwrap();
    }
    let claim = net.create_token("west", &TokenOptions::claim()).unwrap();
    net.create_link("east", claim.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    let (_, grant) = net
        .issue_grant("west", &GrantOptions::new("for-north"))
        .unwrap();
    net.create_link("north", grant.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    let file = net.generate_link_file("west", "for-south", 1).unwrap();
    net.create_link(
        "south",
        file.encode_generated().as_bytes(),
        &LinkOptions::default(),
    )
    .unwrap();

    net.run_for(Duration::seconds(5)).unwrap();
    for site in ["east", "north", "south"] {
        assert_eq!(link1(&net, site), "Link link1 is connected", "{site}");
    }
    let kinds: Vec<_> = ["east", "north", "south"]
        .iter()
        .map(|s| net.site(s).unwrap().link("link1").unwrap().token_kind())
        .collect();
    assert_eq!(kinds, ["cert token", "link file", "link file"]);
    assert_eq!(
        status(&net, "west"),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 3 other sites."
    );
    let mut peers: Vec<_> = net
        .site("west")
        .unwrap()
        .incoming()
        .into_iter()
        .map(|i| i.peer_site_name)
        .collect();
    peers.sort();
    assert_eq!(peers, ["east", "north", "south"]);
}
