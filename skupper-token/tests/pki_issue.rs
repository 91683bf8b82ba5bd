//! Issuing: the site CA, server and client certificates, keys, determinism,
//! and checks by an independent verifier (rustls-webpki).

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use skupper_token::pki::{
    certificate_info, pem_to_der, CaIssuer, CertifiedKey, PkiError, PrivateKey, BACKDATE,
    DEFAULT_VALIDITY, SITE_CA_CN,
};
use skupper_token::random::{Random, SeededRandom};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:00.75 UTC);

fn site_ca(seed: u64) -> CaIssuer {
    CaIssuer::new_site_ca(&mut SeededRandom::new(seed), NOW, DEFAULT_VALIDITY).expect("site CA")
}

fn unix(t: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(t.unix_timestamp() as u64))
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).expect("parses");
    assert!(rest.is_empty());
    cert
}

fn ski(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

fn aki(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

/// rustls-webpki, the verifier rustls uses, accepts `leaf` under `ca` for
/// `usage` at `at`.
fn webpki_verify(
    ca: &CaIssuer,
    leaf: &CertifiedKey,
    usage: webpki::KeyUsage,
    at: OffsetDateTime,
) -> Result<(), webpki::Error> {
    let ca_der = CertificateDer::from(ca.certified_key().cert_der.as_slice());
    let anchor = webpki::anchor_from_trusted_cert(&ca_der).expect("trust anchor");
    let leaf_der = CertificateDer::from(leaf.cert_der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf_der).expect("end entity");
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        unix(at),
        usage,
        None,
        None,
    )
    .map(|_| ())
}

#[test]
fn site_ca_has_skupper_shape() {
    let ca = site_ca(1);
    let info = certificate_info(&ca.certified_key().cert_der).unwrap();
    assert_eq!(info.subject, "CN=skupper-site-ca");
    assert_eq!(info.issuer, "CN=skupper-site-ca");
    assert_eq!(info.common_name.as_deref(), Some(SITE_CA_CN));
    assert!(info.is_ca);
    assert_eq!(info.key_algorithm, "ECDSA P-256");
    assert_eq!(info.signature_algorithm, "ecdsa-with-SHA256");
    // not_before is `now` truncated to the second and backdated 5 minutes,
    // validity exactly 5 years from `now`.
    assert_eq!(info.not_before, datetime!(2026-03-01 11:55:00 UTC));
    assert_eq!(
        info.not_after,
        datetime!(2026-03-01 12:00:00 UTC) + Duration::days(5 * 365)
    );
    assert_eq!(ca.not_after(), info.not_after);
    // 128-bit serial with the top bit clear: at most 32 hex digits.
    assert!(
        info.serial_hex.len() <= 32 && info.serial_hex.len() >= 28,
        "{}",
        info.serial_hex
    );
    assert!(info.dns_names.is_empty() && info.ip_addresses.is_empty());
    assert_eq!(info.fingerprint_sha256.len(), 32 * 3 - 1);

    let cert = parse(&ca.certified_key().cert_der);
    let bc = cert.basic_constraints().unwrap().expect("basicConstraints");
    assert!(bc.critical && bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));
    let ku = cert.key_usage().unwrap().expect("keyUsage").value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert!(!ku.digital_signature());
    assert!(ski(&cert).is_some(), "CA has a subject key identifier");
    // The PEM and DER are the same certificate.
    assert_eq!(
        pem_to_der(&ca.certified_key().cert_pem).unwrap(),
        ca.certified_key().cert_der
    );
    assert_eq!(ca.ca_pem(), ca.certified_key().cert_pem);
    assert_eq!(ca.certified_key().key.algorithm(), "ECDSA P-256");
}

