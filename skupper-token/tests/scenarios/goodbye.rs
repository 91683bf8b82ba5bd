//! `skupper link delete link1`: the linking site says goodbye on the
//! link's connection, and the remote site drops the incoming link at once
//! instead of waiting for the dead-peer timeout.

use super::{east_linked_to_west, status};

#[test]
fn deleting_a_link_says_goodbye_and_the_remote_site_drops_it_at_once() {
    let net = east_linked_to_west(10);
    assert_eq!(net.status("west").unwrap().linked_sites, 1);

    // $ skupper link delete link1  (on east)
    net.delete_link("east", "link1").unwrap();
    net.tick().unwrap();
    assert_eq!(
        status(&net, "west"),
        "Skupper is enabled for namespace \"west\" in interior mode. It is not linked to any other sites."
    );
    assert_eq!(net.site("west").unwrap().incoming(), []);
    assert!(!net.is_connected("east", "link1"));
    let log = net.events();
    let tail: Vec<&str> = log.iter().rev().take(2).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "+0.000s east link1: closed: closed by this site: the link was deleted or replaced on \
             this site",
            "+0.000s west <- east link1: closed: the remote site closed the link: the link was \
             deleted or replaced on this site",
        ]
    );
}
