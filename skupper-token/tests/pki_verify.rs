//! Verifying peers: what PeerVerifier accepts and each way it refuses, plus
//! reading a real Skupper (RSA-2048) CA.

use base64::Engine as _;
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, Issuer, KeyIdMethod, KeyPair,
};
use skupper_token::pki::{
    certificate_info, pem_to_der, AuthError, CaIssuer, CertifiedKey, PeerVerifier, PkiError,
    BACKDATE, DEFAULT_VALIDITY,
};
use skupper_token::random::SeededRandom;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);
const FIXTURE: &[u8] = include_bytes!("data/skupper-1.5.2-claim-token.yaml");

fn site_ca(seed: u64) -> CaIssuer {
    CaIssuer::new_site_ca(&mut SeededRandom::new(seed), NOW, DEFAULT_VALIDITY).expect("site CA")
}

fn client(ca: &CaIssuer, name: &str, seed: u64) -> CertifiedKey {
    ca.issue_client(name, &mut SeededRandom::new(seed), NOW, DEFAULT_VALIDITY)
        .expect("client cert")
}

fn verifier(ca: &CaIssuer) -> PeerVerifier {
    PeerVerifier::new(&ca.certified_key().cert_der).expect("verifier")
}

/// A leaf signed by `ca`'s key through plain rcgen (ring), with parameters
/// this crate would never produce. Its issuer name and key id match the CA.
fn custom_leaf(ca: &CaIssuer, edit: impl FnOnce(&mut CertificateParams)) -> Vec<u8> {
    let ca_key = KeyPair::try_from(ca.certified_key().key.pkcs8_der()).expect("CA key");
    let mut issuer_params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        DnValue::PrintableString("skupper-site-ca".try_into().unwrap()),
    );
    issuer_params.distinguished_name = dn;
    issuer_params.key_identifier_method = KeyIdMethod::Sha256;
    let issuer = Issuer::new(issuer_params, ca_key);

    let leaf_key_src = client(ca, "unused", 1000);
    let leaf_key = KeyPair::try_from(leaf_key_src.key.pkcs8_der()).unwrap();
    let mut params = CertificateParams::default();
    params.not_before = NOW;
    params.not_after = NOW + Duration::days(30);
    params.serial_number = Some(vec![0x01, 0x02, 0x03].into());
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "custom");
    params.distinguished_name = dn;
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    edit(&mut params);
    params.signed_by(&leaf_key, &issuer).unwrap().der().to_vec()
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> (Vec<u8>, usize) {
    assert_eq!(from.len(), to.len());
    let mut out = haystack.to_vec();
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    (out, n)
}

#[test]
fn accepts_a_client_certificate_from_its_ca() {
    let ca = site_ca(1);
    let leaf = client(&ca, "east", 2);
    let v = verifier(&ca);
    let peer = v
        .verify(&[&leaf.cert_der], NOW + Duration::days(1))
        .expect("accepted");
    let info = certificate_info(&leaf.cert_der).unwrap();
    assert_eq!(peer.common_name, "east");
    assert_eq!(peer.serial_hex, info.serial_hex);
    assert_eq!(peer.not_before, info.not_before);
    assert_eq!(peer.not_after, info.not_after);
    assert_eq!(peer.fingerprint_sha256, info.fingerprint_sha256);
    assert!(peer
        .fingerprint_sha256
        .chars()
        .all(|c| c == ':' || c.is_ascii_digit() || c.is_ascii_uppercase()));

    // Extra certificates after the leaf are ignored.
    let other = site_ca(3);
    let chain: [&[u8]; 3] = [
        &leaf.cert_der,
        &ca.certified_key().cert_der,
        &other.certified_key().cert_der,
    ];
    assert_eq!(v.verify(&chain, NOW).unwrap(), peer);
    // The verifier made from the issuer, or from PEM, is the same.
    assert_eq!(
        ca.peer_verifier()
            .unwrap()
            .verify(&[&leaf.cert_der], NOW)
            .unwrap(),
        peer
    );
    assert_eq!(
        PeerVerifier::from_pem(ca.ca_pem())
            .unwrap()
            .verify(&[&leaf.cert_der], NOW)
            .unwrap(),
        peer
    );
    // Server certificates carry clientAuth too (Skupper routers use them both ways).
    let server = ca
        .issue_server(
            &["router.east".into()],
            &mut SeededRandom::new(4),
            NOW,
            DEFAULT_VALIDITY,
        )
        .unwrap();
    assert_eq!(
        v.verify(&[&server.cert_der], NOW).unwrap().common_name,
        "router.east"
    );
    // Site names that are not PrintableString are kept exactly.
    let odd = client(&ca, "site_ü*&", 5);
    assert_eq!(
        v.verify(&[&odd.cert_der], NOW).unwrap().common_name,
        "site_ü*&"
    );
}