#[test]
fn client_certificate_has_skupper_shape_and_chains_by_key_id() {
    let ca = site_ca(2);
    let now = NOW + Duration::hours(1);
    let leaf = ca
        .issue_client("east", &mut SeededRandom::new(3), now, Duration::days(30))
        .unwrap();
    let info = certificate_info(&leaf.cert_der).unwrap();
    assert_eq!(info.subject, "CN=east");
    assert_eq!(info.issuer, "CN=skupper-site-ca");
    assert_eq!(info.common_name.as_deref(), Some("east"));
    assert!(!info.is_ca);
    assert_eq!(info.not_before, datetime!(2026-03-01 12:55:00 UTC));
    assert_eq!(info.not_after, datetime!(2026-03-31 13:00:00 UTC));
    assert!(info.dns_names.is_empty());

    let cert = parse(&leaf.cert_der);
    let bc = cert
        .basic_constraints()
        .unwrap()
        .expect("basicConstraints present");
    assert!(!bc.value.ca);
    let eku = cert.extended_key_usage().unwrap().expect("EKU").value;
    assert!(eku.client_auth && eku.server_auth);
    let ku = cert.key_usage().unwrap().expect("keyUsage").value;
    assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
    let ca_cert = parse(&ca.certified_key().cert_der);
    assert_eq!(aki(&cert), ski(&ca_cert), "leaf AKI is the CA's SKI");
    assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
    assert_eq!(leaf.key.algorithm(), "ECDSA P-256");
}

#[test]
fn webpki_accepts_issued_client_and_server_certificates() {
    let ca = site_ca(4);
    let mut rng = SeededRandom::new(5);
    let client = ca
        .issue_client("west", &mut rng, NOW, DEFAULT_VALIDITY)
        .unwrap();
    let hosts = vec![
        "skupper-inter-router.west.svc".to_string(),
        "10.0.0.7".to_string(),
        "::1".to_string(),
    ];
    let server = ca
        .issue_server(&hosts, &mut rng, NOW, DEFAULT_VALIDITY)
        .unwrap();
    let later = NOW + Duration::days(100);
    for leaf in [&client, &server] {
        webpki_verify(&ca, leaf, webpki::KeyUsage::client_auth(), later).expect("client auth");
        webpki_verify(&ca, leaf, webpki::KeyUsage::server_auth(), later).expect("server auth");
    }

    // The server certificate is valid for its names and addresses, not others.
    let der = CertificateDer::from(server.cert_der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&der).unwrap();
    for name in ["skupper-inter-router.west.svc", "10.0.0.7", "::1"] {
        let sn = ServerName::try_from(name).unwrap();
        ee.verify_is_valid_for_subject_name(&sn)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    let other = ServerName::try_from("evil.example.com").unwrap();
    assert!(ee.verify_is_valid_for_subject_name(&other).is_err());

    // webpki agrees about expiry (sanity check of the validity encoding).
    let expired = NOW + DEFAULT_VALIDITY + Duration::seconds(1);
    assert!(matches!(
        webpki_verify(&ca, &client, webpki::KeyUsage::client_auth(), expired),
        Err(webpki::Error::CertExpired { .. })
    ));
    // ... and rejects a leaf under another CA.
    let other_ca = site_ca(99);
    assert!(webpki_verify(&other_ca, &client, webpki::KeyUsage::client_auth(), later).is_err());
}

/// A peer whose clock is behind this site's accepts a certificate made a
/// moment ago: every certificate starts `BACKDATE` (5 minutes) early.
#[test]
fn fresh_certificates_are_valid_for_a_peer_whose_clock_is_behind() {
    assert_eq!(BACKDATE, Duration::minutes(5));
    // A CA made just now (as by init or revoke-access) and its certificates.
    let ca = site_ca(6);
    let mut rng = SeededRandom::new(7);
    let server = ca
        .issue_server(&["127.0.0.1".to_owned()], &mut rng, NOW, DEFAULT_VALIDITY)
        .unwrap();
    let client = ca
        .issue_client("east", &mut rng, NOW, DEFAULT_VALIDITY)
        .unwrap();
    for behind in [Duration::seconds(1), Duration::minutes(4)] {
        let peer_clock = NOW - behind;
        webpki_verify(&ca, &server, webpki::KeyUsage::server_auth(), peer_clock)
            .unwrap_or_else(|e| panic!("server certificate, clock {behind} behind: {e:?}"));
        webpki_verify(&ca, &client, webpki::KeyUsage::client_auth(), peer_clock)
            .unwrap_or_else(|e| panic!("client certificate, clock {behind} behind: {e:?}"));
        // The core's own verifier agrees.
        ca.peer_verifier()
            .unwrap()
            .verify(&[&client.cert_der], peer_clock)
            .unwrap_or_else(|e| panic!("clock {behind} behind: {e}"));
    }
    // Further behind than the backdating is not valid yet.
    assert!(matches!(
        webpki_verify(
            &ca,
            &server,
            webpki::KeyUsage::server_auth(),
            NOW - Duration::minutes(6)
        ),
        Err(webpki::Error::CertNotValidYet { .. })
    ));
}

#[test]
fn server_certificate_names() {
    let ca = site_ca(6);
    let mut rng = SeededRandom::new(7);
    let hosts = vec![
        String::new(),
        "  ".to_string(),
        "router.example.com".to_string(),
        "192.168.1.2".to_string(),
        "[fd00::2]".to_string(),
        "router.example.com".to_string(),
        "*.apps.example.com".to_string(),
    ];
    let server = ca
        .issue_server(&hosts, &mut rng, NOW, DEFAULT_VALIDITY)
        .unwrap();
    let info = certificate_info(&server.cert_der).unwrap();
    assert_eq!(
        info.common_name.as_deref(),
        Some("router.example.com"),
        "first non-empty host"
    );
    assert_eq!(
        info.dns_names,
        vec!["router.example.com", "*.apps.example.com"]
    );
    assert_eq!(info.ip_addresses, vec!["192.168.1.2", "fd00::2"]);
    let cert = parse(&server.cert_der);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);

    let none = ca
        .issue_server(&[], &mut rng, NOW, DEFAULT_VALIDITY)
        .unwrap();
    let info = certificate_info(&none.cert_der).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("skupper-router"));
    assert!(info.dns_names.is_empty() && info.ip_addresses.is_empty());

    for bad in ["host:8080", "https://router", "bad host", "rüter.example"] {
        let err = ca
            .issue_server(&[bad.to_string()], &mut rng, NOW, DEFAULT_VALIDITY)
            .unwrap_err();
        assert!(
            matches!(&err, PkiError::InvalidHost { host, .. } if host == bad),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains(bad), "{err}");
    }
}

