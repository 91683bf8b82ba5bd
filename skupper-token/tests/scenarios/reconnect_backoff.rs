//! A linking site that loses its network keeps trying, waiting longer
//! each time (1 s, 2 s, 4 s, ... up to 30 s, each drawn from the upper
//! half so that sites do not all dial at once), and connects again as soon
//! as it can; once connected it starts over from the shortest wait.

use skupper_token::harness::{BACKOFF_INITIAL, BACKOFF_MAX};
use skupper_token::time::Duration;

use super::{east_linked_to_west, link1, times_of};

#[test]
fn a_link_redials_with_capped_exponential_backoff_and_starts_over_once_connected() {
    let net = east_linked_to_west(3);
    net.set_reachable("east", false).unwrap();
    // The dead-peer timeout at 3 s, then two minutes of failed dials.
    net.run_for(Duration::minutes(2)).unwrap();
    assert_eq!(
        link1(&net, "east"),
        "Link link1 not connected (peer unreachable: site east is cut off from the network)"
    );
    let closed = times_of(&net, "east link1", "closed: heartbeat timeout");
    assert_eq!(closed, [3000]);
    let dials = times_of(&net, "east link1", "dial failed: site east is cut off");
    let mut attempts = closed.clone();
    attempts.extend(&dials);
    let waits: Vec<i64> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    let mut base = BACKOFF_INITIAL.whole_milliseconds() as i64;
    for (i, wait) in waits.iter().enumerate() {
        assert!(
            (base / 2..=base).contains(wait),
            "wait {i} was {wait} ms, not in [{}, {base}] ms: {waits:?}",
            base / 2
        );
        base = (base * 2).min(BACKOFF_MAX.whole_milliseconds() as i64);
    }
    assert!(waits.len() >= 6, "the waits reach the cap: {waits:?}");
    assert!(
        waits.iter().rev().take(2).all(|w| *w >= 15_000),
        "capped at 30 s: {waits:?}"
    );

    // Back on the network: the next dial connects.
    net.set_reachable("east", true).unwrap();
    net.run_for(BACKOFF_MAX).unwrap();
    assert_eq!(link1(&net, "east"), "Link link1 is connected");
    assert_eq!(net.status("west").unwrap().linked_sites, 1);

    // Connected again, it starts over: after the next loss it waits at
    // most the first wait again.
    net.set_reachable("west", false).unwrap();
    net.run_for(Duration::seconds(3)).unwrap();
    let lost = *times_of(&net, "east link1", "closed: heartbeat timeout")
        .last()
        .unwrap();
    net.run_for(BACKOFF_INITIAL).unwrap();
    let next = *times_of(&net, "east link1", "dial failed").last().unwrap();
    assert!(
        next > lost && next - lost <= BACKOFF_INITIAL.whole_milliseconds() as i64,
        "redialed {} ms after the loss",
        next - lost
    );
    assert_eq!(
        link1(&net, "east"),
        "Link link1 not connected (peer unreachable: no route to host west (the site is \
         unreachable))"
    );
}
