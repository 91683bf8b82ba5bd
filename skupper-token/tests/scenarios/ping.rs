//! `skupper-token link ping`: a ping on a live link is answered; one that
//! cannot be answered is reported lost after the dead-peer time; a link
//! with no connection cannot be pinged.

use skupper_token::harness::{HarnessError, PingOutcome};
use skupper_token::time::Duration;

use super::east_linked_to_west;

#[test]
fn pings_are_answered_lost_or_refused() {
    let net = east_linked_to_west(4);
    let first = net.ping("east", "link1").unwrap();
    assert_eq!(first, 1);
    // The pipes have no latency: the answer is there at once.
    assert_eq!(
        net.ping_outcome("east", "link1", first),
        Some(PingOutcome::Pong {
            rtt: Duration::ZERO
        })
    );

    net.run_for(Duration::seconds(5)).unwrap();
    net.set_reachable("west", false).unwrap();
    let second = net.ping("east", "link1").unwrap();
    assert_eq!(second, 2);
    net.run_for(Duration::milliseconds(2999)).unwrap();
    assert_eq!(
        net.ping_outcome("east", "link1", second),
        None,
        "on its way"
    );
    net.run_for(Duration::milliseconds(1)).unwrap();
    assert_eq!(
        net.ping_outcome("east", "link1", second),
        Some(PingOutcome::Lost)
    );

    // The link went down with it: nothing to ping.
    assert_eq!(
        net.ping("east", "link1"),
        Err(HarnessError::NotConnected {
            site: "east".into(),
            link: "link1".into()
        })
    );
}
