//! Skupper 2.x access grants and link files on the issuing site: issuing,
//! listing and deleting grants, redeeming them (the code first, one write
//! per redemption, exactly the allowance under racing redeemers), what a
//! redemption and `link generate` return, and revocation of grant-linked
//! sites.

// Tests may use threads: the clippy bans on threads are for the I/O-free core.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use skupper_token::pki::{certificate_info, pem_to_der};
use skupper_token::random::SeededRandom;
use skupper_token::site::{IssuedVia, Site, SiteConfig, SiteMode, TokenError};
use skupper_token::store::{Key, MemoryStore, Record, RecordKind, Store};
use skupper_token::v2::grant::GrantOptionsError;
use skupper_token::v2::{
    AccessToken, GrantError, GrantOptions, GrantRecord, GrantRedemption, GrantState, LinkFile,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);
const EAST_ID: &str = "0f1e2d3c-4b5a-4968-8776-655443322110";

type MemorySite = Site<Arc<MemoryStore>>;

fn west(seed: u64) -> (Arc<MemoryStore>, MemorySite) {
    let store = Arc::new(MemoryStore::new());
    let mut config = SiteConfig::new("west");
    config.hosts = vec!["west.example.com".into(), "10.0.0.7".into()];
    let site = Site::create(store.clone(), &config, NOW, &mut SeededRandom::new(seed)).unwrap();
    (store, site)
}

/// Issues a grant with randomness of its own (a fresh seed each call).
fn issue(site: &MemorySite, options: &GrantOptions) -> (GrantRecord, AccessToken) {
    static SEED: AtomicU64 = AtomicU64::new(1000);
    let mut rng = SeededRandom::new(SEED.fetch_add(1, Ordering::Relaxed));
    site.issue_grant(options, NOW, &mut rng).unwrap()
}

fn redemption(token: &AccessToken, subject: &str) -> GrantRedemption {
    GrantRedemption {
        grant: token.url.rsplit('/').next().unwrap().to_owned(),
        code: token.code.expose().as_bytes().to_vec(),
        name: Some(token.name.clone()),
        subject: Some(subject.to_owned()),
    }
}

