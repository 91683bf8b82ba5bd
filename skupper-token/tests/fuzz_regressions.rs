//! Inputs the fuzz targets (`fuzz/`) found, kept as regression tests.
//!
//! A test marked `#[ignore]` reproduces a finding that is not fixed yet: the
//! lead fixes the core and removes the `ignore`.

use skupper_token::pki::pem_to_der;
use skupper_token::random::SeededRandom;
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const START: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

/// (header length, content length) of the DER element at `at`.
fn tlv(der: &[u8], at: usize) -> (usize, usize) {
    let first = der[at + 1] as usize;
    if first < 0x80 {
        return (2, first);
    }
    let n = first & 0x7f;
    let len = der[at + 2..at + 2 + n]
        .iter()
        .fold(0usize, |acc, b| acc << 8 | *b as usize);
    (2 + n, len)
}

/// Offsets of the Certificate SEQUENCE tag, the outer signatureAlgorithm
/// tag, the signatureValue BIT STRING tag and its unused-bits octet: the
/// parts of a certificate its signature does not cover.
fn envelope(der: &[u8]) -> [usize; 4] {
    let (outer_header, _) = tlv(der, 0);
    let tbs = outer_header;
    let (h, l) = tlv(der, tbs);
    let algorithm = tbs + h + l;
    let (h, l) = tlv(der, algorithm);
    let signature = algorithm + h + l;
    let (h, _) = tlv(der, signature);
    [0, algorithm, signature, signature + h]
}

/// Found by `authenticate_peer` (crash-e12035c7…, 2026-11-28): a client
/// certificate the site issued, re-encoded outside the signed part (a tag
/// with another class, or a nonzero unused-bits count in the signature BIT
/// STRING), is still accepted. rustls-webpki refuses every variant
/// (`TrailingData(BitString)`, `BadDer`). The signed TBSCertificate is
/// unchanged, so nothing is forged, but one certificate gets any number of
/// accepted encodings, each with its own `fingerprint_sha256`, and the
/// verifier accepts what is not DER.
#[test]
fn peer_certificates_must_be_der_outside_the_signed_part() {
    let mut rng = SeededRandom::new(0x5eed);
    let site = Site::create(
        MemoryStore::new(),
        &SiteConfig::new("west"),
        START,
        &mut rng,
    )
    .expect("site");
    let token = site
        .create_cert_token(&TokenOptions::cert().name("east"), START, &mut rng)
        .expect("cert token");
    let leaf = pem_to_der(&token.cert_pem).expect("PEM");
    let now = START + Duration::days(1);
    site.authenticate_peer(&[&leaf], now)
        .expect("the certificate as issued is accepted");

    let [outer, algorithm, signature, unused_bits] = envelope(&leaf);
    assert_eq!(
        [
            leaf[outer],
            leaf[algorithm],
            leaf[signature],
            leaf[unused_bits]
        ],
        [0x30, 0x30, 0x03, 0x00]
    );
    let mut accepted = Vec::new();
    for (what, at, value) in [
        // The fuzzer's input: BIT STRING 03 -> [APPLICATION 3] 43.
        ("signatureValue tag [APPLICATION 3]", signature, 0x43),
        ("signatureValue tag [3]", signature, 0x83),
        ("signatureValue tag [PRIVATE 3]", signature, 0xc3),
        ("signatureValue unused bits 1", unused_bits, 0x01),
        ("Certificate tag [APPLICATION 16]", outer, 0x70),
        ("Certificate tag [16] constructed", outer, 0xb0),
        ("signatureAlgorithm tag [APPLICATION 16]", algorithm, 0x70),
        ("signatureAlgorithm tag SEQUENCE primitive", algorithm, 0x10),
    ] {
        let mut variant = leaf.clone();
        variant[at] = value;
        if let Ok(peer) = site.authenticate_peer(&[&variant], now) {
            accepted.push(format!("{what} (fingerprint {})", peer.fingerprint_sha256));
        }
    }
    assert!(
        accepted.is_empty(),
        "non-DER re-encodings of an issued certificate authenticate:\n{}",
        accepted.join("\n")
    );
}

