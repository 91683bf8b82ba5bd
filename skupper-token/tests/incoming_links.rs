//! Incoming links live in the store: every handle on a site sees them,
//! `revoke_peer` finds them by the peer's name from any handle, leases make
//! a crashed holder's records stop counting, and a holder that starts again
//! clears what it left.

use std::sync::Arc;

use skupper_token::claim::RedeemRequest;
use skupper_token::incoming::{IncomingRecord, DEFAULT_LEASE};
use skupper_token::pki::{pem_to_der, AuthError};
use skupper_token::random::SeededRandom;
use skupper_token::site::{PeerHello, RevokeError, Site, SiteConfig, TokenOptions};
use skupper_token::store::{Key, MemoryStore, RecordKind, Store};
use skupper_token::version::VERSION;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-03-01 9:00 UTC);
const EAST_ID: &str = "5f0c6a9e-1b7d-4c35-9a61-0e2d7c4b8a11";

type West = Site<Arc<MemoryStore>>;

/// West on a memory store, and the DER of a certificate west issued to
/// east by redeeming a claim (its CN is east's id).
fn west_and_easts_certificate() -> (Arc<MemoryStore>, West, Vec<u8>) {
    let mut rng = SeededRandom::new(11);
    let store = Arc::new(MemoryStore::new());
    let west = Site::create(store.clone(), &SiteConfig::new("west"), T0, &mut rng).unwrap();
    let claim = west
        .create_claim_token(&TokenOptions::claim(), T0, &mut rng)
        .unwrap();
    let cert = west
        .redeem_claim(
            &RedeemRequest {
                claim: claim.name.clone(),
                password: claim.password.expose().as_bytes().to_vec(),
                site_id: EAST_ID.into(),
                site_version: VERSION.into(),
            },
            T0,
            &mut rng,
        )
        .unwrap();
    (store, west, pem_to_der(&cert.cert_pem).unwrap())
}

fn easts_hello() -> PeerHello {
    PeerHello {
        site_id: EAST_ID.into(),
        site_name: "east".into(),
        link: "link1".into(),
    }
}

fn record_version(store: &MemoryStore) -> Option<u64> {
    let key = Key::new(
        RecordKind::Incoming,
        IncomingRecord::key_name(EAST_ID, "link1"),
    );
    store.load(&key).unwrap().map(|v| v.version)
}

#[test]
fn another_handle_sees_the_link_and_revokes_it_by_the_peers_name() {
    let (store, serving, der) = west_and_easts_certificate();
    let link = serving
        .accept_incoming(&[&der], &easts_hello(), T0)
        .unwrap();

    // A CLI command next to the running site: a handle with no connections.
    let command = Site::open(store.clone()).unwrap();
    assert!(command.incoming().is_empty(), "its own cache is empty");
    let seen = command.incoming_links(T0).unwrap();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(
        (
            r.peer_site_id.as_str(),
            r.peer_site_name.as_str(),
            r.link.as_str(),
            r.since,
            r.ca_generation
        ),
        (EAST_ID, "east", "link1", T0, 1)
    );
    assert_eq!(r.certificate_serial, link.certificate.serial_hex);
    assert_eq!(command.status(T0).unwrap().linked_sites, 1);

    // `revoke-access --site east` from that handle: the name is found in the
    // store, not in the serving handle's memory.
    let revoked = command.revoke_peer("east", T0).unwrap();
    assert_eq!(revoked.revoked.len(), 1);
    assert_eq!(revoked.revoked[0].serial, link.certificate.serial_hex);
    assert_eq!(revoked.revoked[0].common_name, EAST_ID);
    assert_eq!(revoked.incoming_dropped.len(), 1);
    assert_eq!(revoked.incoming_dropped[0].peer_site_name, "east");
    assert_eq!(command.status(T0).unwrap().linked_sites, 0);
    assert_eq!(record_version(&store), None, "the record is gone");

    // The serving handle now refuses east's certificate.
    let err = serving
        .accept_incoming(&[&der], &easts_hello(), T0)
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::Revoked { common_name, .. } if common_name == EAST_ID),
        "{err:?}"
    );

    // An unknown name is still refused, naming it.
    let err = command.revoke_peer("nobody", T0).unwrap_err();
    assert_eq!(
        err,
        RevokeError::UnknownPeer {
            peer: "nobody".into()
        }
    );
}