#[test]
fn same_seed_gives_byte_identical_certificates() {
    let run = |seed: u64| {
        let mut rng = SeededRandom::new(seed);
        let ca = CaIssuer::new_site_ca(&mut rng, NOW, DEFAULT_VALIDITY).unwrap();
        let client = ca
            .issue_client("east", &mut rng, NOW, DEFAULT_VALIDITY)
            .unwrap();
        let server = ca
            .issue_server(
                &["router.east".to_string()],
                &mut rng,
                NOW,
                DEFAULT_VALIDITY,
            )
            .unwrap();
        (ca.certified_key().clone(), client, server)
    };
    let a = run(42);
    let b = run(42);
    assert_eq!(a, b);
    assert_eq!(a.0.cert_der, b.0.cert_der);
    assert_eq!(a.1.key.to_pem(), b.1.key.to_pem());
    let c = run(43);
    assert_ne!(a.0.cert_der, c.0.cert_der);
    assert_ne!(a.1.key, c.1.key);
    assert_ne!(a.1.cert_der, c.1.cert_der);

    // Two leaves from one generator differ in key and serial.
    let ca = site_ca(8);
    let mut rng = SeededRandom::new(9);
    let x = ca
        .issue_client("s", &mut rng, NOW, DEFAULT_VALIDITY)
        .unwrap();
    let y = ca
        .issue_client("s", &mut rng, NOW, DEFAULT_VALIDITY)
        .unwrap();
    assert_ne!(x.key, y.key);
    let (ix, iy) = (
        certificate_info(&x.cert_der).unwrap(),
        certificate_info(&y.cert_der).unwrap(),
    );
    assert_ne!(ix.serial_hex, iy.serial_hex);
}