/// Found by `authenticate_peer` after the envelope fix (crash-81650648…,
/// 2026-11-28): the OID inside the outer signatureAlgorithm re-tagged
/// `[APPLICATION 27]` (0x5b instead of 0x06) is still accepted; webpki says
/// `SignatureAlgorithmMismatch`. The outer signatureAlgorithm is compared
/// with the signed one in the TBSCertificate after parsing, which ignores
/// the tag. RFC 5280 4.1.1.2 says the two "MUST" be the same algorithm
/// identifier: comparing their raw bytes closes this (and any other
/// re-encoding of that unsigned field) at once.
#[test]
fn outer_signature_algorithm_must_be_the_signed_one_byte_for_byte() {
    let mut rng = SeededRandom::new(0x5eed);
    let site = Site::create(
        MemoryStore::new(),
        &SiteConfig::new("west"),
        START,
        &mut rng,
    )
    .expect("site");
    let token = site
        .create_cert_token(&TokenOptions::cert().name("east"), START, &mut rng)
        .expect("cert token");
    let leaf = pem_to_der(&token.cert_pem).expect("PEM");
    let now = START + Duration::days(1);
    site.authenticate_peer(&[&leaf], now)
        .expect("the certificate as issued is accepted");

    let [_, algorithm, _, _] = envelope(&leaf);
    // AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, ... }
    let oid = algorithm + 2;
    assert_eq!(leaf[oid], 0x06);
    let mut accepted = Vec::new();
    for tag in [0x5bu8, 0x46, 0x86, 0xc6, 0x26] {
        let mut variant = leaf.clone();
        variant[oid] = tag;
        if let Ok(peer) = site.authenticate_peer(&[&variant], now) {
            accepted.push(format!(
                "OID tag {tag:#04x} (fingerprint {})",
                peer.fingerprint_sha256
            ));
        }
    }
    assert!(
        accepted.is_empty(),
        "re-encodings of the outer signatureAlgorithm authenticate:\n{}",
        accepted.join("\n")
    );
}

/// `claim_request`, crash-e6e8900b: a claim redeemed with a
/// `skupper-site-name` holding `?` panicked while the certificate was
/// written (rcgen took `?` as a PrintableString character, as X.680 allows,
/// and its DER writer refused it), after the claim's use was spent. Such a
/// name is now written as a UTF8String; every printable ASCII character is
/// tried.
#[test]
fn site_ids_with_any_printable_character_get_a_certificate() {
    use skupper_token::claim::RedeemRequest;
    use skupper_token::pki::certificate_info;
    use skupper_token::version::VERSION;

    let mut rng = SeededRandom::new(0xe6e8);
    let site = Site::create(
        MemoryStore::new(),
        &SiteConfig::new("west"),
        START,
        &mut rng,
    )
    .expect("site");
    let ids: Vec<String> = std::iter::once("exam?p".to_owned())
        .chain((0x21u8..0x7f).map(|b| format!("site-{}", b as char)))
        .collect();
    let claim = site
        .create_claim_token(
            &TokenOptions::claim().uses(ids.len() as u32),
            START,
            &mut rng,
        )
        .expect("claim");
    for id in &ids {
        let token = site
            .redeem_claim(
                &RedeemRequest {
                    claim: claim.name.clone(),
                    password: claim.password.expose().as_bytes().to_vec(),
                    site_id: id.clone(),
                    site_version: VERSION.into(),
                },
                START,
                &mut rng,
            )
            .unwrap_or_else(|e| panic!("{id:?}: {e}"));
        let der = pem_to_der(&token.cert_pem).expect("PEM");
        let info = certificate_info(&der).expect("certificate");
        assert_eq!(info.common_name.as_deref(), Some(id.as_str()));
        site.authenticate_peer(&[&der], START + Duration::minutes(1))
            .unwrap_or_else(|e| panic!("{id:?}: {e}"));
    }
}
