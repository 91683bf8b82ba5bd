//! The link state machine: which moves a link may make, that a revoked link
//! stays revoked, that every change is an event (and nothing else is), and
//! that link records written before the state had per-state data still
//! read.

use skupper_token::harness::Network;
use skupper_token::link::{
    LinkChange, LinkRecord, LinkState, RemoteSite, TransitionError, ALREADY_REDEEMED,
    LINK_RECORD_SCHEMA, NO_CLAIM, NO_CREDENTIALS, REVOKED_IS_TERMINAL,
};
use skupper_token::random::SeededRandom;
use skupper_token::site::{LinkError, LinkOptions, TokenOptions, LINK_EVENTS_KEPT};
use skupper_token::store::Record;
use skupper_token::token::Token;
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-28 10:00 UTC);

fn refused(
    link: &str,
    from: &'static str,
    to: &'static str,
    reason: &'static str,
) -> TransitionError {
    TransitionError {
        link: link.to_owned(),
        from,
        to,
        reason,
    }
}

fn revoked_by_west(at: OffsetDateTime) -> LinkState {
    LinkState::Revoked {
        by: RemoteSite {
            id: "west-id".into(),
            name: "west".into(),
        },
        at,
    }
}

fn not_connected() -> LinkState {
    LinkState::NotConnected {
        reason: "peer west:55671 unreachable".into(),
    }
}

fn failed() -> LinkState {
    LinkState::Failed {
        reason: "Failed to redeem claim: Claim refused".into(),
        retryable: false,
    }
}

/// A claim token's link, as `link create` makes it before redeeming.
fn claim_link(net: &Network) -> LinkRecord {
    let token = net.create_token("west", &TokenOptions::claim()).unwrap();
    LinkRecord::new("link1".into(), 1, &token, false, NOW)
}

/// A cert token's link.
fn cert_link(net: &Network) -> LinkRecord {
    let token = net.create_token("west", &TokenOptions::cert()).unwrap();
    LinkRecord::new("link1".into(), 1, &token, false, NOW)
}

fn two_sites() -> Network {
    let net = Network::new(12);
    net.add_site("west").unwrap();
    net.add_site("east").unwrap();
    net
}

#[test]
fn a_link_with_its_claim_is_pending_or_failed_until_the_claim_is_redeemed() {
    let net = two_sites();
    let mut link = claim_link(&net);
    assert_eq!(*link.state(), LinkState::Pending);
    assert!(link.has_claim() && link.credentials().is_none());
    for next in [
        LinkState::Connecting,
        LinkState::Connected { since: NOW },
        not_connected(),
        revoked_by_west(NOW),
    ] {
        let to = next.label();
        assert_eq!(
            link.transition(next, "dialed", NOW),
            Err(refused("link1", "pending", to, NO_CREDENTIALS))
        );
    }
    assert_eq!(link.history(), []);

    let change = link.transition(failed(), "claim redemption failed", NOW);
    assert_eq!(
        change,
        Ok(Some(LinkChange {
            link: "link1".into(),
            from: LinkState::Pending,
            to: failed(),
            why: "claim redemption failed".into(),
            at: NOW,
        }))
    );
    assert!(link.is_refused());

    // Redeeming trades the claim for credentials and dials their endpoint.
    let Token::Cert(cert) = net.create_token("west", &TokenOptions::cert()).unwrap() else {
        panic!("a cert token")
    };
    let change = link.redeemed(&cert, false, NOW).unwrap();
    assert_eq!(
        (change.from.label(), change.to),
        ("failed", LinkState::Connecting)
    );
    assert_eq!(change.why, "claim redeemed");
    assert!(!link.has_claim());
    assert_eq!(link.cert_token().unwrap(), Some(cert.clone()));
    assert_eq!(link.target(), "west:55671");
    assert_eq!(
        link.redeemed(&cert, false, NOW),
        Err(refused(
            "link1",
            "connecting",
            "connecting",
            ALREADY_REDEEMED
        ))
    );
}

