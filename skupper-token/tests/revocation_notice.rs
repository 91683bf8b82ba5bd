//! The signed revocation notice: when west revokes access, its listener
//! tells east's link so in a notice signed by the CA that issued east's
//! certificate, and east believes it only if the CA in its own token
//! signed it, for its own certificate, from the site its token is from.

use skupper_token::keys::P256Signing;
use skupper_token::pki::CaIssuer;
use skupper_token::protocol::notice::{
    NoticeError, RevokeNotice, Revoked, SignedNotice, MAX_NOTICE_BYTES, MAX_SIGNATURE_HEX,
    NOTICE_CONTEXT,
};
use skupper_token::random::SeededRandom;
use std::sync::Arc;
use time::macros::datetime;
use time::Duration;

fn ca(seed: u64) -> CaIssuer {
    CaIssuer::new_site_ca(
        &mut SeededRandom::new(seed),
        datetime!(2026-11-28 10:00 UTC),
        Duration::days(1),
    )
    .expect("site CA")
}

/// The CA's key, loaded for signing through its key backend.
fn signer(ca: &CaIssuer) -> Arc<dyn P256Signing> {
    ca.key_backend()
        .p256_signer(&ca.certified_key().key)
        .expect("CA key loads")
}

fn notice() -> RevokeNotice {
    RevokeNotice {
        issuer_site_id: "west-id".into(),
        issuer_site_name: "west".into(),
        at: datetime!(2026-11-28 11:00 UTC),
        certificate_serial: "0ABC".into(),
        revoked: Revoked::AccessRevoked { ca_generation: 2 },
    }
}

#[test]
fn a_notice_signed_by_the_token_ca_verifies_and_says_who_revoked_when() {
    let ca = ca(1);
    let signed = notice().sign(&*signer(&ca)).unwrap();
    assert_eq!(
        signed.payload,
        r#"{"issuer_site_id":"west-id","issuer_site_name":"west","at":"2026-11-28T11:00:00Z","certificate_serial":"0ABC","kind":"access-revoked","ca_generation":2}"#
    );
    // The serial is compared without regard to case.
    let got = signed.verify(ca.ca_pem(), "west-id", "0abc").unwrap();
    assert_eq!(got, notice());
    assert_eq!(
        got.reason(),
        "access revoked by west (site west-id) at 2026-11-28T11:00:00Z"
    );
    assert_eq!(got.what(), "all access revoked (new CA, generation 2)");
}

#[test]
fn the_default_backend_signs_the_same_bytes_every_time() {
    let ca = ca(1);
    assert_eq!(
        notice().sign(&*signer(&ca)).unwrap(),
        notice().sign(&*signer(&ca)).unwrap(),
        "RFC 6979"
    );
}