#[test]
fn private_key_pem_round_trip_and_standard_encoding() {
    let ca = site_ca(10);
    let leaf = ca
        .issue_client("east", &mut SeededRandom::new(11), NOW, DEFAULT_VALIDITY)
        .unwrap();
    let pem = leaf.key.to_pem();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
    assert!(pem.lines().all(|l| l.len() <= 64));
    let back = PrivateKey::from_pem(&pem).unwrap();
    assert_eq!(back, leaf.key);
    assert_eq!(back.pkcs8_der(), leaf.key.pkcs8_der());

    // The hand-built PKCS#8 is exactly what the p256 crate writes (with the
    // public key included).
    use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
    let sk = p256::SecretKey::from_pkcs8_der(leaf.key.pkcs8_der()).unwrap();
    assert_eq!(sk.to_pkcs8_der().unwrap().as_bytes(), leaf.key.pkcs8_der());
    // ... and SEC1 `EC PRIVATE KEY` reads as the same key.
    let sec1 = sk.to_sec1_pem(p256::pkcs8::LineEnding::LF).unwrap();
    assert_eq!(PrivateKey::from_pem(&sec1).unwrap(), leaf.key);
    // The key matches the certificate's public key.
    let cert = parse(&leaf.cert_der);
    let point = sk.public_key().to_sec1_bytes();
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        &point[..]
    );

    // The same key reloaded through CertifiedKey::from_pem.
    let reloaded = CertifiedKey::from_pem(&leaf.cert_pem, &pem).unwrap();
    assert_eq!(reloaded, leaf);
}

#[test]
fn debug_never_shows_key_material() {
    let ca = site_ca(12);
    let leaf = ca
        .issue_client("east", &mut SeededRandom::new(13), NOW, DEFAULT_VALIDITY)
        .unwrap();
    assert_eq!(format!("{:?}", leaf.key), "PrivateKey(ECDSA P-256)");
    let key_body: String = leaf
        .key
        .to_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let scalar_hex: String = leaf.key.pkcs8_der()[36..68]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for shown in [
        format!("{leaf:?}"),
        format!("{leaf:#?}"),
        format!("{ca:?}"),
        format!("{:?}", ca.certified_key()),
    ] {
        assert!(!shown.contains(&key_body[..40]), "{shown}");
        assert!(!shown.contains(&scalar_hex), "{shown}");
        assert!(
            !shown.contains(&format!("{:?}", &leaf.key.pkcs8_der()[36..44])),
            "{shown}"
        );
    }
    assert!(format!("{leaf:?}").contains("PrivateKey(ECDSA P-256)"));
}

#[test]
fn ca_reloaded_from_store_issues_like_the_original() {
    let mut rng = SeededRandom::new(14);
    let ca = CaIssuer::new_site_ca(&mut rng, NOW, DEFAULT_VALIDITY).unwrap();
    // As a store would: PEM text of certificate and key.
    let stored = ca.certified_key();
    let loaded = CertifiedKey::from_pem(&stored.cert_pem, &stored.key.to_pem()).unwrap();
    let reloaded = CaIssuer::from_certified_key(&loaded).unwrap();
    assert_eq!(reloaded.certified_key(), stored);

    let a = ca
        .issue_client("east", &mut SeededRandom::new(15), NOW, DEFAULT_VALIDITY)
        .unwrap();
    let b = reloaded
        .issue_client("east", &mut SeededRandom::new(15), NOW, DEFAULT_VALIDITY)
        .unwrap();
    assert_eq!(a, b, "same CA, same seed: identical leaf");
    let c = ca
        .clone()
        .issue_client("east", &mut SeededRandom::new(15), NOW, DEFAULT_VALIDITY)
        .unwrap();
    assert_eq!(a, c, "a clone issues identically");
    webpki_verify(&reloaded, &b, webpki::KeyUsage::client_auth(), NOW).unwrap();
}