#[test]
fn a_link_with_credentials_is_never_pending_or_failed() {
    let net = two_sites();
    let mut link = cert_link(&net);
    assert_eq!(*link.state(), LinkState::Connecting);
    assert_eq!(
        link.transition(LinkState::Pending, "again", NOW),
        Err(refused("link1", "connecting", "pending", ALREADY_REDEEMED))
    );
    assert_eq!(
        link.transition(failed(), "again", NOW),
        Err(refused("link1", "connecting", "failed", NO_CLAIM))
    );
    let mut labels = vec![];
    for next in [
        LinkState::Connected { since: NOW },
        not_connected(),
        LinkState::Connected { since: NOW },
        LinkState::Connecting,
    ] {
        let change = link.transition(next, "dialed", NOW).unwrap().unwrap();
        labels.push((change.from.label(), change.to.label()));
    }
    assert_eq!(
        labels,
        [
            ("connecting", "connected"),
            ("connected", "not-connected"),
            ("not-connected", "connected"),
            ("connected", "connecting"),
        ]
    );
    assert_eq!(link.history().len(), 4);
}

#[test]
fn setting_the_state_a_link_has_changes_nothing() {
    let net = two_sites();
    let mut link = cert_link(&net);
    link.transition(LinkState::Connected { since: NOW }, "connected", NOW)
        .unwrap();
    let later = NOW + time::Duration::minutes(5);
    assert_eq!(
        link.transition(LinkState::Connected { since: later }, "connected", later),
        Ok(None)
    );
    assert_eq!(
        *link.state(),
        LinkState::Connected { since: NOW },
        "since stays"
    );
    link.transition(not_connected(), "lost", later).unwrap();
    assert_eq!(link.transition(not_connected(), "lost", later), Ok(None));
    assert_eq!(link.history().len(), 2);
}

#[test]
fn a_revoked_link_stays_revoked() {
    let net = two_sites();
    let mut link = cert_link(&net);
    link.transition(LinkState::Connected { since: NOW }, "connected", NOW)
        .unwrap();
    let change = link
        .transition(revoked_by_west(NOW), "access revoked", NOW)
        .unwrap()
        .unwrap();
    assert_eq!(
        change.to_string(),
        "link link1: connected -> revoked (access revoked): access revoked by west (site west-id) \
         at 2026-11-28T10:00:00Z; to link again, get a new token from that site and replace this \
         link with it"
    );
    for next in [
        LinkState::Connecting,
        LinkState::Connected { since: NOW },
        not_connected(),
        LinkState::Pending,
        failed(),
    ] {
        let to = next.label();
        assert_eq!(
            link.transition(next, "dialed", NOW),
            Err(refused("link1", "revoked", to, REVOKED_IS_TERMINAL))
        );
    }
    // A second notice changes nothing: the first revocation stays.
    let later = NOW + time::Duration::hours(1);
    assert_eq!(
        link.transition(revoked_by_west(later), "access revoked", later),
        Ok(None)
    );
    assert_eq!(*link.state(), revoked_by_west(NOW));
    assert_eq!(link.history().len(), 2);
}

