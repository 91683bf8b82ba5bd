//! A site that was cut off when the issuing site revoked it never got the
//! notice: its link goes down by the dead-peer timeout, and when it is
//! back and dials again the issuing site refuses its certificate at the
//! hello, saying why.

use skupper_token::link::LinkState;
use skupper_token::time::Duration;

use super::{east_linked_to_west, link1};

#[test]
fn a_site_revoked_while_offline_is_refused_when_it_dials_again() {
    let net = east_linked_to_west(13);
    let east = net.site("east").unwrap();
    let id = east.id().to_owned();

    net.set_reachable("east", false).unwrap();
    net.revoke_peer("west", east.id()).unwrap();
    // West closed its end (the notice was lost on the way).
    assert_eq!(net.status("west").unwrap().linked_sites, 0);
    net.run_for(Duration::seconds(3)).unwrap();
    assert!(matches!(
        east.link("link1").unwrap().state(),
        LinkState::NotConnected { .. }
    ));

    net.set_reachable("east", true).unwrap();
    net.run_for(Duration::seconds(30)).unwrap();
    assert_eq!(
        link1(&net, "east"),
        format!(
            "Link link1 not connected (certificate rejected by the remote site: certificate for \
             \"{id}\" is revoked: this site revoked access for \"{id}\" at 2026-01-01T00:00:00Z \
             (west:55671))"
        )
    );
    assert_eq!(net.status("west").unwrap().linked_sites, 0);
}