#[test]
fn the_time_is_sent_in_utc_whole_seconds() {
    let ca = ca(1);
    let n = RevokeNotice {
        at: datetime!(2026-11-28 12:00:00.75 +01:00),
        ..notice()
    };
    let signed = n.sign(&*signer(&ca)).unwrap();
    assert!(
        signed.payload.contains(r#""at":"2026-11-28T11:00:00Z""#),
        "{}",
        signed.payload
    );
    let got = signed.verify(ca.ca_pem(), "west-id", "0ABC").unwrap();
    assert_eq!(got.at, datetime!(2026-11-28 11:00 UTC));
}

/// A CA certificate (key discarded) and two notices it signed, made by
/// the link runtime before the notice moved into the core (ring, OS
/// randomness). Sites of either version must understand each other.
const OLD_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBdzCCAR2gAwIBAgIQNGAYwM9WAHtaP6BGtiiIujAKBggqhkjOPQQDAjAaMRgw
FgYDVQQDEw9za3VwcGVyLXNpdGUtY2EwHhcNMjYxMTI4MDk1NTAwWhcNMzYxMTI1
MTAwMDAwWjAaMRgwFgYDVQQDEw9za3VwcGVyLXNpdGUtY2EwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAASmRmD+HfiIgT/+xoIRls9FiEy3TFBW8/iSGKCzBFdKiQnA
ACGmpKVPEN4XbkPKFhMoNUUfEMo/wf2lZ+17BsTGo0UwQzAOBgNVHQ8BAf8EBAMC
AQYwHQYDVR0OBBYEFN0x9riWPtiT+SAOi64iTsrV2kNbMBIGA1UdEwEB/wQIMAYB
Af8CAQAwCgYIKoZIzj0EAwIDSAAwRQIgDwuhsTo8DIIwlGUURL5AEaYLVO1h3xSr
ogGwLXtfGwECIQDeMCrdamb/v8y8eqMBAbfApYMrnaQH/jZLPKpiLeS68g==
-----END CERTIFICATE-----
";
const OLD_ACCESS_REVOKED: (&str, &str) = (
    r#"{"issuer_site_id":"7f3c2a1e-west","issuer_site_name":"west","at":"2026-11-28T10:00:00Z","certificate_serial":"5A1B2C3D4E5F","kind":"access-revoked","ca_generation":2}"#,
    "30460221009cfcf5528d7af3e13f8448f0c55a98f393ea499015a7b536aee7d8528dd33f320221008debea25d028671480ea056bc21d9ba75e03b06c3fcbf6bc46f68d182c01b640",
);
const OLD_PEER_REVOKED: (&str, &str) = (
    r#"{"issuer_site_id":"7f3c2a1e-west","issuer_site_name":"west","at":"2026-11-28T10:00:00Z","certificate_serial":"5A1B2C3D4E5F","kind":"peer-revoked","revoked_serials":["5A1B2C3D4E5F"]}"#,
    "3045022100ea3c3c1d54cd26fe1d99bf190b0ef76b47c393d0dafd3fa69eafebeee4484c4302200d294d89400263b6c851df1d0076b44b317eb1427f08183562315483657e5aab",
);

#[test]
fn notices_signed_by_the_previous_version_verify_and_are_written_the_same_way() {
    assert_eq!(NOTICE_CONTEXT, b"skupper-token link revoke-notice v1\n");
    let old = |(payload, signature): (&str, &str)| SignedNotice {
        payload: payload.into(),
        signature: signature.into(),
    };
    let access = old(OLD_ACCESS_REVOKED)
        .verify(OLD_CA_PEM, "7f3c2a1e-west", "5a1b2c3d4e5f")
        .unwrap();
    assert_eq!(
        access,
        RevokeNotice {
            issuer_site_id: "7f3c2a1e-west".into(),
            issuer_site_name: "west".into(),
            at: datetime!(2026-11-28 10:00 UTC),
            certificate_serial: "5A1B2C3D4E5F".into(),
            revoked: Revoked::AccessRevoked { ca_generation: 2 },
        }
    );
    let peer = old(OLD_PEER_REVOKED)
        .verify(OLD_CA_PEM, "7f3c2a1e-west", "5A1B2C3D4E5F")
        .unwrap();
    assert_eq!(
        peer.revoked,
        Revoked::PeerRevoked {
            revoked_serials: vec!["5A1B2C3D4E5F".into()]
        }
    );
    assert_eq!(peer.what(), "certificate(s) 5A1B2C3D4E5F revoked");
    // This version writes the same payload for the same notice, so an old
    // site reads what a new one sends.
    let ca = ca(1);
    assert_eq!(
        access.sign(&*signer(&ca)).unwrap().payload,
        OLD_ACCESS_REVOKED.0
    );
    assert_eq!(
        peer.sign(&*signer(&ca)).unwrap().payload,
        OLD_PEER_REVOKED.0
    );
}

#[test]
fn a_notice_signed_by_another_ca_is_refused() {
    // Mallory's CA, or west's new CA after revoke-access: only the CA that
    // issued the link's certificate (the one in its token) counts.
    let (ca, other) = (ca(1), ca(2));
    let forged = notice().sign(&*signer(&other)).unwrap();
    let err = forged.verify(ca.ca_pem(), "west-id", "0ABC").unwrap_err();
    assert_eq!(err, NoticeError::BadSignature);
    assert_eq!(
        err.to_string(),
        "the signature does not verify with the CA certificate in this link's token"
    );
}

#[test]
fn an_altered_notice_is_refused() {
    let ca = ca(1);
    let signed = notice().sign(&*signer(&ca)).unwrap();
    let altered = SignedNotice {
        payload: signed.payload.replace("\"west\"", "\"evil\""),
        ..signed.clone()
    };
    assert_ne!(altered, signed);
    assert_eq!(
        altered.verify(ca.ca_pem(), "west-id", "0ABC").unwrap_err(),
        NoticeError::BadSignature
    );
    // Signed without the context: not a notice signature.
    let raw = SignedNotice {
        signature: hex(&signer(&ca).sign(signed.payload.as_bytes()).unwrap()),
        ..signed
    };
    assert_eq!(
        raw.verify(ca.ca_pem(), "west-id", "0ABC").unwrap_err(),
        NoticeError::BadSignature
    );
}

#[test]
fn a_notice_about_another_certificate_is_refused() {
    let ca = ca(1);
    let signed = notice().sign(&*signer(&ca)).unwrap();
    let err = signed.verify(ca.ca_pem(), "west-id", "0ABD").unwrap_err();
    assert_eq!(
        err,
        NoticeError::WrongCertificate {
            named: "0ABC".into(),
            own: "0ABD".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "the notice is about certificate 0ABC, not this link's certificate 0ABD"
    );
}

#[test]
fn a_notice_from_another_site_is_refused() {
    let ca = ca(1);
    let signed = notice().sign(&*signer(&ca)).unwrap();
    let err = signed.verify(ca.ca_pem(), "north-id", "0ABC").unwrap_err();
    assert_eq!(
        err,
        NoticeError::WrongSite {
            from: "west-id".into(),
            expected: "north-id".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "the notice is from site west-id, but this link goes to site north-id"
    );
}

#[test]
fn a_peer_revocation_must_list_the_certificate() {
    let ca = ca(1);
    let of = |serials: &[&str]| RevokeNotice {
        revoked: Revoked::PeerRevoked {
            revoked_serials: serials.iter().map(|s| (*s).to_owned()).collect(),
        },
        ..notice()
    };
    let other = of(&["FFFF"]).sign(&*signer(&ca)).unwrap();
    let err = other.verify(ca.ca_pem(), "west-id", "0ABC").unwrap_err();
    assert_eq!(
        err,
        NoticeError::NotListed {
            listed: 1,
            own: "0ABC".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "the notice revokes 1 certificate(s), none of them this link's certificate 0ABC"
    );
    let listed = of(&["FFFF", "0abc"]).sign(&*signer(&ca)).unwrap();
    let got = listed.verify(ca.ca_pem(), "west-id", "0ABC").unwrap();
    assert_eq!(got.what(), "certificate(s) FFFF, 0abc revoked");
}

#[test]
fn garbage_and_oversized_notices_are_refused_before_any_signature_check() {
    let ca = ca(1);
    let signed = notice().sign(&*signer(&ca)).unwrap();
    for signature in ["zz".to_owned(), "abc".to_owned(), "ab".repeat(257)] {
        let garbage = SignedNotice {
            signature,
            ..signed.clone()
        };
        assert_eq!(
            garbage.verify(ca.ca_pem(), "west-id", "0ABC").unwrap_err(),
            NoticeError::SignatureNotHex {
                max: MAX_SIGNATURE_HEX
            }
        );
    }
    let huge = SignedNotice {
        payload: " ".repeat(MAX_NOTICE_BYTES + 1),
        ..signed
    };
    assert_eq!(
        huge.verify(ca.ca_pem(), "west-id", "0ABC").unwrap_err(),
        NoticeError::TooLarge {
            bytes: MAX_NOTICE_BYTES + 1,
            max: MAX_NOTICE_BYTES
        }
    );
}

#[test]
fn a_signed_payload_that_is_not_a_notice_is_refused() {
    let ca = ca(1);
    let sign_raw = |payload: &str| {
        let mut message = NOTICE_CONTEXT.to_vec();
        message.extend_from_slice(payload.as_bytes());
        SignedNotice {
            payload: payload.into(),
            signature: hex(&signer(&ca).sign(&message).unwrap()),
        }
    };
    let bad_time = sign_raw(
        r#"{"issuer_site_id":"west-id","issuer_site_name":"west","at":"yesterday","certificate_serial":"0ABC","kind":"access-revoked","ca_generation":2}"#,
    );
    let err = bad_time.verify(ca.ca_pem(), "west-id", "0ABC").unwrap_err();
    assert!(
        matches!(&err, NoticeError::Unreadable { reason } if reason.starts_with("the notice's time yesterday is not RFC 3339")),
        "{err}"
    );
    let unknown_kind = sign_raw(
        r#"{"issuer_site_id":"west-id","issuer_site_name":"west","at":"2026-11-28T11:00:00Z","certificate_serial":"0ABC","kind":"all-is-well"}"#,
    );
    let err = unknown_kind
        .verify(ca.ca_pem(), "west-id", "0ABC")
        .unwrap_err();
    assert!(
        matches!(&err, NoticeError::Unreadable { reason } if reason.contains("all-is-well")),
        "{err}"
    );
}

#[test]
fn a_token_ca_that_is_not_p256_cannot_vouch_for_a_notice() {
    let ca = ca(1);
    let signed = notice().sign(&*signer(&ca)).unwrap();
    // An RSA-2048 certificate.
    let rsa = include_str!("data/tls.crt");
    assert_eq!(
        signed.verify(rsa, "west-id", "0ABC").unwrap_err(),
        NoticeError::CaKeyNotP256 {
            algorithm: "a key of type 1.2.840.113549.1.1.1".into()
        }
    );
    assert!(matches!(
        signed
            .verify("not a certificate", "west-id", "0ABC")
            .unwrap_err(),
        NoticeError::CaCertificate { .. }
    ));
}

#[test]
fn names_a_peer_sent_are_made_printable_in_the_reason() {
    let n = RevokeNotice {
        issuer_site_name: "west\n2026-01-01 fake log line".into(),
        ..notice()
    };
    assert_eq!(
        n.reason(),
        "access revoked by \"west\\n2026-01-01 fake log line\" (site west-id) at 2026-11-28T11:00:00Z"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which notice a listener owes a peer whose certificate stopped
/// authenticating, and which CA signs it: the one rule the in-memory
/// harness and the live link runtime both use.
#[test]
fn a_revoked_peer_is_owed_the_notice_of_its_revocation_signed_by_its_ca() {
    use skupper_token::pki::{certificate_info, pem_to_der};
    use skupper_token::protocol::OwedNotice;
    use skupper_token::site::{Site, SiteConfig, TokenOptions};
    use skupper_token::store::MemoryStore;
    use skupper_token::token::Token;

    let mut rng = SeededRandom::new(9);
    let start = datetime!(2026-11-28 10:00 UTC);
    let west = Site::create(
        MemoryStore::new(),
        &SiteConfig::new("west"),
        start,
        &mut rng,
    )
    .unwrap();
    let serial_of = |token: Token| {
        let Token::Cert(cert) = token else {
            panic!("a cert token")
        };
        certificate_info(&pem_to_der(&cert.cert_pem).unwrap())
            .unwrap()
            .serial_hex
    };
    let issue = |name: &str, rng: &mut SeededRandom| {
        serial_of(
            west.create_token(&TokenOptions::cert().name(name), start, rng)
                .unwrap(),
        )
    };
    let east = issue("east", &mut rng);
    let south = issue("south", &mut rng);
    let first = west.record().unwrap().ca_generation;
    let later = start + Duration::minutes(5);

    // Not revoked (it expired, say): no notice.
    let record = west.record().unwrap();
    assert_eq!(
        RevokeNotice::for_peer(&record, &east, Some(first), later),
        None
    );

    // revoke-access --site: the current CA signs a peer-revoked notice.
    let revoked_at = start + Duration::minutes(1);
    west.revoke_peer("east", revoked_at).unwrap();
    let record = west.record().unwrap();
    let peer_revoked = OwedNotice {
        notice: RevokeNotice {
            issuer_site_id: west.id().to_owned(),
            issuer_site_name: "west".into(),
            at: revoked_at,
            certificate_serial: east.clone(),
            revoked: Revoked::PeerRevoked {
                revoked_serials: vec![east.clone()],
            },
        },
        signer_generation: first,
    };
    assert_eq!(
        RevokeNotice::for_peer(&record, &east, Some(first), later),
        Some(peer_revoked.clone())
    );
    // Also when the listener does not know which CA issued it.
    assert_eq!(
        RevokeNotice::for_peer(&record, &east, None, later),
        Some(peer_revoked)
    );
    assert_eq!(
        RevokeNotice::for_peer(&record, &south, Some(first), later),
        None
    );

    // revoke-access: the old CA, the one in the peer's token, signs an
    // access-revoked notice naming the new generation.
    let all_at = start + Duration::minutes(2);
    west.revoke_access(all_at, &mut rng).unwrap();
    let record = west.record().unwrap();
    assert_eq!(
        RevokeNotice::for_peer(&record, &south, Some(first), later),
        Some(OwedNotice {
            notice: RevokeNotice {
                issuer_site_id: west.id().to_owned(),
                issuer_site_name: "west".into(),
                at: all_at,
                certificate_serial: south.clone(),
                revoked: Revoked::AccessRevoked {
                    ca_generation: record.ca_generation,
                },
            },
            signer_generation: first,
        })
    );
    assert!(record.ca_generation > first);
    // A certificate from a CA the listener does not know, not revoked by
    // serial: no notice (a plain goodbye).
    assert_eq!(RevokeNotice::for_peer(&record, &south, None, later), None);
}