/// Every change a site makes to a link is an event, in order, with why;
/// a heartbeat round that changes nothing emits none.
#[test]
fn a_site_emits_one_event_per_link_change_and_none_otherwise() {
    let net = two_sites();
    let east = net.site("east").unwrap();
    let west_id = net.site("west").unwrap().record().unwrap().id;
    let token = net.create_token("west", &TokenOptions::claim()).unwrap();
    net.create_link("east", token.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    let events = || std::iter::from_fn(|| east.poll_link_event()).collect::<Vec<_>>();
    let seen: Vec<_> = events()
        .into_iter()
        .map(|c| (c.link, c.from.label(), c.to.label(), c.why))
        .collect();
    assert_eq!(
        seen,
        [(
            "link1".to_owned(),
            "pending",
            "connecting",
            "claim redeemed".to_owned()
        )]
    );

    net.tick().unwrap();
    let seen = events();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].to, LinkState::Connected { since: net.now() });
    net.tick().unwrap();
    assert_eq!(events(), [], "still connected: no event");

    // West drops off the network: east notices by the dead-peer timeout.
    net.set_reachable("west", false).unwrap();
    net.run_for(net.timing().dead_after).unwrap();
    let seen = events();
    assert_eq!(
        seen.iter().map(|c| c.to.label()).collect::<Vec<_>>(),
        ["not-connected"]
    );
    net.tick().unwrap();
    assert_eq!(events(), [], "still down for the same reason: no event");

    // The runtime records a revocation notice; the change is returned and
    // queued, and from then on the site neither dials nor changes the link.
    let revoked = LinkState::Revoked {
        by: RemoteSite {
            id: west_id.clone(),
            name: "west".into(),
        },
        at: net.now(),
    };
    let change = east
        .set_link_state("link1", revoked.clone(), "access revoked", net.now())
        .unwrap()
        .expect("a change");
    assert_eq!(
        (change.from.label(), &change.to),
        ("not-connected", &revoked)
    );
    assert_eq!(events(), [change]);
    assert_eq!(
        east.set_link_state("link1", revoked.clone(), "access revoked", net.now())
            .unwrap(),
        None
    );
    net.set_reachable("west", true).unwrap();
    net.tick().unwrap();
    assert_eq!(events(), []);
    assert_eq!(*east.link("link1").unwrap().state(), revoked);
    assert_eq!(
        east.dial_link("link1").map(|d| d.link),
        Err(LinkError::Transition(refused(
            "link1",
            "revoked",
            "connected",
            REVOKED_IS_TERMINAL
        )))
    );
    assert_eq!(
        east.set_link_state("link1", LinkState::Connecting, "dial", net.now()),
        Err(LinkError::Transition(refused(
            "link1",
            "revoked",
            "connecting",
            REVOKED_IS_TERMINAL
        )))
    );
    assert_eq!(events(), []);
    assert_eq!(
        net.link_status("east", "link1").unwrap().to_string(),
        format!(
            "Link link1 not connected (access revoked by west (site {west_id}) at {}; to link \
             again, get a new token from that site and replace this link with it)",
            net.now().format(&Rfc3339).unwrap()
        )
    );

    // Deleting it is the way out, and a new token links again.
    net.delete_link("east", "link1").unwrap();
    let token = net.create_token("west", &TokenOptions::claim()).unwrap();
    net.create_link("east", token.encode().as_bytes(), &LinkOptions::default())
        .unwrap();
    net.tick().unwrap();
    assert_eq!(
        events().iter().map(|c| c.to.label()).collect::<Vec<_>>(),
        ["connecting", "connected"]
    );
}

fn read(json: &str) -> Result<LinkRecord, String> {
    match serde_json::from_str::<Record>(json) {
        Ok(Record::Link(link)) => Ok(*link),
        Ok(other) => panic!("not a link record: {other:?}"),
        Err(e) => Err(e.to_string()),
    }
}

/// Written by the code before link records had a schema version: a link
/// revoked with its reason stored as a sentence.
#[test]
fn a_revoked_link_record_from_before_schema_2_still_reads() {
    let link = read(include_str!("data/link-v1-revoked.json")).unwrap();
    let west = RemoteSite {
        id: "00ea4e70-eec7-4ad0-bee2-3bbe4598524f".into(),
        name: "west".into(),
    };
    assert_eq!(
        *link.state(),
        LinkState::Revoked {
            by: west.clone(),
            at: datetime!(2026-01-01 0:05 UTC),
        }
    );
    assert_eq!(link.remote_site_id, west.id);
    assert_eq!(link.target(), "west:55671");
    assert!(link.cert_token().unwrap().is_some(), "credentials kept");
    assert_eq!(
        link.history()
            .iter()
            .map(|t| t.to.as_str())
            .collect::<Vec<_>>(),
        ["connecting", "connected", "revoked"]
    );
    assert_eq!(
        link.status().reason.unwrap(),
        "access revoked by west (site 00ea4e70-eec7-4ad0-bee2-3bbe4598524f) at \
         2026-01-01T00:05:00Z; to link again, get a new token from that site and replace this \
         link with it"
    );

    // Written again, it has the new layout, and reads back the same.
    let json = serde_json::to_value(Record::Link(Box::new(link.clone()))).unwrap();
    assert_eq!(json["schema-version"], LINK_RECORD_SCHEMA);
    assert_eq!(
        json["state"],
        serde_json::json!({
            "state": "revoked",
            "by": {"id": west.id, "name": "west"},
            "at": "2026-01-01T00:05:00Z",
        })
    );
    assert_eq!(read(&json.to_string()).unwrap(), link);
}

#[test]
fn a_pending_link_record_from_before_schema_2_still_reads() {
    let link = read(include_str!("data/link-v1-pending.json")).unwrap();
    assert_eq!(*link.state(), LinkState::Pending);
    let claim = link.claim_token().unwrap().expect("the claim is kept");
    assert_eq!(link.target(), claim.url);
    assert_eq!(link.credentials(), None);
    let again = serde_json::to_string(&Record::Link(Box::new(link.clone()))).unwrap();
    assert_eq!(read(&again).unwrap(), link);
}