#[test]
fn heartbeats_write_nothing_and_the_lease_is_renewed_after_a_third() {
    let (store, west, der) = west_and_easts_certificate();
    west.accept_incoming(&[&der], &easts_hello(), T0).unwrap();
    assert_eq!(record_version(&store), Some(1));
    // The same link seen again (every heartbeat round in the harness):
    // no write until a third of the lease has passed.
    for secs in [1, 5, 19] {
        west.accept_incoming(&[&der], &easts_hello(), T0 + Duration::seconds(secs))
            .unwrap();
        assert_eq!(
            west.renew_incoming(T0 + Duration::seconds(secs)).unwrap(),
            0
        );
    }
    assert_eq!(record_version(&store), Some(1));
    let third = T0 + DEFAULT_LEASE / 3;
    assert_eq!(west.renew_incoming(third).unwrap(), 1);
    assert_eq!(record_version(&store), Some(2));
    assert_eq!(west.renew_incoming(third).unwrap(), 0);
    let records = west.incoming_links(third).unwrap();
    assert_eq!(records[0].lease_until, third + DEFAULT_LEASE);
    assert_eq!(
        records[0].since, T0,
        "a renewal keeps the time it connected"
    );
    // A new peer name is a change: written at once.
    let renamed = PeerHello {
        site_name: "east-renamed".into(),
        ..easts_hello()
    };
    west.accept_incoming(&[&der], &renamed, third).unwrap();
    assert_eq!(record_version(&store), Some(3));
    assert_eq!(
        west.incoming_links(third).unwrap()[0].peer_site_name,
        "east-renamed"
    );
}

#[test]
fn a_crashed_holders_records_stop_counting_and_a_restart_clears_them() {
    let (store, west, der) = west_and_easts_certificate();
    west.accept_incoming(&[&der], &easts_hello(), T0).unwrap();
    // The serving process dies without closing its links.
    drop(west);
    let command = Site::open(store.clone()).unwrap();
    let before_expiry = T0 + DEFAULT_LEASE - Duration::SECOND;
    assert_eq!(command.status(before_expiry).unwrap().linked_sites, 1);
    // Not forever: once the lease has run out, nothing counts.
    assert_eq!(command.status(T0 + DEFAULT_LEASE).unwrap().linked_sites, 0);
    assert!(command
        .incoming_links(T0 + DEFAULT_LEASE)
        .unwrap()
        .is_empty());

    // A holder that starts again under the same name clears at once what
    // it holds no connection for, without waiting for the lease.
    let restarted = Site::open(store.clone()).unwrap();
    assert_eq!(
        restarted.reconcile_incoming(T0 + Duration::SECOND).unwrap(),
        1
    );
    assert_eq!(record_version(&store), None);
    assert_eq!(command.status(T0).unwrap().linked_sites, 0);
}

#[test]
fn a_holder_clears_only_its_own_records_and_lapsed_ones() {
    let (store, west, der) = west_and_easts_certificate();
    let replica = Site::open(store.clone())
        .unwrap()
        .with_incoming_holder("replica-2");
    replica
        .accept_incoming(&[&der], &easts_hello(), T0)
        .unwrap();
    assert_eq!(
        west.incoming_links(T0).unwrap()[0].holder,
        "replica-2",
        "the record names its holder"
    );

    // Another holder starting does not touch a live record it does not hold
    // ...
    let restarted = Site::open(store.clone()).unwrap();
    assert_eq!(restarted.reconcile_incoming(T0).unwrap(), 0);
    // ... nor does it delete it when told the same link closed on its side.
    assert_eq!(restarted.drop_incoming(EAST_ID, "link1").unwrap(), None);
    assert_eq!(record_version(&store), Some(1));
    // Once the lease has lapsed, anyone clears it.
    assert_eq!(restarted.reconcile_incoming(T0 + DEFAULT_LEASE).unwrap(), 1);
    assert_eq!(record_version(&store), None);
}

#[test]
fn a_closed_link_and_revoke_access_delete_the_records() {
    let (store, west, der) = west_and_easts_certificate();
    west.accept_incoming(&[&der], &easts_hello(), T0).unwrap();
    let dropped = west.drop_incoming(EAST_ID, "link1").unwrap().unwrap();
    assert_eq!(dropped.peer_site_name, "east");
    assert_eq!(record_version(&store), None);
    assert_eq!(west.status(T0).unwrap().linked_sites, 0);

    west.accept_incoming(&[&der], &easts_hello(), T0).unwrap();
    let command = Site::open(store.clone()).unwrap();
    let revoked = command
        .revoke_access(T0, &mut SeededRandom::new(3))
        .unwrap();
    assert_eq!(revoked.incoming_dropped.len(), 1);
    assert_eq!(revoked.incoming_dropped[0].peer_site_id, EAST_ID);
    assert_eq!(record_version(&store), None);
    assert_eq!(west.status(T0).unwrap().linked_sites, 0);
}
