//! A site that drops off the network: its peer notices by the dead-peer
//! timeout, three seconds after the last heartbeat, and not before.

use skupper_token::time::Duration;

use super::{east_linked_to_west, link1, status};

#[test]
fn a_cut_off_site_is_noticed_by_the_dead_peer_timeout() {
    let net = east_linked_to_west(2);
    // Heartbeats every second; the last one before the cut at 10 s.
    net.run_for(Duration::seconds(10)).unwrap();
    net.set_reachable("west", false).unwrap();

    // 2.999 s of silence: both ends still think the link is up.
    net.run_for(Duration::milliseconds(2999)).unwrap();
    assert_eq!(link1(&net, "east"), "Link link1 is connected");
    assert!(net.is_connected("east", "link1"));
    assert_eq!(net.status("west").unwrap().linked_sites, 1);

    // At 3 s both ends give up on the other.
    net.run_for(Duration::milliseconds(1)).unwrap();
    assert_eq!(
        link1(&net, "east"),
        "Link link1 not connected (heartbeat timeout: no answer from west:55671 (site west) for \
         3s)"
    );
    assert!(!net.is_connected("east", "link1"));
    assert_eq!(
        status(&net, "west"),
        "Skupper is enabled for namespace \"west\" in interior mode. It is not linked to any other sites."
    );
    assert_eq!(net.site("west").unwrap().incoming(), []);
    let log = net.events();
    assert!(
        log.contains(
            &"+13.000s east link1: closed: heartbeat timeout: nothing received for 3s".to_owned()
        ),
        "{log:#?}"
    );
    assert!(
        log.contains(
            &"+13.000s west <- east link1: closed: heartbeat timeout: nothing received for 3s"
                .to_owned()
        ),
        "{log:#?}"
    );
}