/// A schema 1 revocation whose sentence cannot be read: the link's remote
/// site and the time it became revoked.
#[test]
fn an_unreadable_old_revocation_falls_back_to_the_remote_site_and_history() {
    let mut json: serde_json::Value =
        serde_json::from_str(include_str!("data/link-v1-revoked.json")).unwrap();
    json["state"]["reason"] = "revoked".into();
    let link = read(&json.to_string()).unwrap();
    let id = "00ea4e70-eec7-4ad0-bee2-3bbe4598524f".to_owned();
    assert_eq!(
        *link.state(),
        LinkState::Revoked {
            by: RemoteSite {
                id: id.clone(),
                name: id,
            },
            at: link.history()[2].at,
        }
    );
}

/// A change to a stored record.
type Edit = fn(&mut serde_json::Value);

/// What the types rule out cannot be read in from a hand-edited record.
#[test]
fn a_record_that_breaks_the_link_invariants_is_refused() {
    let base: serde_json::Value =
        serde_json::from_str(include_str!("data/link-v1-revoked.json")).unwrap();
    let edit = |f: Edit| {
        let mut v = base.clone();
        f(&mut v);
        read(&v.to_string()).unwrap_err()
    };
    let cases: [(Edit, &str); 6] = [
        (
            |v| v["claim"] = "claim".into(),
            "link \"link1\" has more than one of a claim, an AccessToken and credentials",
        ),
        (
            |v| v["access-token"] = "token".into(),
            "link \"link1\" has more than one of a claim, an AccessToken and credentials",
        ),
        (
            |v| v["credentials"] = serde_json::Value::Null,
            "link \"link1\" has neither a claim nor credentials",
        ),
        (
            |v| v["state"] = serde_json::json!({"state": "pending"}),
            "link \"link1\" is pending but has credentials instead of its claim",
        ),
        (
            |v| v["state"] = serde_json::json!({"state": "revoked"}),
            "link \"link1\" is revoked but does not say by whom and when",
        ),
        (
            |v| v["schema-version"] = 6.into(),
            "link \"link1\" has schema version 6; this version reads up to 5",
        ),
    ];
    for (change, message) in cases {
        let err = edit(change);
        assert!(err.starts_with(message), "{err}");
    }
}

/// A link deleted and made again with the same token holds the same
/// credentials but is another instance: the old dialer's word does not
/// land on it, the new link's own dialer's does.
#[test]
fn a_change_for_a_deleted_link_does_not_land_on_its_remake_from_the_same_token() {
    let net = two_sites();
    let east = net.site("east").unwrap();
    let token = net.create_token("west", &TokenOptions::cert()).unwrap();
    let mut rng = SeededRandom::new(11);
    let mut add = || {
        east.add_link(
            token.encode().as_bytes(),
            &LinkOptions::default(),
            NOW,
            &mut rng,
        )
        .unwrap()
    };
    let old = add();
    east.delete_link("link1").unwrap();
    let new = add();
    assert_eq!(old.credentials(), new.credentials());
    assert_ne!(old.instance(), new.instance());
    // The instance is stored: a record read back is the same instance.
    let json = serde_json::to_value(Record::Link(Box::new(new.clone()))).unwrap();
    assert_eq!(json["instance"], new.instance());
    assert_eq!(read(&json.to_string()).unwrap().instance(), new.instance());
    let old_dial = old.dial_instance().unwrap();
    assert!(!old_dial.is_of(&new));
    assert_eq!(
        east.set_dialed_link_state(
            "link1",
            &old_dial,
            LinkState::Connected { since: NOW },
            "connected",
            NOW
        ),
        Err(LinkError::LinkReplaced {
            name: "link1".into()
        })
    );
    assert_eq!(*east.link("link1").unwrap().state(), LinkState::Connecting);
    assert!(east
        .set_dialed_link_state(
            "link1",
            &new.dial_instance().unwrap(),
            LinkState::Connected { since: NOW },
            "connected",
            NOW
        )
        .unwrap()
        .is_some());
}

