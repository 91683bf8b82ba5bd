//! The `authenticate_peer` target: arbitrary DER chains against one fixed
//! site, cross-checked with rustls-webpki.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use rustls_pki_types::{CertificateDer, UnixTime};
use skupper_token::claim::RedeemRequest;
use skupper_token::pki::{certificate_info, pem_to_der, AuthError, PeerCertificate};
use skupper_token::random::SeededRandom;
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::version::VERSION;
use time::{Duration, OffsetDateTime};

use crate::START;

/// The fixed site and what was issued from it, made once per process.
pub struct AuthFixture {
    /// The site chains are checked against (`west`).
    pub site: Site<MemoryStore>,
    /// The time every check is made at (a day after the site was made).
    pub now: OffsetDateTime,
    /// The site CA, DER.
    pub ca_der: Vec<u8>,
    /// Client certificates the site issued and did not revoke, DER: a cert
    /// token's, a redeemed claim's, and the server certificate (which allows
    /// clientAuth too).
    pub accepted: Vec<Vec<u8>>,
    /// A cert token's certificate that `revoke_peer` revoked, DER.
    pub revoked: Vec<u8>,
    /// Serials (uppercase hex) that must never authenticate.
    pub revoked_serials: BTreeSet<String>,
    /// A client certificate from another site's CA, DER.
    pub foreign: Vec<u8>,
    /// That other site's CA, DER.
    pub foreign_ca_der: Vec<u8>,
}

fn der(pem: &str) -> Vec<u8> {
    pem_to_der(pem).expect("the library writes PEM it can read")
}

/// Builds the fixture (deterministic: the same bytes on every run).
pub fn build_fixture() -> AuthFixture {
    let mut rng = SeededRandom::new(0x5eed);
    let site = Site::create(
        MemoryStore::new(),
        &SiteConfig::new("west"),
        START,
        &mut rng,
    )
    .expect("site");
    let now = START + Duration::days(1);
    let ca_der = der(&site
        .record()
        .expect("record")
        .ca
        .expect("interior")
        .cert_pem);

    let good = site
        .create_cert_token(&TokenOptions::cert().name("good"), START, &mut rng)
        .expect("cert token");
    let claim = site
        .create_claim_token(&TokenOptions::claim().uses(1), START, &mut rng)
        .expect("claim token");
    let redeemed = site
        .redeem_claim(
            &RedeemRequest {
                claim: claim.name.clone(),
                password: claim.password.expose().as_bytes().to_vec(),
                site_id: "6d2b4a43-7a57-4b8e-9d0e-3f2a1c5b9e10".into(),
                site_version: VERSION.into(),
            },
            START,
            &mut rng,
        )
        .expect("redeem");
    let (_, server) = site
        .server_credentials()
        .expect("credentials")
        .expect("interior");
    let gone = site
        .create_cert_token(&TokenOptions::cert().name("gone"), START, &mut rng)
        .expect("cert token");
    let revoked = site.revoke_peer("gone", START).expect("revoke gone");
    let revoked_serials: BTreeSet<String> =
        revoked.revoked.iter().map(|r| r.serial.clone()).collect();
    let gone_der = der(&gone.cert_pem);
    assert!(revoked_serials.contains(&certificate_info(&gone_der).expect("info").serial_hex));

    let mut other_rng = SeededRandom::new(0xe57);
    let east = Site::create(
        MemoryStore::new(),
        &SiteConfig::new("east"),
        START,
        &mut other_rng,
    )
    .expect("east");
    let foreign = east
        .create_cert_token(&TokenOptions::cert().name("good"), START, &mut other_rng)
        .expect("foreign cert token");
    let foreign_ca_der = der(&east
        .record()
        .expect("record")
        .ca
        .expect("interior")
        .cert_pem);

    AuthFixture {
        site,
        now,
        ca_der,
        accepted: vec![
            der(&good.cert_pem),
            der(&redeemed.cert_pem),
            server.cert_der,
        ],
        revoked: gone_der,
        revoked_serials,
        foreign: der(&foreign.cert_pem),
        foreign_ca_der,
    }
}

/// The fixture, made on first use.
pub fn fixture() -> &'static AuthFixture {
    static FIXTURE: OnceLock<AuthFixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

/// Splits a fuzz input into 1 to 3 DER chunks: the first byte picks the
/// count (`1 + b % 3`); for each chunk but the last, two bytes (big endian)
/// give its length (clamped to what is left); the last chunk is the rest.
pub fn split_chain(data: &[u8]) -> Vec<&[u8]> {
    let Some((&first, mut rest)) = data.split_first() else {
        return vec![&[]];
    };
    let count = 1 + usize::from(first % 3);
    let mut chunks = Vec::with_capacity(count);
    for _ in 1..count {
        let (len, after) = match rest {
            [hi, lo, after @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), after),
            _ => (0, &[][..]),
        };
        let len = len.min(after.len());
        chunks.push(&after[..len]);
        rest = &after[len..];
    }
    chunks.push(rest);
    chunks
}

/// The inverse of [`split_chain`], for writing seeds.
pub fn join_chain(chain: &[&[u8]]) -> Vec<u8> {
    assert!((1..=3).contains(&chain.len()));
    let mut out = vec![(chain.len() - 1) as u8];
    for (i, c) in chain.iter().enumerate() {
        if i + 1 < chain.len() {
            let len = u16::try_from(c.len()).expect("chunk under 64 KiB");
            out.extend_from_slice(&len.to_be_bytes());
        }
        out.extend_from_slice(c);
    }
    out
}

