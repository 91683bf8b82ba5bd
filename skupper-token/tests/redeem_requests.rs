//! What a redeeming site sends, checked before a use is spent: its site id
//! (the `skupper-site-name` header) must be able to name a certificate,
//! and the claim name must be one a claim can have. The cert token that
//! comes back is named after the requesting site, as in Skupper.

use skupper_token::claim::{RedeemError, RedeemRequest};
use skupper_token::pki::{certificate_info, pem_to_der};
use skupper_token::random::SeededRandom;
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::site_id::{SiteIdError, MAX_LEN};
use skupper_token::store::MemoryStore;
use skupper_token::token::ClaimToken;
use skupper_token::version::VERSION;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

fn west_with_claim(uses: u32) -> (Site<MemoryStore>, ClaimToken, SeededRandom) {
    let mut rng = SeededRandom::new(12);
    let site = Site::create(MemoryStore::new(), &SiteConfig::new("west"), NOW, &mut rng)
        .expect("create site");
    let token = site
        .create_claim_token(&TokenOptions::claim().uses(uses), NOW, &mut rng)
        .expect("claim token");
    (site, token, rng)
}

fn request(token: &ClaimToken, site_id: &str) -> RedeemRequest {
    RedeemRequest {
        claim: token.name.clone(),
        password: token.password.expose().as_bytes().to_vec(),
        site_id: site_id.to_owned(),
        site_version: VERSION.to_owned(),
    }
}

fn uses_left(site: &Site<MemoryStore>) -> (Option<u32>, u32) {
    let claims = site.claims().expect("claims");
    (claims[0].uses_remaining, claims[0].claims_made)
}

#[test]
fn a_site_id_no_certificate_can_carry_is_400_and_spends_nothing() {
    let (site, token, mut rng) = west_with_claim(1);
    let long = "a".repeat(10_000);
    let err = site
        .redeem_claim(&request(&token, &long), NOW, &mut rng)
        .unwrap_err();
    assert_eq!(
        err,
        RedeemError::InvalidSiteName {
            claim: token.name.clone(),
            source: SiteIdError::TooLong { len: 10_000 },
        }
    );
    assert_eq!(err.http_status(), 400);
    assert_eq!(
        err.http_body(),
        "Request not valid: the skupper-site-name header is not a usable site id: the site id is 10000 characters long; a site id is at most 64 (the longest common name a certificate may have)\n"
    );

    let err = site
        .redeem_claim(&request(&token, "east\r\nX-Forged: 1"), NOW, &mut rng)
        .unwrap_err();
    assert_eq!(
        err,
        RedeemError::InvalidSiteName {
            claim: token.name.clone(),
            source: SiteIdError::BadCharacter {
                character: '\r',
                position: 5
            },
        }
    );
    assert_eq!(err.http_status(), 400);
    assert_eq!(uses_left(&site), (Some(1), 0), "no use was spent");
    assert!(site.issued().expect("issued").is_empty(), "nothing issued");

    // The longest id that is allowed gets its certificate.
    let longest = "b".repeat(MAX_LEN);
    let cert = site
        .redeem_claim(&request(&token, &longest), NOW, &mut rng)
        .expect("64 characters are allowed");
    let info = certificate_info(&pem_to_der(&cert.cert_pem).unwrap()).unwrap();
    assert_eq!(info.common_name.as_deref(), Some(longest.as_str()));
    assert_eq!(uses_left(&site), (Some(0), 1));
}

/// The site id is checked before the password, so a caller without the
/// password learns only that its own header is unusable.
#[test]
fn the_site_id_is_checked_before_anything_about_the_claim() {
    let (site, token, mut rng) = west_with_claim(1);
    let mut wrong = request(&token, "east\u{0}");
    wrong.password = b"not the password".to_vec();
    let err = site.redeem_claim(&wrong, NOW, &mut rng).unwrap_err();
    assert!(
        matches!(err, RedeemError::InvalidSiteName { .. }),
        "{err:?}"
    );
    assert!(
        !err.http_body().contains(&token.name),
        "{}",
        err.http_body()
    );
}

#[test]
fn a_claim_name_no_claim_can_have_is_no_such_claim() {
    let (site, token, mut rng) = west_with_claim(1);
    for name in ["..", ".", "", "UPPER", "a/b", &"c".repeat(300)] {
        let mut r = request(&token, "east");
        r.claim = name.to_owned();
        let err = site.redeem_claim(&r, NOW, &mut rng).unwrap_err();
        assert_eq!(
            err,
            RedeemError::NoSuchClaim {
                claim: name.to_owned()
            },
            "{name:?}"
        );
        assert_eq!(
            (err.http_status(), err.http_body()),
            (404, "No such claim\n".to_owned())
        );
    }
    assert_eq!(uses_left(&site), (Some(1), 0));
}

/// Skupper names the Secret it sends back after the subject (the
/// `skupper-site-name` header), not after the claim.
#[test]
fn the_cert_token_is_named_after_the_requesting_site() {
    let (site, token, mut rng) = west_with_claim(2);
    let east = "6d2b4a43-7a57-4b8e-9d0e-3f2a1c5b9e10";
    let cert = site
        .redeem_claim(&request(&token, east), NOW, &mut rng)
        .expect("redeemed");
    assert_eq!(cert.name, east);
    assert!(
        cert.encode().contains(&format!("\n  name: {east}\n")),
        "{}",
        cert.encode()
    );
    let info = certificate_info(&pem_to_der(&cert.cert_pem).unwrap()).unwrap();
    assert_eq!(info.common_name.as_deref(), Some(east));
}
