//! A claim redemption costs one durable store write: the claim record, with
//! the use spent and the certificate recorded together. The certificate is
//! handed out only after that write; a refused attempt makes no key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use skupper_token::claim::{RedeemError, RedeemRequest};
use skupper_token::harness::Network;
use skupper_token::pki::{certificate_info, pem_to_der, AuthError};
use skupper_token::random::{Random, SeededRandom};
use skupper_token::records::{IssuedVia, CLAIM_ISSUED_KEPT};
use skupper_token::site::{PeerHello, Site, SiteConfig, TokenOptions};
use skupper_token::store::{
    Cas, Key, MemoryStore, Record, RecordKind, Store, StoreError, Version, Versioned,
};
use skupper_token::token::ClaimToken;
use skupper_token::version::VERSION;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

/// A [`MemoryStore`] that counts the writes made through it (every
/// compare-and-swap that changed something, and every delete) and the
/// loads of claim records, and can be told to fail the next writes.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    writes: AtomicUsize,
    claim_loads: AtomicUsize,
    fail_writes: AtomicUsize,
}

impl Counting {
    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    fn claim_loads(&self) -> usize {
        self.claim_loads.load(Ordering::SeqCst)
    }
}

impl Store for Counting {
    fn load(&self, key: &Key) -> Result<Option<Versioned<Record>>, StoreError> {
        if key.kind == RecordKind::Claim {
            self.claim_loads.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.load(key)
    }
    fn list(&self, kind: RecordKind) -> Result<Vec<(String, Versioned<Record>)>, StoreError> {
        self.inner.list(kind)
    }
    fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Version>,
        new: Option<Record>,
    ) -> Result<Cas, StoreError> {
        if self
            .fail_writes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable {
                reason: format!("disk full writing {key}"),
            });
        }
        let done = self.inner.compare_and_swap(key, expected, new)?;
        if let Cas::Done(_) = done {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        Ok(done)
    }
    fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(key)
    }
    fn names(&self, kind: RecordKind) -> Result<Vec<String>, StoreError> {
        self.inner.names(kind)
    }
}

/// A [`Random`] that counts how many bytes were drawn from it.
struct CountingRandom {
    inner: SeededRandom,
    drawn: usize,
}

impl Random for CountingRandom {
    fn fill(&mut self, dest: &mut [u8]) {
        self.drawn += dest.len();
        self.inner.fill(dest);
    }
}

fn west(uses: u32) -> (Site<Arc<Counting>>, Arc<Counting>, ClaimToken, SeededRandom) {
    let mut rng = SeededRandom::new(41);
    let store = Arc::new(Counting::default());
    let site =
        Site::create(store.clone(), &SiteConfig::new("west"), NOW, &mut rng).expect("create site");
    let token = site
        .create_claim_token(&TokenOptions::claim().uses(uses), NOW, &mut rng)
        .expect("claim token");
    (site, store, token, rng)
}

fn request(token: &ClaimToken, site_id: &str) -> RedeemRequest {
    RedeemRequest {
        claim: token.name.clone(),
        password: token.password.expose().as_bytes().to_vec(),
        site_id: site_id.to_owned(),
        site_version: VERSION.to_owned(),
    }
}

fn site_id(i: usize) -> String {
    format!("0b5c8f2e-7c8e-4a43-9b1a-{i:012}")
}

#[test]
fn each_redemption_writes_the_store_exactly_once() {
    let (site, store, token, mut rng) = west(3);
    for i in 0..3 {
        let before = store.writes();
        site.redeem_claim(&request(&token, &site_id(i)), NOW, &mut rng)
            .expect("redeems");
        assert_eq!(store.writes() - before, 1, "redemption {i}");
    }
    // The one write holds both: the use spent and the certificate issued.
    let claim = &site.claims().expect("claims")[0];
    assert_eq!((claim.uses_remaining, claim.claims_made), (Some(0), 3));
    assert_eq!(claim.issued.len(), 3);
    let issued = site.issued().expect("issued");
    assert_eq!(issued.len(), 3);
    for cert in &issued {
        assert_eq!(
            cert.via,
            IssuedVia::Claim {
                name: token.name.clone()
            }
        );
    }
    assert_eq!(
        store.inner.names(RecordKind::Issued).expect("names"),
        Vec::<String>::new(),
        "no separate issued record"
    );
}

#[test]
fn a_redemption_with_no_other_at_its_claim_reads_the_claim_once() {
    let (site, store, token, mut rng) = west(3);
    for i in 0..3 {
        let before = store.claim_loads();
        site.redeem_claim(&request(&token, &site_id(i)), NOW, &mut rng)
            .expect("redeems");
        // Read once to check it and make the certificate, then written
        // with a compare-and-swap against that version: not read again.
        assert_eq!(store.claim_loads() - before, 1, "redemption {i}");
    }
}