fn unix(t: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(t.unix_timestamp()).unwrap_or(0),
    ))
}

/// Whether rustls-webpki accepts `chain` (leaf first, the rest as
/// intermediates) for client authentication under the CA `ca_der` at `now`.
pub fn webpki_accepts(ca_der: &[u8], chain: &[&[u8]], now: OffsetDateTime) -> Result<(), String> {
    let ca = CertificateDer::from(ca_der);
    let anchor = webpki::anchor_from_trusted_cert(&ca).map_err(|e| format!("anchor: {e:?}"))?;
    let leaf_der = CertificateDer::from(*chain.first().ok_or("empty chain")?);
    let leaf =
        webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| format!("end entity: {e:?}"))?;
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(*c))
        .collect();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &intermediates,
        unix(now),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("{e:?}"))
}

/// Known findings: the core accepted certificates whose unsigned envelope
/// was not DER (tag classes and unused bits, then the OID inside the outer
/// signatureAlgorithm). Both are refused since the core's envelope check;
/// see `skupper-token/tests/fuzz_regressions.rs`. When this is `true`, a
/// chain the core accepts but webpki refuses is checked again in its
/// canonical form ([`canonical_envelope`]) instead of failing at once, to
/// keep fuzzing past a known lax spot. Keep it `false`.
pub const TOLERATE_LAX_ENVELOPE: bool = false;

/// (header length, content length) of the DER element at `at`.
fn tlv(der: &[u8], at: usize) -> Option<(usize, usize)> {
    let first = usize::from(*der.get(at + 1)?);
    if first < 0x80 {
        return Some((2, first));
    }
    let n = first & 0x7f;
    if n == 0 || n > 4 {
        return None;
    }
    let bytes = der.get(at + 2..at + 2 + n)?;
    let len = bytes
        .iter()
        .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
    Some((2 + n, len))
}

/// `der` with the envelope outside the signed part made canonical: tags 30
/// (Certificate), 03 (signatureValue) and unused bits 0, and the outer
/// signatureAlgorithm replaced by a copy of the signed one in the
/// TBSCertificate (RFC 5280 4.1.1.2: they must be identical). `None` if
/// `der` does not have the shape of a certificate.
pub fn canonical_envelope(der: &[u8]) -> Option<Vec<u8>> {
    let (outer_header, _) = tlv(der, 0)?;
    let tbs = outer_header;
    let (h, l) = tlv(der, tbs)?;
    let algorithm = tbs.checked_add(h)?.checked_add(l)?;
    let (h, l) = tlv(der, algorithm)?;
    let algorithm_end = algorithm.checked_add(h)?.checked_add(l)?;
    let signature = algorithm_end;
    let (h, _) = tlv(der, signature)?;
    let unused_bits = signature.checked_add(h)?;

    // TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber,
    // signature AlgorithmIdentifier, ... }
    let (tbs_header, _) = tlv(der, tbs)?;
    let mut at = tbs.checked_add(tbs_header)?;
    if *der.get(at)? == 0xa0 {
        let (h, l) = tlv(der, at)?;
        at = at.checked_add(h)?.checked_add(l)?;
    }
    let (h, l) = tlv(der, at)?; // serialNumber
    at = at.checked_add(h)?.checked_add(l)?;
    let (h, l) = tlv(der, at)?;
    let inner = der.get(at..at.checked_add(h)?.checked_add(l)?)?;

    let mut out = der.to_vec();
    let outer = out.get_mut(algorithm..algorithm_end)?;
    if outer.len() != inner.len() {
        return None;
    }
    outer.copy_from_slice(inner);
    for (at, value) in [(0, 0x30), (signature, 0x03), (unused_bits, 0)] {
        *out.get_mut(at)? = value;
    }
    Some(out)
}

/// One execution of the `authenticate_peer` target. Panics when the site
/// accepts a chain that webpki does not accept under the site CA (see
/// [`TOLERATE_LAX_ENVELOPE`]), or accepts a revoked certificate.
pub fn check_chain(data: &[u8]) {
    let fx = fixture();
    let chain = split_chain(data);
    let verdict: Result<PeerCertificate, AuthError> = fx.site.authenticate_peer(&chain, fx.now);
    let Ok(peer) = verdict else { return };
    if let Err(why) = webpki_accepts(&fx.ca_der, &chain, fx.now) {
        let canonical = canonical_envelope(chain[0]).filter(|c| c.as_slice() != chain[0]);
        let explained = match (&canonical, TOLERATE_LAX_ENVELOPE) {
            (Some(c), true) => {
                let mut strict = chain.clone();
                strict[0] = c;
                webpki_accepts(&fx.ca_der, &strict, fx.now).is_ok()
            }
            _ => false,
        };
        assert!(
            explained,
            "the site accepted a chain that rustls-webpki refuses ({why}): peer {peer:?}, chain lengths {:?}",
            chain.iter().map(|c| c.len()).collect::<Vec<_>>()
        );
    }
    assert!(
        !fx.revoked_serials.contains(&peer.serial_hex),
        "a revoked certificate authenticated: {peer:?}"
    );
    assert!(
        !peer.common_name.is_empty(),
        "accepted a certificate without a common name"
    );
    // A chain from the other site's CA can only be accepted if that CA
    // signed the same leaf bytes, which it did not.
    assert!(
        webpki_accepts(&fx.foreign_ca_der, &chain, fx.now).is_err(),
        "a chain verifies under two unrelated CAs"
    );
}