#[test]
fn validity_boundaries() {
    let ca = site_ca(10);
    let v = verifier(&ca);
    let start = NOW + Duration::days(2);
    let leaf = ca
        .issue_client(
            "east",
            &mut SeededRandom::new(11),
            start,
            Duration::days(10),
        )
        .unwrap();
    // Issued certificates start BACKDATE (5 minutes) before they are made.
    let not_before = start - BACKDATE;
    let end = start + Duration::days(10);
    v.verify(&[&leaf.cert_der], not_before)
        .expect("valid at not_before");
    v.verify(&[&leaf.cert_der], end)
        .expect("valid at not_after");

    let early = not_before - Duration::seconds(1);
    let err = v.verify(&[&leaf.cert_der], early).unwrap_err();
    assert_eq!(
        err,
        AuthError::NotYetValid {
            common_name: "east".into(),
            not_before,
            now: early
        }
    );
    assert_eq!(
        err.to_string(),
        "certificate for \"east\" is not valid before 2026-03-03T11:55:00Z (now 2026-03-03T11:54:59Z): check the clocks of both sites"
    );

    let late = end + Duration::seconds(1);
    let err = v.verify(&[&leaf.cert_der], late).unwrap_err();
    assert_eq!(
        err,
        AuthError::Expired {
            common_name: "east".into(),
            not_after: end,
            now: late
        }
    );
    assert!(
        err.to_string().starts_with(
            "certificate for \"east\" expired at 2026-03-13T12:00:00Z (now 2026-03-13T12:00:01Z)"
        ),
        "{err}"
    );
}

#[test]
fn refuses_a_ca_that_is_no_longer_valid() {
    let ca = site_ca(12);
    // A leaf outliving its CA: the CA's end still counts.
    let leaf = ca
        .issue_client(
            "east",
            &mut SeededRandom::new(13),
            NOW,
            Duration::days(3650),
        )
        .unwrap();
    let v = verifier(&ca);
    let at = NOW + DEFAULT_VALIDITY + Duration::days(1);
    let err = v.verify(&[&leaf.cert_der], at).unwrap_err();
    assert!(
        matches!(err, AuthError::CaNotValid { now, .. } if now == at),
        "{err}"
    );
    // The library says what is wrong; the command to run is the CLI's.
    assert!(
        err.to_string().ends_with(
            ": it authenticates no one until the site has a new CA (revoking access makes one)"
        ),
        "{err}"
    );
}

#[test]
fn refuses_certificates_from_another_ca_or_an_old_ca() {
    let ca = site_ca(20);
    let v = verifier(&ca);
    // After revoke-access the site has a new CA with the same name: the old
    // CA's certificates must be refused as unknown issuer.
    let old_ca = site_ca(21);
    let old_leaf = client(&old_ca, "east", 22);
    let err = v.verify(&[&old_leaf.cert_der], NOW).unwrap_err();
    match &err {
        AuthError::UnknownIssuer {
            common_name,
            issuer,
        } => {
            assert_eq!(common_name, "east");
            assert!(
                issuer.starts_with("CN=skupper-site-ca (key id "),
                "{issuer}"
            );
        }
        other => panic!("expected UnknownIssuer, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("from before access to the site was revoked"),
        "{err}"
    );
    // Even if the old CA is also presented in the chain.
    let chain: [&[u8]; 2] = [&old_leaf.cert_der, &old_ca.certified_key().cert_der];
    assert!(matches!(
        v.verify(&chain, NOW),
        Err(AuthError::UnknownIssuer { .. })
    ));

    // A leaf whose issuer name differs.
    let named = custom_leaf(&ca, |_| {});
    let (renamed, n) = replace_all(&named, b"skupper-site-ca", b"skupper-site-cb");
    assert_eq!(n, 1, "issuer name appears once");
    let err = v.verify(&[&renamed], NOW).unwrap_err();
    assert_eq!(
        err,
        AuthError::UnknownIssuer {
            common_name: "custom".into(),
            issuer: "CN=skupper-site-cb".into()
        }
    );
}

#[test]
fn refuses_tampered_certificates() {
    let ca = site_ca(30);
    let v = verifier(&ca);
    let leaf = client(&ca, "east", 31);

    // Flip a bit in the signature value (its last byte).
    let mut bad_sig = leaf.cert_der.clone();
    *bad_sig.last_mut().unwrap() ^= 0x01;
    assert_eq!(
        v.verify(&[&bad_sig], NOW).unwrap_err(),
        AuthError::BadSignature {
            common_name: "east".into()
        }
    );

    // Change the subject: the signature no longer covers it.
    let (renamed, n) = replace_all(&leaf.cert_der, b"east", b"EAST");
    assert_eq!(n, 1);
    assert_eq!(
        v.verify(&[&renamed], NOW).unwrap_err(),
        AuthError::BadSignature {
            common_name: "EAST".into()
        }
    );

    // Stretch the validity (notAfter year 31 -> 39).
    let info = certificate_info(&leaf.cert_der).unwrap();
    assert_eq!(info.not_after.year(), 2031);
    let (stretched, n) = replace_all(&leaf.cert_der, b"310228120000Z", b"390228120000Z");
    assert_eq!(n, 1);
    assert!(matches!(
        v.verify(&[&stretched], NOW),
        Err(AuthError::BadSignature { .. })
    ));
}

#[test]
fn refuses_a_ca_certificate_as_leaf() {
    let ca = site_ca(40);
    let v = verifier(&ca);
    let err = v.verify(&[&ca.certified_key().cert_der], NOW).unwrap_err();
    assert_eq!(
        err,
        AuthError::IsCa {
            common_name: "skupper-site-ca".into()
        }
    );
    // ... also when issued by the CA (an intermediate).
    let sub = custom_leaf(&ca, |p| {
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    });
    assert_eq!(
        v.verify(&[&sub], NOW).unwrap_err(),
        AuthError::IsCa {
            common_name: "custom".into()
        }
    );
}

#[test]
fn extended_key_usage_must_allow_client_auth() {
    let ca = site_ca(50);
    let v = verifier(&ca);
    let server_only = custom_leaf(&ca, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    });
    let err = v.verify(&[&server_only], NOW).unwrap_err();
    assert_eq!(
        err,
        AuthError::NotClientAuth {
            common_name: "custom".into()
        }
    );
    assert!(err.to_string().contains("clientAuth"), "{err}");

    // The control: the same construction with clientAuth is accepted, as
    // is no EKU at all. anyExtendedKeyUsage is not clientAuth: rustls, which
    // checks the live TLS handshake, refuses it too, so the two agree.
    let ok = custom_leaf(&ca, |_| {});
    assert_eq!(v.verify(&[&ok], NOW).unwrap().common_name, "custom");
    let no_eku = custom_leaf(&ca, |p| p.extended_key_usages.clear());
    v.verify(&[&no_eku], NOW)
        .expect("no EKU extension: any use");
    let any = custom_leaf(&ca, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::Any]
    });
    assert_eq!(
        v.verify(&[&any], NOW).unwrap_err(),
        AuthError::NotClientAuth {
            common_name: "custom".into()
        }
    );
}

