//! Set-ups shared by the benchmarks in `benches/core.rs`: deterministic
//! sites on a [`MemoryStore`], and the RSA-2048 baseline (what Skupper does
//! for every certificate it issues).
//!
//! Everything here is deterministic: randomness comes from
//! [`SeededRandom`], time is the constant [`NOW`].

pub mod abuse;
pub mod report;
pub mod services;

use std::convert::Infallible;

use rsa::sha2::{Digest, Sha256};
use rsa::Pkcs1v15Sign;
use skupper_token::link::LinkState;
use skupper_token::pki::pem_to_der;
use skupper_token::random::{Random, SeededRandom};
use skupper_token::site::{LinkOptions, PeerHello, Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::token::Token;
use time::macros::datetime;
use time::OffsetDateTime;

/// The time every benchmark runs at.
pub const NOW: OffsetDateTime = datetime!(2027-06-01 12:00 UTC);

/// The real Skupper 1.5.2 claim token (RSA-2048 CA).
pub const SKUPPER_CLAIM_TOKEN: &str = include_str!("../data/skupper-1.5.2-claim-token.yaml");
/// An RSA-2048 CA made with openssl.
pub const RSA_CA_PEM: &str = include_str!("../data/rsa-ca.crt");
/// An RSA-2048 client certificate issued by [`RSA_CA_PEM`].
pub const RSA_LEAF_PEM: &str = include_str!("../data/rsa-leaf.crt");

/// A new interior site called `name` on its own [`MemoryStore`].
pub fn site(name: &str, rng: &mut SeededRandom) -> Site<MemoryStore> {
    Site::create(MemoryStore::new(), &SiteConfig::new(name), NOW, rng).expect("site")
}

/// The token files the decoding benchmarks read, by benchmark name: a
/// claim token and a cert token from a new site, and Skupper 1.5.2's own
/// RSA claim token. Each one decodes.
pub fn token_files() -> [(&'static str, String); 3] {
    let mut rng = SeededRandom::new(4);
    let west = site("west", &mut rng);
    let claim = west
        .create_claim_token(&TokenOptions::claim(), NOW, &mut rng)
        .expect("claim")
        .encode();
    let cert = west
        .create_cert_token(&TokenOptions::cert(), NOW, &mut rng)
        .expect("cert")
        .encode();
    let files = [
        ("claim_token", claim),
        ("cert_token", cert),
        ("skupper_1_5_2_rsa_claim", SKUPPER_CLAIM_TOKEN.to_owned()),
    ];
    for (name, file) in &files {
        if let Err(e) = Token::decode(file.as_bytes()) {
            panic!("{name} does not decode: {e}");
        }
    }
    files
}

/// A site with `claims` outstanding one-use claims.
pub fn site_with_claims(claims: usize, rng: &mut SeededRandom) -> Site<MemoryStore> {
    let site = site("west", rng);
    for _ in 0..claims {
        site.create_claim_token(&TokenOptions::claim(), NOW, rng)
            .expect("claim");
    }
    site
}

/// Makes `n` live incoming links on `site`, all authenticated with one
/// client certificate the site issued.
pub fn add_incoming(site: &Site<MemoryStore>, n: usize, rng: &mut SeededRandom) {
    let cert = site
        .create_cert_token(&TokenOptions::cert().name("peer"), NOW, rng)
        .expect("cert token");
    let der = pem_to_der(&cert.cert_pem).expect("PEM");
    for i in 0..n {
        let hello = PeerHello {
            site_id: format!("11111111-0000-4000-8000-{i:012}"),
            site_name: format!("site{i}"),
            link: "link1".into(),
        };
        site.accept_incoming(&[&der], &hello, NOW)
            .expect("accepted");
    }
}

/// A site with `n` connected outgoing links, each to a different remote
/// site (a site is its CA: two tokens under one CA go to one site, so each
/// link gets a cert token from a site of its own).
pub fn site_with_links(n: usize, rng: &mut SeededRandom) -> Site<MemoryStore> {
    let site = site("west", rng);
    for i in 0..n {
        let remote = self::site(&format!("east{i}"), rng);
        let token = Token::Cert(
            remote
                .create_cert_token(&TokenOptions::cert(), NOW, rng)
                .expect("cert token"),
        );
        let link = site
            .add_link(
                token.encode().as_bytes(),
                &LinkOptions::default(),
                NOW,
                &mut SeededRandom::new(7),
            )
            .expect("link");
        site.set_link_state(
            &link.name,
            LinkState::Connected { since: NOW },
            "benchmark",
            NOW,
        )
        .expect("connected");
    }
    site
}

/// [`SeededRandom`] as the `rand_core` generator the `rsa` crate takes.
pub struct RsaRng(pub SeededRandom);

impl rsa::rand_core::TryRng for RsaRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill(dst);
        Ok(())
    }
}

impl rsa::rand_core::TryCryptoRng for RsaRng {}

/// A new RSA-2048 key (the CA's, for the baseline).
pub fn rsa_key(rng: &mut RsaRng) -> rsa::PrivateKey {
    rsa::PrivateKey::new(rng, 2048).expect("RSA-2048 key")
}

/// What Skupper does per certificate: a fresh RSA-2048 key for the
/// subject, and the CA's RSA-2048 signature (PKCS#1 v1.5, SHA-256) over the
/// to-be-signed certificate. Returns the new key and the signature.
pub fn skupper_rsa_issue(
    ca: &rsa::PrivateKey,
    tbs: &[u8],
    rng: &mut RsaRng,
) -> (rsa::PrivateKey, Vec<u8>) {
    let key = rsa_key(rng);
    let digest = Sha256::digest(tbs);
    let signature = ca
        .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
        .expect("RSA signature");
    (key, signature)
}
