//! `Network::advance` moves the clock without running anything, as if
//! every site had been suspended (a laptop lid closed): when the network
//! runs again, each end finds its peer silent for that long, closes, and
//! the link dials again.

use skupper_token::time::Duration;

use super::{east_linked_to_west, link1, times_of};

#[test]
fn after_a_suspension_links_time_out_and_connect_again() {
    let net = east_linked_to_west(12);
    net.advance(Duration::minutes(10));
    // Nothing ran: east's record still says connected, but west's record of
    // the incoming link has outlived its lease.
    assert_eq!(link1(&net, "east"), "Link link1 is connected");
    assert_eq!(net.status("west").unwrap().linked_sites, 0);

    net.tick().unwrap();
    assert_eq!(
        times_of(
            &net,
            "east link1",
            "closed: heartbeat timeout: nothing received for 10m"
        ),
        [600_000]
    );
    assert_eq!(
        times_of(
            &net,
            "west <- east link1",
            "closed: heartbeat timeout: nothing received for 10m"
        ),
        [600_000]
    );
    assert_eq!(
        link1(&net, "east"),
        "Link link1 not connected (heartbeat timeout: no answer from west:55671 (site west) \
         for 10m)"
    );

    // The first backoff wait, and it is back.
    net.run_for(Duration::seconds(1)).unwrap();
    assert_eq!(link1(&net, "east"), "Link link1 is connected");
    assert_eq!(net.status("west").unwrap().linked_sites, 1);
    assert_eq!(times_of(&net, "east link1", "TLS connection to").len(), 2);
}