#[test]
fn refuses_malformed_input() {
    let ca = site_ca(60);
    let v = verifier(&ca);
    let leaf = client(&ca, "east", 61);

    assert_eq!(v.verify(&[], NOW).unwrap_err(), AuthError::EmptyChain);
    for junk in [
        &b""[..],
        b"garbage",
        &leaf.cert_der[..leaf.cert_der.len() - 10],
    ] {
        assert!(matches!(
            v.verify(&[junk], NOW),
            Err(AuthError::Malformed { .. })
        ));
    }
    let mut trailing = leaf.cert_der.clone();
    trailing.push(0);
    let err = v.verify(&[&trailing], NOW).unwrap_err();
    assert!(
        matches!(&err, AuthError::Malformed { reason } if reason.contains("trailing")),
        "{err}"
    );

    // A certificate without a common name cannot name a site.
    let no_cn = custom_leaf(&ca, |p| {
        p.distinguished_name = DistinguishedName::new();
        p.subject_alt_names = vec![rcgen::SanType::DnsName("x.example".try_into().unwrap())];
    });
    let err = v.verify(&[&no_cn], NOW).unwrap_err();
    assert!(
        matches!(&err, AuthError::Malformed { reason } if reason.contains("common name")),
        "{err}"
    );

    // An unknown critical extension.
    let critical = custom_leaf(&ca, |p| {
        let mut ext =
            CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x05, 0x00]);
        ext.set_criticality(true);
        p.custom_extensions = vec![ext];
    });
    let err = v.verify(&[&critical], NOW).unwrap_err();
    assert!(
        matches!(&err, AuthError::Malformed { reason } if reason.contains("1.3.6.1.4.1.99999.1")),
        "{err}"
    );
    // ... the same extension, not critical, is fine.
    let benign = custom_leaf(&ca, |p| {
        p.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 99999, 1],
            vec![0x05, 0x00],
        )];
    });
    v.verify(&[&benign], NOW)
        .expect("non-critical unknown extension");

    // Outer and inner signature algorithms must agree.
    const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    const ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
    let pos = leaf
        .cert_der
        .windows(8)
        .rposition(|w| w == ECDSA_SHA256)
        .expect("outer algorithm");
    let mut outer_changed = leaf.cert_der.clone();
    outer_changed[pos..pos + 8].copy_from_slice(ECDSA_SHA512);
    let err = v.verify(&[&outer_changed], NOW).unwrap_err();
    assert!(
        matches!(&err, AuthError::Malformed { reason } if reason.contains("algorithm")),
        "{err}"
    );

    // Both changed: a consistent but unsupported algorithm.
    let (both_changed, n) = replace_all(&leaf.cert_der, ECDSA_SHA256, ECDSA_SHA512);
    assert_eq!(n, 2);
    assert_eq!(
        v.verify(&[&both_changed], NOW).unwrap_err(),
        AuthError::UnsupportedAlgorithm {
            common_name: "east".into(),
            oid: "1.2.840.10045.4.3.4".into(),
            ca_key: "ECDSA P-256",
        }
    );
}