/// On the network: a link deleted and made again from the same token
/// before the next run closes its old connection, connects anew and says
/// so; the listening site ends up holding the one new incoming link.
#[test]
fn a_link_made_again_before_the_next_run_connects_anew() {
    let net = two_sites();
    let token = net.create_token("west", &TokenOptions::cert()).unwrap();
    let file = token.encode();
    net.create_link("east", file.as_bytes(), &LinkOptions::default())
        .unwrap();
    net.tick().unwrap();
    assert!(net.is_connected("east", "link1"));
    net.delete_link("east", "link1").unwrap();
    net.create_link("east", file.as_bytes(), &LinkOptions::default())
        .unwrap();
    let timing = net.timing();
    net.run_for(timing.dead_after + timing.linger).unwrap();
    let east = net.site("east").unwrap();
    assert!(east.link("link1").unwrap().state().is_connected());
    assert!(net.is_connected("east", "link1"));
    let west = net.site("west").unwrap();
    assert_eq!(west.incoming().len(), 1);
    assert_eq!(net.status("west").unwrap().linked_sites, 1);
    let log = net.events();
    assert!(
        log.iter()
            .any(|l| l.contains("the link was deleted or replaced on this site")),
        "{log:#?}"
    );
}

/// A dialer records states only on the link whose credentials it dials
/// with: once the link was deleted and made again with a new token, the
/// old dialer's revocation does not make the new link revoked for good.
#[test]
fn a_change_for_old_credentials_does_not_land_on_a_replaced_link() {
    let net = two_sites();
    let east = net.site("east").unwrap();
    let old = net.create_token("west", &TokenOptions::cert()).unwrap();
    let link = east
        .add_link(
            old.encode().as_bytes(),
            &LinkOptions::default(),
            NOW,
            &mut SeededRandom::new(7),
        )
        .unwrap();
    let old_instance = link.dial_instance().unwrap();
    east.delete_link("link1").unwrap();
    let new = net.create_token("west", &TokenOptions::cert()).unwrap();
    let link = east
        .add_link(
            new.encode().as_bytes(),
            &LinkOptions::default(),
            NOW,
            &mut SeededRandom::new(7),
        )
        .unwrap();
    assert_eq!(
        east.set_dialed_link_state(
            "link1",
            &old_instance,
            revoked_by_west(NOW),
            "access revoked",
            NOW
        ),
        Err(LinkError::LinkReplaced {
            name: "link1".into()
        })
    );
    assert_eq!(*east.link("link1").unwrap().state(), LinkState::Connecting);
    assert_eq!(east.poll_link_event(), None);
    let change = east
        .set_dialed_link_state(
            "link1",
            &link.dial_instance().unwrap(),
            LinkState::Connected { since: NOW },
            "connected",
            NOW,
        )
        .unwrap();
    assert_eq!(
        change.map(|c| c.to),
        Some(LinkState::Connected { since: NOW })
    );
    assert_eq!(
        LinkError::LinkReplaced {
            name: "link1".into()
        }
        .to_string(),
        "link \"link1\" was replaced: it is no longer the link this change was for (it was made again or has new credentials)"
    );
}

/// A handle nobody polls keeps the latest LINK_EVENTS_KEPT changes.
#[test]
fn an_unpolled_site_keeps_only_the_latest_link_changes() {
    let net = two_sites();
    let east = net.site("east").unwrap();
    let token = net.create_token("west", &TokenOptions::cert()).unwrap();
    east.add_link(
        token.encode().as_bytes(),
        &LinkOptions::default(),
        NOW,
        &mut SeededRandom::new(7),
    )
    .unwrap();
    let made = LINK_EVENTS_KEPT + 6;
    for i in 0..made {
        let at = NOW + time::Duration::seconds(i as i64);
        let next = if i % 2 == 0 {
            LinkState::Connected { since: at }
        } else {
            not_connected()
        };
        east.set_link_state("link1", next, "dialed", at).unwrap();
    }
    let kept: Vec<LinkChange> = std::iter::from_fn(|| east.poll_link_event()).collect();
    assert_eq!(kept.len(), LINK_EVENTS_KEPT);
    assert_eq!(
        kept[0].at,
        NOW + time::Duration::seconds(6),
        "the oldest went"
    );
    assert_eq!(
        kept.last().unwrap().at,
        NOW + time::Duration::seconds(made as i64 - 1)
    );
}
