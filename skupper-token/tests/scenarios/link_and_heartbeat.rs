//! A link made with a claim token comes up and stays up: both sites send
//! heartbeats, the issuing site keeps the incoming link's record alive,
//! and nothing changes for as long as both sites can reach each other.

use skupper_token::link::LinkState;
use skupper_token::time::Duration;

use super::{east_linked_to_west, link1, status};

#[test]
fn a_link_stays_connected_on_heartbeats_alone() {
    let net = east_linked_to_west(1);
    let since = net.now();
    assert_eq!(
        status(&net, "west"),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 1 other site."
    );
    assert_eq!(
        status(&net, "east"),
        "Skupper is enabled for namespace \"east\" in interior mode. It is linked to 1 other site."
    );

    // Ten minutes of heartbeats: longer than the dead-peer timeout (3 s)
    // and than the incoming-link record's lease (60 s) many times over.
    net.run_for(Duration::minutes(10)).unwrap();
    assert_eq!(link1(&net, "east"), "Link link1 is connected");
    assert_eq!(
        status(&net, "west"),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 1 other site."
    );
    let east = net.site("east").unwrap();
    let link = east.link("link1").unwrap();
    assert_eq!(*link.state(), LinkState::Connected { since });
    let steps: Vec<(&str, &str, &str)> = link
        .history()
        .iter()
        .map(|t| (t.from.as_str(), t.to.as_str(), t.why.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("pending", "connecting", "claim redeemed"),
            ("connecting", "connected", "connected"),
        ]
    );
    let west = net.site("west").unwrap();
    let incoming = west.incoming_links(net.now()).unwrap();
    assert_eq!(incoming.len(), 1, "the lease was renewed: {incoming:?}");
    assert_eq!(incoming[0].peer_site_name, "east");
    // One connection the whole time: it was made once and never closed.
    let log = net.events();
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("TLS connection to"))
            .count(),
        1,
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("closed")), "{log:#?}");
}