#[test]
fn verifier_needs_a_ca_certificate() {
    let ca = site_ca(70);
    let leaf = client(&ca, "east", 71);
    let err = PeerVerifier::new(&leaf.cert_der).unwrap_err();
    assert!(
        matches!(&err, PkiError::NotACa { subject, .. } if subject == "CN=east"),
        "{err}"
    );
    assert!(matches!(
        PeerVerifier::new(b"junk"),
        Err(PkiError::Certificate { .. })
    ));
    assert!(matches!(
        PeerVerifier::from_pem("junk"),
        Err(PkiError::Pem { .. })
    ));
}

fn fixture_ca_pem() -> String {
    let text = std::str::from_utf8(FIXTURE).unwrap();
    let b64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("ca.crt: "))
        .expect("ca.crt in fixture");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn reads_a_real_skupper_rsa_ca() {
    let der = pem_to_der(&fixture_ca_pem()).unwrap();
    let info = certificate_info(&der).unwrap();
    assert_eq!(info.subject, "CN=skupper-site-ca");
    assert_eq!(info.issuer, "CN=skupper-site-ca");
    assert_eq!(info.common_name.as_deref(), Some("skupper-site-ca"));
    assert_eq!(info.key_algorithm, "RSA 2048");
    assert_eq!(info.signature_algorithm, "sha256WithRSAEncryption");
    assert!(info.is_ca);
    assert_eq!(info.dns_names, vec![String::new()], "one empty dNSName SAN");
    assert!(info.ip_addresses.is_empty());
    // Values as `openssl x509 -serial -fingerprint -sha256 -dates` prints them.
    assert_eq!(info.serial_hex, "5DDE9ACC798E231A8DAF35E37EB3DF7C");
    assert_eq!(
        info.fingerprint_sha256,
        "31:2F:81:58:57:5A:90:45:30:91:CA:7C:66:60:26:B1:A1:30:6D:46:1C:D9:45:91:1F:E3:70:26:81:13:77:9E"
    );
    assert_eq!(info.not_before, datetime!(2024-01-08 22:14:33 UTC));
    assert_eq!(info.not_after, datetime!(2029-01-06 22:14:33 UTC));

    // It can be trusted by a verifier (an RSA CA) ...
    let v = PeerVerifier::new(&der).expect("RSA CA accepted as trust anchor");
    // ... which refuses our certificates: different CA of the same name.
    let ours = site_ca(80);
    let leaf = client(&ours, "east", 81);
    assert!(matches!(
        v.verify(&[&leaf.cert_der], NOW),
        Err(AuthError::UnknownIssuer { .. })
    ));
    // The fixture CA presented as a leaf is a CA (signature checked first:
    // it is self-signed with RSA PKCS#1 SHA-256).
    assert_eq!(
        v.verify(&[&der], NOW).unwrap_err(),
        AuthError::IsCa {
            common_name: "skupper-site-ca".into()
        }
    );
    // It has no private key here, so it cannot become an issuer.
    let rsa_as_ours = CertifiedKey {
        cert_pem: fixture_ca_pem(),
        cert_der: der,
        key: leaf.key.clone(),
    };
    assert!(matches!(
        CaIssuer::from_certified_key(&rsa_as_ours),
        Err(PkiError::KeyMismatch { .. })
    ));
}

#[test]
fn our_site_ca_name_is_encoded_like_skuppers() {
    // Skupper (Go) writes CN=skupper-site-ca as a PrintableString; so do we,
    // so that the two CAs' subjects are byte-identical.
    let fixture = pem_to_der(&fixture_ca_pem()).unwrap();
    let ours = site_ca(90);
    let subject = [
        0x30, 0x1a, 0x31, 0x18, 0x30, 0x16, 0x06, 0x03, 0x55, 0x04, 0x03, 0x13, 0x0f,
    ];
    let mut expected = subject.to_vec();
    expected.extend_from_slice(b"skupper-site-ca");
    let count = |der: &[u8]| {
        der.windows(expected.len())
            .filter(|w| *w == expected)
            .count()
    };
    assert_eq!(count(&fixture), 2, "issuer and subject");
    assert_eq!(
        count(&ours.certified_key().cert_der),
        2,
        "issuer and subject"
    );
}