#[test]
fn issued_grant_is_stored_without_its_code_and_its_token_points_at_the_claims_endpoint() {
    let (store, west) = west(1);
    let options = GrantOptions {
        redemptions_allowed: 3,
        link_cost: 7,
        ..GrantOptions::new("to-east")
    };
    let (grant, token) = issue(&west, &options);
    let site = west.record().unwrap();
    assert_eq!(token.name, "to-east");
    assert_eq!(
        token.url,
        format!("https://west.example.com:8081/{}", grant.id)
    );
    assert_eq!(token.link_cost, 7);
    // The claims endpoint's certificate is issued by the site CA.
    assert_eq!(token.ca_pem, site.ca.as_ref().unwrap().cert_pem);
    assert_eq!(token.code.expose().len(), 24);
    assert_eq!(grant.ca_generation, site.ca_generation);
    assert_eq!(grant.redemptions_allowed, 3);
    assert_eq!(grant.expires_at, NOW + Duration::minutes(15));

    let stored = store
        .load(&Key::new(RecordKind::Grant, grant.id.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(stored.record, Record::Grant(Box::new(grant.clone())));
    let stored_text = serde_json::to_string(&stored.record).unwrap();
    assert!(!stored_text.contains(token.code.expose()));
    assert!(!format!("{grant:?}").contains(token.code.expose()));
    assert!(grant.code_matches(token.code.expose().as_bytes()));
    // The AccessToken file reads back.
    assert_eq!(
        AccessToken::decode(token.encode().as_bytes()).unwrap(),
        token
    );
    assert_eq!(west.grants().unwrap(), vec![grant]);
}

#[test]
fn issuing_refuses_a_taken_name_bad_options_and_edge_sites() {
    let (_, west) = west(2);
    issue(&west, &GrantOptions::new("g1"));
    let err = west
        .issue_grant(&GrantOptions::new("g1"), NOW, &mut SeededRandom::new(3))
        .unwrap_err();
    assert!(
        matches!(&err, TokenError::GrantExists { name } if name == "g1"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "a grant named \"g1\" already exists on this site: choose another name, or delete that grant"
    );
    let err = west
        .issue_grant(
            &GrantOptions {
                redemptions_allowed: 0,
                ..GrantOptions::new("g2")
            },
            NOW,
            &mut SeededRandom::new(3),
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            TokenError::GrantOptions(GrantOptionsError::NoRedemptions { name }) if name == "g2"
        ),
        "{err:?}"
    );

    let mut config = SiteConfig::new("edge");
    config.mode = SiteMode::Edge;
    let edge = Site::create(MemoryStore::new(), &config, NOW, &mut SeededRandom::new(4)).unwrap();
    let err = edge
        .issue_grant(&GrantOptions::new("g"), NOW, &mut SeededRandom::new(5))
        .unwrap_err();
    assert!(
        matches!(err, TokenError::EdgeCannotAcceptConnections),
        "{err:?}"
    );
}

#[test]
fn grants_are_listed_with_their_state_and_deleted_by_name_or_id() {
    let (_, west) = west(3);
    let (a, _) = issue(&west, &GrantOptions::new("a"));
    let (b, token_b) = issue(&west, &GrantOptions::new("b"));
    let mut rng = SeededRandom::new(6);
    west.redeem_grant(&redemption(&token_b, EAST_ID), NOW, &mut rng)
        .unwrap();
    let grants = west.grants_listing().unwrap();
    assert!(grants.unreadable.is_empty());
    let state = |name: &str, at| {
        west.grants()
            .unwrap()
            .into_iter()
            .find(|g| g.name == name)
            .map(|g| (g.redemptions_made, g.redemptions_allowed, g.state(at)))
    };
    assert_eq!(state("a", NOW), Some((0, 1, GrantState::Active)));
    assert_eq!(state("b", NOW), Some((1, 1, GrantState::UsedUp)));
    assert_eq!(state("a", a.expires_at), Some((0, 1, GrantState::Expired)));

    assert_eq!(west.delete_grant("a").unwrap(), 1);
    assert_eq!(west.delete_grant(&b.id).unwrap(), 1);
    assert_eq!(west.delete_grant("a").unwrap(), 0);
    assert_eq!(west.grants().unwrap(), vec![]);
    // A deleted grant's token no longer redeems.
    let err = west
        .redeem_grant(&redemption(&token_b, EAST_ID), NOW, &mut rng)
        .unwrap_err();
    assert_eq!(
        (err.http_status(), err.http_body()),
        (404, "No such claim\n".into())
    );
}

#[test]
fn redemption_returns_a_link_file_named_from_the_headers_with_a_certificate_for_the_subject() {
    let (store, west) = west(4);
    let (grant, token) = issue(&west, &GrantOptions::new("to-east"));
    let request = GrantRedemption {
        name: Some("my-link".into()),
        ..redemption(&token, EAST_ID)
    };
    let links = west
        .redeem_grant(&request, NOW, &mut SeededRandom::new(7))
        .unwrap();
    let site = west.record().unwrap();

    assert_eq!(links.secret.name, "my-link");
    assert_eq!(links.secret.ca_pem, site.ca.as_ref().unwrap().cert_pem);
    assert_eq!(links.links.len(), 1, "one endpoint group, one Link");
    let link = &links.links[0];
    assert_eq!(link.name, "my-link");
    assert_eq!(link.tls_credentials, "my-link");
    assert_eq!(link.cost, 0);
    let endpoints: Vec<_> = link
        .endpoints
        .iter()
        .map(|e| (e.name.as_str(), e.host.as_str(), e.port, e.group.as_str()))
        .collect();
    assert_eq!(
        endpoints,
        [
            ("inter-router", "west.example.com", 55671, "skupper-router"),
            ("edge", "west.example.com", 45671, "skupper-router"),
        ]
    );
    let info = certificate_info(&pem_to_der(&links.secret.cert_pem).unwrap()).unwrap();
    assert_eq!(info.common_name.as_deref(), Some(EAST_ID));
    assert_eq!(info.dns_names, ["west.example.com"]);
    assert_eq!(info.ip_addresses, ["10.0.0.7"]);
    // The certificate authenticates with the site CA.
    let verifier = skupper_token::pki::PeerVerifier::new(
        &pem_to_der(&site.ca.as_ref().unwrap().cert_pem).unwrap(),
    )
    .unwrap();
    let leaf = pem_to_der(&links.secret.cert_pem).unwrap();
    let peer = verifier.verify(&[&leaf], NOW).unwrap();
    assert_eq!(peer.common_name, EAST_ID);
    // The 200 body reads back as the same file.
    assert_eq!(
        LinkFile::decode(links.encode_grant_response().as_bytes()).unwrap(),
        links
    );

    // One write spent the redemption and recorded the certificate.
    let Some(stored) = store
        .load(&Key::new(RecordKind::Grant, grant.id.clone()))
        .unwrap()
    else {
        panic!("grant gone")
    };
    assert_eq!(stored.version, 2, "created, then one write");
    let Record::Grant(stored) = stored.record else {
        panic!("not a grant")
    };
    assert_eq!(stored.redemptions_made, 1);
    assert_eq!(stored.issued.len(), 1);
    assert_eq!(stored.issued[0].serial, info.serial_hex);
    assert_eq!(stored.issued[0].common_name, EAST_ID);
    let issued = west.issued().unwrap();
    assert_eq!(issued.len(), 1);
    assert_eq!(
        issued[0].via,
        IssuedVia::Grant {
            name: "to-east".into(),
            grant: grant.id.clone()
        }
    );
}

#[test]
fn the_code_is_checked_before_anything_else_is_revealed() {
    let (_, west) = west(5);
    let (grant, token) = issue(&west, &GrantOptions::new("once"));
    let mut rng = SeededRandom::new(8);
    west.redeem_grant(&redemption(&token, EAST_ID), NOW, &mut rng)
        .unwrap();
    let wrong = GrantRedemption {
        code: b"not-the-code".to_vec(),
        ..redemption(&token, EAST_ID)
    };
    // Used up, expired: a wrong code is 403 whatever the state.
    for at in [NOW, grant.expires_at + Duration::hours(1)] {
        let err = west.redeem_grant(&wrong, at, &mut rng).unwrap_err();
        assert!(matches!(err, GrantError::WrongCode { .. }), "{err:?}");
        assert_eq!(
            (err.http_status(), err.http_body()),
            (403, "Redemption of access token refused\n".into())
        );
    }
    let err = west
        .redeem_grant(&redemption(&token, EAST_ID), NOW, &mut rng)
        .unwrap_err();
    assert!(
        matches!(err, GrantError::UsedUp { allowed: 1, .. }),
        "{err:?}"
    );
    assert_eq!(err.http_body(), "No such access granted\n");
    // Refusals are counted.
    let counted = west.grants().unwrap().remove(0);
    assert_eq!(counted.failed_attempts, 3);
    assert_eq!(
        counted.last_failed_attempt.map(|a| a.reason),
        Some("no redemptions left".into())
    );

    let (fresh, token) = issue(&west, &GrantOptions::new("later"));
    let err = west
        .redeem_grant(&redemption(&token, EAST_ID), fresh.expires_at, &mut rng)
        .unwrap_err();
    assert!(matches!(err, GrantError::Expired { .. }), "{err:?}");
    assert_eq!(
        (err.http_status(), err.http_body()),
        (404, "No such claim\n".into())
    );

    for id in ["0f1e2d3c-0000-4000-8000-000000000000", "../site", ""] {
        let err = west
            .redeem_grant(
                &GrantRedemption {
                    grant: id.into(),
                    ..redemption(&token, EAST_ID)
                },
                NOW,
                &mut rng,
            )
            .unwrap_err();
        assert!(
            matches!(&err, GrantError::NoSuchGrant { grant } if grant == id),
            "{err:?}"
        );
    }
}

#[test]
fn unusable_headers_are_refused_without_spending() {
    let (_, west) = west(6);
    let (_, token) = issue(&west, &GrantOptions::new("g"));
    let mut rng = SeededRandom::new(9);
    let bad = GrantRedemption {
        subject: Some("Not A Site Id!".into()),
        ..redemption(&token, EAST_ID)
    };
    let err = west.redeem_grant(&bad, NOW, &mut rng).unwrap_err();
    assert!(matches!(err, GrantError::InvalidSubject { .. }), "{err:?}");
    assert_eq!(err.http_status(), 400);
    assert_eq!(west.grants().unwrap()[0].redemptions_made, 0);
    // No headers: the Secret and Link are named after the grant, and the
    // certificate after that name.
    let links = west
        .redeem_grant(
            &GrantRedemption {
                name: None,
                subject: None,
                ..redemption(&token, EAST_ID)
            },
            NOW,
            &mut rng,
        )
        .unwrap();
    assert_eq!(links.secret.name, "g");
    let info = certificate_info(&pem_to_der(&links.secret.cert_pem).unwrap()).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("g"));
}

#[test]
fn many_redemptions_keep_every_certificate() {
    let (_, west) = west(7);
    let uses = 40;
    let (_, token) = issue(
        &west,
        &GrantOptions {
            redemptions_allowed: uses,
            ..GrantOptions::new("many")
        },
    );
    let mut rng = SeededRandom::new(10);
    let mut serials = std::collections::BTreeSet::new();
    for i in 0..uses {
        let subject = format!("{:08x}-0000-4000-8000-000000000000", i);
        let links = west
            .redeem_grant(&redemption(&token, &subject), NOW, &mut rng)
            .unwrap();
        let info = certificate_info(&pem_to_der(&links.secret.cert_pem).unwrap()).unwrap();
        serials.insert(info.serial_hex);
    }
    let err = west
        .redeem_grant(&redemption(&token, EAST_ID), NOW, &mut rng)
        .unwrap_err();
    assert!(matches!(err, GrantError::UsedUp { .. }), "{err:?}");
    let issued = west.issued().unwrap();
    let issued_serials: std::collections::BTreeSet<_> =
        issued.iter().map(|r| r.serial.clone()).collect();
    assert_eq!(issued_serials, serials);
    for r in &issued {
        assert!(
            matches!(&r.via, IssuedVia::Grant { name, .. } if name == "many"),
            "{r:?}"
        );
    }
    // Older certificates moved to a batch: the grant record stays small.
    assert_eq!(west.grants().unwrap()[0].issued.len(), 40 - 32);
}

#[test]
fn racing_redeemers_on_separate_handles_win_exactly_the_allowance() {
    const THREADS: usize = 8;
    const ALLOWED: u32 = 3;
    for round in 0..4u64 {
        let (store, west) = west(100 + round);
        let (_, token) = issue(
            &west,
            &GrantOptions {
                redemptions_allowed: ALLOWED,
                ..GrantOptions::new("race")
            },
        );
        let barrier = Arc::new(Barrier::new(THREADS));
        let outcomes: Vec<Result<LinkFile, GrantError>> = (0..THREADS)
            .map(|i| {
                let store = store.clone();
                let barrier = barrier.clone();
                let request = redemption(&token, &format!("{i:08x}-0000-4000-8000-000000000000"));
                thread::spawn(move || {
                    let site = Site::open(store).unwrap();
                    let mut rng = SeededRandom::new(round * 100 + i as u64);
                    barrier.wait();
                    site.redeem_grant(&request, NOW, &mut rng)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let wins = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(wins, ALLOWED as usize, "round {round}: {outcomes:?}");
        for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
            assert!(
                matches!(
                    refused,
                    GrantError::UsedUp {
                        allowed: ALLOWED,
                        ..
                    }
                ),
                "{refused:?}"
            );
        }
        let grant = west.grants().unwrap().remove(0);
        assert_eq!(grant.redemptions_made, ALLOWED);
        assert_eq!(grant.issued.len(), ALLOWED as usize);
        assert_eq!(west.issued().unwrap().len(), ALLOWED as usize);
    }
}

#[test]
fn revoke_access_voids_outstanding_grants() {
    let (_, west) = west(8);
    let (_, open) = issue(&west, &GrantOptions::new("open"));
    let (_, used) = issue(&west, &GrantOptions::new("used"));
    let mut rng = SeededRandom::new(12);
    west.redeem_grant(&redemption(&used, EAST_ID), NOW, &mut rng)
        .unwrap();
    let revoked = west.revoke_access(NOW, &mut rng).unwrap();
    assert_eq!(revoked.grants_deleted, 2);
    assert_eq!(revoked.grants_voided, 1);
    assert_eq!(revoked.certificates_forgotten, 1);
    assert_eq!(west.grants().unwrap(), vec![]);
    let err = west
        .redeem_grant(&redemption(&open, EAST_ID), NOW, &mut rng)
        .unwrap_err();
    assert!(matches!(err, GrantError::NoSuchGrant { .. }), "{err:?}");
    assert_eq!(
        (err.http_status(), err.http_body()),
        (404, "No such claim\n".into())
    );
}

#[test]
fn a_grant_record_of_an_older_ca_is_no_grant() {
    let (store, west) = west(9);
    let (grant, token) = issue(&west, &GrantOptions::new("old"));
    let mut rng = SeededRandom::new(13);
    west.revoke_access(NOW, &mut rng).unwrap();
    // Put the old record back, as a process that missed the revocation
    // might: its generation voids it.
    let key = Key::new(RecordKind::Grant, grant.id.clone());
    let _ = store
        .compare_and_swap(&key, None, Some(Record::Grant(Box::new(grant))))
        .unwrap();
    let err = west
        .redeem_grant(&redemption(&token, EAST_ID), NOW, &mut rng)
        .unwrap_err();
    assert!(matches!(err, GrantError::NoSuchGrant { .. }), "{err:?}");
}

#[test]
fn revoking_a_grant_linked_site_by_its_id_revokes_its_certificate() {
    let (_, west) = west(10);
    let (_, token) = issue(&west, &GrantOptions::new("g"));
    let mut rng = SeededRandom::new(14);
    let links = west
        .redeem_grant(&redemption(&token, EAST_ID), NOW, &mut rng)
        .unwrap();
    let serial = certificate_info(&pem_to_der(&links.secret.cert_pem).unwrap())
        .unwrap()
        .serial_hex;
    let revoked = west.revoke_peer(EAST_ID, NOW).unwrap();
    let serials: Vec<_> = revoked.revoked.iter().map(|r| r.serial.clone()).collect();
    assert_eq!(serials, [serial]);
}

#[test]
fn generated_link_file_is_skuppers_layout_with_a_recorded_certificate() {
    let (_, west) = west(11);
    let mut rng = SeededRandom::new(15);
    let file = west
        .generate_link_file("mylink", 1, None, NOW, &mut rng)
        .unwrap();
    assert_eq!(file.links.len(), 1);
    assert_eq!(file.links[0].name, "mylink-skupper-router");
    assert_eq!(file.links[0].cost, 1);
    assert_eq!(file.links[0].tls_credentials, "mylink");
    assert_eq!(file.secret.name, "mylink");
    assert_eq!(
        LinkFile::decode(file.encode_generated().as_bytes()).unwrap(),
        file
    );
    let info = certificate_info(&pem_to_der(&file.secret.cert_pem).unwrap()).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("mylink"));
    let issued = west.issued().unwrap();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].serial, info.serial_hex);
    assert_eq!(
        issued[0].via,
        IssuedVia::LinkFile {
            name: "mylink".into()
        }
    );
    let revoked = west.revoke_peer("mylink", NOW).unwrap();
    assert_eq!(revoked.revoked[0].serial, info.serial_hex);

    let other = west
        .generate_link_file("second", 5, Some("creds"), NOW, &mut rng)
        .unwrap();
    assert_eq!(other.links[0].tls_credentials, "creds");
    assert_eq!(other.secret.name, "creds");
    assert_eq!(other.links[0].cost, 5);
    let err = west
        .generate_link_file("Bad Name", 1, None, NOW, &mut rng)
        .unwrap_err();
    assert!(
        matches!(&err, TokenError::Invalid { what: "link name", value, .. } if value == "Bad Name"),
        "{err:?}"
    );
}
