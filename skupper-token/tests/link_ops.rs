//! The outgoing-link operations as values: what the site asks to be done
//! (a redemption, a dial) and how it records the answers, with no network
//! in between but what the test hands back.

use skupper_token::link::LinkState;
use skupper_token::link_ops::{LinkAction, NoticeRejected, Redemption};
use skupper_token::pki::PrivateKey;
use skupper_token::protocol::{NoticeError, RevokeNotice, Revoked};
use skupper_token::random::SeededRandom;
use skupper_token::site::{LinkError, LinkOptions, Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::time::OffsetDateTime;
use skupper_token::token::CertToken;
use skupper_token::transport::TransportError;
use skupper_token::version::VERSION;

struct Sites {
    now: OffsetDateTime,
    rng: SeededRandom,
    west: Site<MemoryStore>,
    east: Site<MemoryStore>,
    north: Site<MemoryStore>,
}

fn sites() -> Sites {
    let now = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let mut rng = SeededRandom::new(11);
    let mut site =
        |name: &str| Site::create(MemoryStore::new(), &SiteConfig::new(name), now, &mut rng);
    let (west, east, north) = (
        site("west").unwrap(),
        site("east").unwrap(),
        site("north").unwrap(),
    );
    Sites {
        now,
        rng,
        west,
        east,
        north,
    }
}

/// West's claims server answering `r`.
fn answer(s: &mut Sites, r: &Redemption) -> Result<CertToken, TransportError> {
    s.west
        .redeem_claim(&r.request, s.now, &mut s.rng)
        .map_err(|e| TransportError::Refused {
            status: e.http_status(),
            body: e.http_body(),
        })
}

fn is_send_static<T: Send + Sync + 'static>(_: &T) {}

#[test]
fn a_claim_token_link_says_which_claim_to_redeem_and_a_cert_token_link_needs_nothing() {
    let mut s = sites();
    let claim = s
        .west
        .create_claim_token(&TokenOptions::claim(), s.now, &mut s.rng)
        .unwrap();
    let created = s
        .east
        .create_link(
            claim.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    assert_eq!(*created.link.state(), LinkState::Pending);
    let r = created.redemption.expect("a claim to redeem");
    is_send_static(&r);
    assert_eq!(r.link, "link1");
    assert_eq!(r.url, claim.url);
    assert_eq!(r.ca_pem, claim.ca_pem);
    assert_eq!(r.remote_site_id, s.west.id());
    assert!(r.new_link);
    assert_eq!(r.request.claim, claim.name);
    assert_eq!(r.request.password, claim.password.expose().as_bytes());
    assert_eq!(r.request.site_id, s.east.id());
    assert_eq!(r.request.site_version, VERSION);
    let shown = format!("{r:?}");
    assert!(
        !shown.contains(claim.password.expose()) && shown.contains("<redacted>"),
        "{shown}"
    );

    let got = answer(&mut s, &r);
    let link = s.east.handle_redemption(&r, got, s.now).unwrap();
    assert_eq!(*link.state(), LinkState::Connecting);
    assert!(!link.has_claim());

    let cert = s
        .west
        .create_cert_token(&TokenOptions::cert(), s.now, &mut s.rng)
        .unwrap();
    let created = s
        .north
        .create_link(
            cert.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    assert_eq!(created.redemption, None);
    assert_eq!(*created.link.state(), LinkState::Connecting);
    let dial = s.north.dial_link("link1").unwrap();
    is_send_static(&dial);
    assert_eq!(dial.endpoint, cert.inter_router);
    assert_eq!(dial.remote_site_id, s.west.id());
    assert_eq!(dial.local.site_id, s.north.id());
}

#[test]
fn a_cert_token_from_another_site_than_the_claims_is_refused_and_the_new_link_is_gone() {
    let mut s = sites();
    let claim = s
        .west
        .create_claim_token(&TokenOptions::claim(), s.now, &mut s.rng)
        .unwrap();
    let r = s
        .east
        .create_link(
            claim.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap()
        .redemption
        .unwrap();
    // Something at west's URL answers with north's credentials.
    let from_north = s
        .north
        .create_cert_token(&TokenOptions::cert(), s.now, &mut s.rng)
        .unwrap();
    let refused = s.east.handle_redemption(&r, Ok(from_north), s.now);
    assert_eq!(
        refused,
        Err(LinkError::ClaimRedemption {
            link: "link1".into(),
            reason: format!(
                "the claims server answered with a token from site {} instead of {}",
                s.north.id(),
                s.west.id()
            ),
            retryable: false,
        })
    );
    assert_eq!(s.east.links().unwrap(), []);
}

#[test]
fn a_retried_redemption_keeps_the_link_failed_and_process_links_retries_only_what_may_succeed() {
    let mut s = sites();
    let claim = s
        .west
        .create_claim_token(&TokenOptions::claim(), s.now, &mut s.rng)
        .unwrap();
    s.east
        .add_link(
            claim.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    let [LinkAction::Redeem(r)] = &s.east.process_links().unwrap()[..] else {
        panic!("a pending link is to be redeemed");
    };
    assert!(!r.new_link);
    let busy = TransportError::Refused {
        status: 503,
        body: "busy\n".into(),
    };
    let err = s.east.handle_redemption(r, Err(busy), s.now).unwrap_err();
    assert_eq!(err.to_string(), "Failed to redeem claim: busy");
    assert_eq!(
        *s.east.link("link1").unwrap().state(),
        LinkState::Failed {
            reason: "Failed to redeem claim: busy".into(),
            retryable: true
        }
    );
    let actions = s.east.process_links().unwrap();
    assert!(
        matches!(&actions[..], [LinkAction::Redeem(again)] if again == r),
        "{actions:?}"
    );

    let gone = TransportError::Refused {
        status: 404,
        body: "No such claim\n".into(),
    };
    s.east.handle_redemption(r, Err(gone), s.now).unwrap_err();
    assert!(s.east.link("link1").unwrap().is_refused());
    assert_eq!(s.east.process_links().unwrap(), []);
    assert!(matches!(
        s.east.redeem_link("link1"),
        Ok(Redemption {
            new_link: false,
            ..
        })
    ));
}

#[test]
fn a_dial_answered_after_its_link_was_replaced_changes_nothing() {
    let mut s = sites();
    let first = s
        .west
        .create_cert_token(&TokenOptions::cert(), s.now, &mut s.rng)
        .unwrap();
    s.east
        .create_link(
            first.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    let old = s.east.dial_link("link1").unwrap();
    s.east.delete_link("link1").unwrap();
    let second = s
        .west
        .create_cert_token(&TokenOptions::cert(), s.now, &mut s.rng)
        .unwrap();
    s.east
        .create_link(
            second.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    assert_eq!(
        s.east.handle_dial(&old, Ok(()), s.now),
        Err(LinkError::LinkReplaced {
            name: "link1".into()
        })
    );
    assert_eq!(
        *s.east.link("link1").unwrap().state(),
        LinkState::Connecting
    );

    let new = s.east.dial_link("link1").unwrap();
    let down = TransportError::Unreachable {
        reason: "connection to 127.0.0.1:55671 refused".into(),
    };
    let link = s.east.handle_dial(&new, Err(down), s.now).unwrap();
    assert_eq!(
        link.status().to_string(),
        "Link link1 not connected (peer unreachable: connection to 127.0.0.1:55671 refused)"
    );
}

#[test]
fn a_revocation_notice_not_signed_by_the_links_ca_is_ignored() {
    let mut s = sites();
    let cert = s
        .west
        .create_cert_token(&TokenOptions::cert(), s.now, &mut s.rng)
        .unwrap();
    s.east
        .create_link(
            cert.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    let dial = s.east.dial_link("link1").unwrap();
    s.east.handle_dial(&dial, Ok(()), s.now).unwrap();
    let serial = skupper_token::pki::certificate_info(
        &skupper_token::pki::pem_to_der(&cert.cert_pem).unwrap(),
    )
    .unwrap()
    .serial_hex;
    let notice = RevokeNotice {
        issuer_site_id: s.west.id().to_owned(),
        issuer_site_name: "west".into(),
        at: s.now,
        certificate_serial: serial,
        revoked: Revoked::AccessRevoked { ca_generation: 2 },
    };
    // North's CA key signs a notice in west's name.
    let north_ca = s.north.record().unwrap().ca.unwrap();
    let key = PrivateKey::from_pem(&north_ca.key_pem).unwrap();
    let forged = notice
        .sign(&*s.north.key_backend().p256_signer(&key).unwrap())
        .unwrap();
    assert_eq!(
        s.east.handle_revoke_notice(&dial, &forged, s.now),
        Err(NoticeRejected::NotGenuine {
            link: "link1".into(),
            source: NoticeError::BadSignature
        })
    );
    assert!(s.east.link("link1").unwrap().state().is_connected());

    // West's own CA key: the link is revoked.
    let west_ca = s.west.record().unwrap().ca.unwrap();
    let key = PrivateKey::from_pem(&west_ca.key_pem).unwrap();
    let genuine = notice
        .sign(&*s.west.key_backend().p256_signer(&key).unwrap())
        .unwrap();
    let checked = s.east.handle_revoke_notice(&dial, &genuine, s.now).unwrap();
    assert_eq!(checked.issuer_site_id, s.west.id());
    assert!(s.east.link("link1").unwrap().state().is_revoked());

    // What happens to its connections after that leaves it revoked (a
    // runtime that keeps dialing it at the longest wait).
    let unreachable = TransportError::Unreachable {
        reason: "connection to 127.0.0.1:55671 refused".into(),
    };
    let link = s.east.handle_dial(&dial, Err(unreachable), s.now).unwrap();
    assert_eq!(
        link.state().reason(),
        s.east.link("link1").unwrap().state().reason()
    );
    assert!(link.state().is_revoked());
    let stopped = s.east.handle_dial_stopped(&dial, "stopped", s.now).unwrap();
    assert!(stopped.state().is_revoked());
}

/// The reasons a link records for how its dials and connections went come
/// from the core, whoever drives the link: the in-memory harness names the
/// endpoint, the live runtime the address it connected to (and what TLS
/// said), and both get the same sentences.
#[test]
fn dial_and_close_outcomes_give_the_reasons_users_see() {
    use skupper_token::link_ops::LinkClosed;
    use skupper_token::protocol::CloseReason;
    use skupper_token::time::Duration;

    let mut s = sites();
    let cert = s
        .west
        .create_cert_token(&TokenOptions::cert(), s.now, &mut s.rng)
        .unwrap();
    s.east
        .create_link(
            cert.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    let dial = s.east.dial_link("link1").unwrap();
    let at = "127.0.0.1:55671";
    let reason = |link: skupper_token::link::LinkRecord| link.state().reason().unwrap();

    // What the runtime's TCP connect and TLS handshake report.
    let failed = |e| reason(s.east.handle_dial(&dial, Err(e), s.now).unwrap());
    assert_eq!(
        failed(TransportError::Unreachable {
            reason: format!("connection to {at} refused")
        }),
        format!("peer unreachable: connection to {at} refused")
    );
    assert_eq!(
        failed(TransportError::Handshake {
            reason: format!("the remote site's certificate is not from the CA in this link's token (with {at})")
        }),
        format!("TLS handshake failed: the remote site's certificate is not from the CA in this link's token (with {at})")
    );

    // Ended before the remote site accepted the link.
    let closed = |c: LinkClosed| reason(s.east.handle_link_closed(&dial, &c, s.now).unwrap());
    assert_eq!(
        closed(LinkClosed::new(
            at,
            CloseReason::Refused {
                reason: "the hello's site id is not usable".into()
            }
        )),
        format!(
            "certificate rejected by the remote site: the hello's site id is not usable ({at})"
        )
    );
    // TLS 1.3: the listener's alert about this side's certificate comes
    // after the handshake, on the connection.
    assert_eq!(
        closed(
            LinkClosed::new(
                at,
                CloseReason::Transport {
                    reason: "received fatal alert: CertificateExpired".into()
                }
            )
            .broken_by(TransportError::Rejected {
                reason: format!("this link's certificate has expired ({at}, TLS alert certificate_expired)")
            })
        ),
        format!("certificate rejected by the remote site: this link's certificate has expired ({at}, TLS alert certificate_expired)")
    );
    assert_eq!(
        closed(LinkClosed::new(at, CloseReason::PeerClosed)),
        format!(
            "link refused by the remote site: {at} closed the connection before accepting the link"
        )
    );

    // Ended after it was up: a live clock's 3.004 s of silence is 3 s.
    assert_eq!(
        closed(
            LinkClosed::new(
                at,
                CloseReason::Dead {
                    silent: Duration::milliseconds(3004)
                }
            )
            .after_connected("west")
        ),
        format!("heartbeat timeout: no answer from {at} (site west) for 3s")
    );
    assert_eq!(
        closed(
            LinkClosed::new(
                at,
                CloseReason::Bye {
                    reason: "the link was deleted".into()
                }
            )
            .after_connected("west")
        ),
        format!("the remote site {at} (site west) closed the link: the link was deleted")
    );

    // A dialer that stops says why; a revoked link stays revoked.
    assert_eq!(
        reason(
            s.east
                .handle_dial_stopped(&dial, "site not running (its link runtime stopped)", s.now)
                .unwrap()
        ),
        "site not running (its link runtime stopped)"
    );
}