#[test]
fn a_refused_attempt_makes_no_key_and_an_accepted_one_is_recorded_with_its_use() {
    let (site, store, token, _) = west(1);
    let mut rng = CountingRandom {
        inner: SeededRandom::new(5),
        drawn: 0,
    };
    let mut wrong = request(&token, &site_id(1));
    wrong.password = b"not the password".to_vec();
    let err = site.redeem_claim(&wrong, NOW, &mut rng).unwrap_err();
    assert_eq!(
        err,
        RedeemError::WrongPassword {
            claim: token.name.clone()
        }
    );
    assert_eq!(rng.drawn, 0, "no key was made for a wrong password");

    // The store fails the one write: no certificate comes back, nothing
    // was spent and nothing recorded.
    store.fail_writes.store(1, Ordering::SeqCst);
    let err = site
        .redeem_claim(&request(&token, &site_id(1)), NOW, &mut rng)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "claim {:?} could not be redeemed: store unavailable: disk full writing claim {:?}",
            token.name, token.name
        )
    );
    // An unavailable store is 503: the redeemer may try again.
    assert_eq!(err.http_status(), 503);
    let claim = &site.claims().expect("claims")[0];
    assert_eq!((claim.uses_remaining, claim.claims_made), (Some(1), 0));
    assert!(site.issued().expect("issued").is_empty());

    let cert = site
        .redeem_claim(&request(&token, &site_id(1)), NOW, &mut rng)
        .expect("redeems once the store works");
    let serial = certificate_info(&pem_to_der(&cert.cert_pem).unwrap())
        .unwrap()
        .serial_hex;
    let issued = site.issued().expect("issued");
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].serial, serial);
    assert_eq!(issued[0].common_name, site_id(1));

    let drawn = rng.drawn;
    let err = site
        .redeem_claim(&request(&token, &site_id(2)), NOW, &mut rng)
        .unwrap_err();
    assert_eq!(
        err,
        RedeemError::UsedUp {
            claim: token.name.clone(),
            allowed: 1
        }
    );
    assert_eq!(rng.drawn, drawn, "no key was made for a used-up claim");
}

#[test]
fn a_claim_of_many_uses_moves_its_certificates_out_every_so_many_redemptions() {
    let redemptions = 2 * CLAIM_ISSUED_KEPT + 6;
    let (site, store, token, mut rng) = west(0);
    let mut serials = Vec::new();
    let before = store.writes();
    for i in 0..redemptions {
        let cert = site
            .redeem_claim(&request(&token, &site_id(i)), NOW, &mut rng)
            .expect("redeems");
        serials.push(
            certificate_info(&pem_to_der(&cert.cert_pem).unwrap())
                .unwrap()
                .serial_hex,
        );
    }
    // One write each, and one more each time the claim record was full.
    assert_eq!(store.writes() - before, redemptions + 2);
    let claim = &site.claims().expect("claims")[0];
    assert_eq!(claim.issued.len(), 6, "the claim record stays small");
    assert_eq!(claim.claims_made as usize, redemptions);
    let mut batches = vec![serials[0].clone(), serials[CLAIM_ISSUED_KEPT].clone()];
    batches.sort();
    assert_eq!(
        store.inner.names(RecordKind::ClaimIssued).expect("names"),
        batches,
        "two batches, named after their first certificates"
    );
    let mut expected = serials.clone();
    expected.sort();
    let listed: Vec<String> = site
        .issued()
        .expect("issued")
        .into_iter()
        .map(|r| r.serial)
        .collect();
    assert_eq!(listed, expected);

    // Revoking access forgets every one of them.
    let revoked = site.revoke_access(NOW, &mut rng).expect("revoke access");
    assert_eq!(revoked.certificates_forgotten, redemptions);
    assert!(site.issued().expect("issued").is_empty());
    assert!(store
        .inner
        .names(RecordKind::ClaimIssued)
        .expect("names")
        .is_empty());
}

#[test]
fn a_moved_out_claim_certificate_still_links_only_its_own_site() {
    let net = Network::new(3);
    net.add_site("west").unwrap();
    let west = net.site("west").unwrap();
    let skupper_token::token::Token::Claim(token) = net
        .create_token("west", &TokenOptions::claim().uses(0))
        .unwrap()
    else {
        panic!("a claim token")
    };
    let mut first = None;
    for i in 0..=CLAIM_ISSUED_KEPT {
        let cert = net
            .with_rng(|rng| west.redeem_claim(&request(&token, &site_id(i)), net.now(), rng))
            .expect("redeems");
        first.get_or_insert(cert);
    }
    let first = first.expect("one redemption");
    let der = pem_to_der(&first.cert_pem).unwrap();
    let hello = |id: String| PeerHello {
        site_id: id,
        site_name: "someone".into(),
        link: "link1".into(),
    };
    let err = west
        .accept_incoming(&[&der], &hello(site_id(99)), net.now())
        .unwrap_err();
    assert_eq!(
        err,
        AuthError::WrongSite {
            claim: token.name.clone(),
            common_name: site_id(0),
            claimed_site_id: site_id(99),
        }
    );
    west.accept_incoming(&[&der], &hello(site_id(0)), net.now())
        .expect("the site that redeemed it links");
}