#[test]
fn loading_rejects_wrong_keys_and_non_cas() {
    let ca = site_ca(16);
    let other = site_ca(17);
    let leaf = ca
        .issue_client("east", &mut SeededRandom::new(18), NOW, DEFAULT_VALIDITY)
        .unwrap();

    // CA certificate with another CA's key.
    let mixed = CertifiedKey {
        key: other.certified_key().key.clone(),
        ..ca.certified_key().clone()
    };
    assert!(matches!(
        CaIssuer::from_certified_key(&mixed),
        Err(PkiError::KeyMismatch { subject }) if subject == "CN=skupper-site-ca"
    ));
    assert!(matches!(
        CertifiedKey::from_pem(
            &ca.certified_key().cert_pem,
            &other.certified_key().key.to_pem()
        ),
        Err(PkiError::KeyMismatch { .. })
    ));
    // A leaf is not a CA.
    let err = CaIssuer::from_certified_key(&leaf).unwrap_err();
    assert!(
        matches!(&err, PkiError::NotACa { subject, .. } if subject == "CN=east"),
        "{err}"
    );
    assert!(err.to_string().contains("CA:TRUE"), "{err}");

    // Garbage.
    assert!(matches!(
        pem_to_der("hello"),
        Err(PkiError::Pem {
            label: "CERTIFICATE",
            ..
        })
    ));
    assert!(matches!(
        pem_to_der("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
        Err(PkiError::Pem { .. })
    ));
    let only_key = ca.certified_key().key.to_pem();
    let err = pem_to_der(&only_key).unwrap_err();
    assert!(err.to_string().contains("found only PRIVATE KEY"), "{err}");
    assert!(
        !err.to_string().contains(&only_key[30..60]),
        "error must not echo key text"
    );
    assert!(matches!(
        PrivateKey::from_pem("nope"),
        Err(PkiError::Pem { .. })
    ));
    assert!(matches!(
        PrivateKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        Err(PkiError::Key { .. })
    ));
    assert!(matches!(
        PrivateKey::from_pem(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
        ),
        Err(PkiError::Key { .. })
    ));
    assert!(matches!(
        CertifiedKey::from_der(b"not a cert".to_vec(), leaf.key.clone()),
        Err(PkiError::Certificate { .. })
    ));
    // PEM with text around it and other blocks first is fine.
    let noisy = format!("subject=CN=east\n{}\n{}", only_key, leaf.cert_pem);
    assert_eq!(pem_to_der(&noisy).unwrap(), leaf.cert_der);
}

#[test]
fn issuing_rejects_bad_arguments() {
    let ca = site_ca(19);
    let mut rng = SeededRandom::new(20);
    assert_eq!(
        ca.issue_client("", &mut rng, NOW, DEFAULT_VALIDITY)
            .unwrap_err(),
        PkiError::EmptyCommonName
    );
    for v in [Duration::ZERO, Duration::seconds(-5)] {
        assert_eq!(
            ca.issue_client("east", &mut rng, NOW, v).unwrap_err(),
            PkiError::InvalidValidity { validity: v }
        );
        assert!(matches!(
            CaIssuer::new_site_ca(&mut rng, NOW, v),
            Err(PkiError::InvalidValidity { .. })
        ));
    }
    let err = ca
        .issue_client("east", &mut rng, NOW, Duration::days(365 * 8000))
        .unwrap_err();
    assert!(matches!(err, PkiError::ValidityOutOfRange { .. }), "{err}");
    assert!(err.to_string().contains("9999"), "{err}");
    // Validity past 2049 switches to GeneralizedTime; still fine.
    let long = ca
        .issue_client("east", &mut rng, NOW, Duration::days(365 * 50))
        .unwrap();
    assert_eq!(
        certificate_info(&long.cert_der).unwrap().not_after,
        datetime!(2026-03-01 12:00:00 UTC) + Duration::days(365 * 50)
    );
}

/// A generator that always returns the same byte.
struct Stuck(u8);
impl Random for Stuck {
    fn fill(&mut self, dest: &mut [u8]) {
        dest.fill(self.0);
    }
}

#[test]
fn broken_random_generator_is_reported_not_looped_on() {
    // All-zero scalar and all-0xFF (>= group order) are invalid keys.
    for b in [0x00, 0xff] {
        let err = CaIssuer::new_site_ca(&mut Stuck(b), NOW, DEFAULT_VALIDITY).unwrap_err();
        assert!(
            matches!(
                err,
                PkiError::BadRandom {
                    what: "private key",
                    ..
                }
            ),
            "{err}"
        );
    }
    // A generator giving a valid scalar but only zero serials otherwise is
    // impossible with `Stuck`; a 0x80 stream gives serial 0x00 0x80.. which
    // is fine (top bit cleared, non-zero).
    let ca = CaIssuer::new_site_ca(&mut Stuck(0x80), NOW, DEFAULT_VALIDITY).unwrap();
    let info = certificate_info(&ca.certified_key().cert_der).unwrap();
    assert_eq!(
        info.serial_hex,
        "80".repeat(15),
        "top bit cleared, leading zero byte dropped"
    );
}
