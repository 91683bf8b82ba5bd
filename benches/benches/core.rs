//! Criterion benchmarks of the core against the budget in issue 5, with
//! Skupper's per-certificate RSA-2048 work as the baseline and ring's P-256
//! key generation + signature as the floor.
//!
//! `cargo bench -p benches -- --warm-up-time 1 --measurement-time 3`
//!
//! After criterion's own report this prints a table: median, median
//! absolute deviation and the 10th-90th percentile range of the per-sample
//! means, next to the budget.
#![allow(missing_docs)]
// Reading criterion's result files, the command line, and ring's OS random
// generator for the floor are the bench's business, not the core's.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stdout
)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use benches::report::{emit, human, output_directory, stats, Stats};
use benches::{
    add_incoming, rsa_key, site, site_with_claims, site_with_links, skupper_rsa_issue, token_files,
    RsaRng, NOW, RSA_CA_PEM, RSA_LEAF_PEM,
};
use criterion::{BatchSize, Criterion, SamplingMode};
use skupper_token::claim::{ClaimState, RedeemRequest};
use skupper_token::duration::GoDuration;
use skupper_token::pki::{pem_to_der, PeerVerifier};
use skupper_token::random::SeededRandom;
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::token::Token;
use skupper_token::version::VERSION;
use skupper_token_cli::os_random::RingKeys;
use skupper_token_cli::FileStore;

/// Benchmarks that ran in this process, for the summary.
static RAN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn ran(id: &'static str) {
    let mut ran = RAN.lock().unwrap_or_else(|e| e.into_inner());
    if !ran.contains(&id) {
        ran.push(id);
    }
}

/// `cargo bench` passes `--bench`; without it (`cargo test --benches`)
/// criterion runs each routine once, so the big set-ups are made small.
fn full_size() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `site` with the key backend `serve` uses: ring's P-256 with the
/// operating system's random generator.
fn with_ring<S: skupper_token::store::Store>(site: Site<S>) -> Site<S> {
    site.with_key_backend(RingKeys::shared())
}

fn issuing(c: &mut Criterion) {
    let mut g = c.benchmark_group("issue");
    let mut rng = SeededRandom::new(1);
    let west = with_ring(site("west", &mut rng));
    g.bench_function("cert_token", |b| {
        ran("issue/cert_token");
        // Key generation, signing, PEM and the token file's YAML, with the
        // keys the CLI makes (ring).
        b.iter(|| {
            west.create_cert_token(&TokenOptions::cert(), NOW, &mut rng)
                .expect("cert token")
                .encode()
        })
    });
    // The same with the library's default, deterministic backend (keys
    // derived from the injected random source, RFC 6979 signatures): what
    // test harnesses run.
    let seeded = site("west", &mut rng);
    g.bench_function("cert_token_deterministic", |b| {
        ran("issue/cert_token_deterministic");
        b.iter(|| {
            seeded
                .create_cert_token(&TokenOptions::cert(), NOW, &mut rng)
                .expect("cert token")
                .encode()
        })
    });
    let mut rng = SeededRandom::new(2);
    g.bench_function("claim_token", |b| {
        ran("issue/claim_token");
        b.iter(|| {
            west.create_claim_token(&TokenOptions::claim(), NOW, &mut rng)
                .expect("claim token")
                .encode()
        })
    });
    g.finish();
}

fn redeeming(c: &mut Criterion) {
    let mut rng = SeededRandom::new(3);
    let west = with_ring(site("west", &mut rng));
    let claim = west
        .create_claim_token(
            &TokenOptions::claim().uses(0).expiry(GoDuration::ZERO),
            NOW,
            &mut rng,
        )
        .expect("unlimited claim");
    let request = RedeemRequest {
        claim: claim.name.clone(),
        password: claim.password.expose().as_bytes().to_vec(),
        site_id: "6d2b4a43-7a57-4b8e-9d0e-3f2a1c5b9e10".into(),
        site_version: VERSION.into(),
    };
    let mut g = c.benchmark_group("redeem");
    g.bench_function("memory_store", |b| {
        ran("redeem/memory_store");
        b.iter(|| {
            west.redeem_claim(black_box(&request), NOW, &mut rng)
                .expect("redeemed")
        })
    });
    let west = west.with_key_backend(skupper_token::keys::deterministic());
    g.bench_function("memory_store_deterministic", |b| {
        ran("redeem/memory_store_deterministic");
        b.iter(|| {
            west.redeem_claim(black_box(&request), NOW, &mut rng)
                .expect("redeemed")
        })
    });
    g.finish();

    // The same against the file store `serve` uses: every redemption spends
    // a use and records the issued certificate, each an atomic, durable
    // write (temporary file, fsync, rename, fsync of the directory) under
    // the site's lock. The directory is in the system's temporary
    // directory, so the number is that file system's.
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = FileStore::open(dir.path().join("west")).expect("file store");
    let mut rng = SeededRandom::new(8);
    let west =
        with_ring(Site::create(store, &SiteConfig::new("west"), NOW, &mut rng).expect("site"));
    let claim = west
        .create_claim_token(
            &TokenOptions::claim().uses(0).expiry(GoDuration::ZERO),
            NOW,
            &mut rng,
        )
        .expect("unlimited claim");
    let request = RedeemRequest {
        claim: claim.name.clone(),
        password: claim.password.expose().as_bytes().to_vec(),
        ..request
    };
    let mut g = c.benchmark_group("redeem");
    g.sample_size(20);
    g.bench_function("file_store", |b| {
        ran("redeem/file_store");
        b.iter(|| {
            west.redeem_claim(black_box(&request), NOW, &mut rng)
                .expect("redeemed")
        })
    });
    g.finish();
}

fn decoding(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    let ids = [
        "decode/claim_token",
        "decode/cert_token",
        "decode/skupper_1_5_2_rsa_claim",
    ];
    for ((name, file), id) in token_files().iter().zip(ids) {
        assert_eq!(id.strip_prefix("decode/"), Some(*name));
        g.bench_function(*name, |b| {
            ran(id);
            b.iter(|| Token::decode(black_box(file.as_bytes())).expect("decodes"))
        });
    }
    g.finish();
}

fn authenticating(c: &mut Criterion) {
    let mut g = c.benchmark_group("auth");
    let mut rng = SeededRandom::new(5);
    let west = site("west", &mut rng);
    let token = west
        .create_cert_token(&TokenOptions::cert().name("east"), NOW, &mut rng)
        .expect("cert token");
    let leaf = pem_to_der(&token.cert_pem).expect("PEM");
    west.authenticate_peer(&[&leaf], NOW).expect("accepted");
    g.bench_function("p256_chain", |b| {
        ran("auth/p256_chain");
        b.iter(|| {
            west.authenticate_peer(black_box(&[&leaf]), NOW)
                .expect("accepted")
        })
    });

    let verifier = PeerVerifier::from_pem(RSA_CA_PEM).expect("RSA CA");
    let rsa_leaf = pem_to_der(RSA_LEAF_PEM).expect("PEM");
    verifier
        .verify(&[&rsa_leaf], NOW)
        .expect("RSA leaf accepted");
    g.bench_function("rsa2048_chain", |b| {
        ran("auth/rsa2048_chain");
        b.iter(|| {
            verifier
                .verify(black_box(&[&rsa_leaf]), NOW)
                .expect("accepted")
        })
    });
    g.finish();
}

fn revoking(c: &mut Criterion) {
    let (claims, incoming) = if full_size() {
        (10_000, 1_000)
    } else {
        (100, 10)
    };
    let mut g = c.benchmark_group("revoke_access");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.bench_function("10000_claims_1000_incoming", |b| {
        ran("revoke_access/10000_claims_1000_incoming");
        let mut seed = 100;
        b.iter_batched(
            || {
                seed += 1;
                let mut rng = SeededRandom::new(seed);
                let site = site_with_claims(claims, &mut rng);
                add_incoming(&site, incoming, &mut rng);
                (site, rng)
            },
            |(site, mut rng)| {
                let r = site.revoke_access(NOW, &mut rng).expect("revoked");
                assert_eq!(r.claims_deleted, claims);
                (site, r)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn listing(c: &mut Criterion) {
    let (links, claims) = if full_size() {
        (1_000, 10_000)
    } else {
        (10, 100)
    };
    let mut rng = SeededRandom::new(6);
    let linked = site_with_links(links, &mut rng);
    add_incoming(&linked, links, &mut rng);
    assert_eq!(linked.status(NOW).expect("status").linked_sites, links * 2);
    let mut g = c.benchmark_group("status");
    g.bench_function("1000_links_1000_incoming", |b| {
        ran("status/1000_links_1000_incoming");
        b.iter(|| linked.status(NOW).expect("status"))
    });
    g.finish();
    let claimed = site_with_claims(claims, &mut rng);
    let mut g = c.benchmark_group("claims");
    g.bench_function("list_10000", |b| {
        ran("claims/list_10000");
        b.iter(|| claimed.claims().expect("claims"))
    });
    g.finish();

    // Both on one site: 10,000 outstanding claims, 1,000 outgoing and
    // 1,000 incoming links. `token status` lists the claims and works out
    // each one's state; `status` counts the linked sites.
    for _ in 0..claims {
        linked
            .create_claim_token(&TokenOptions::claim(), NOW, &mut rng)
            .expect("claim");
    }
    let mut g = c.benchmark_group("token_status");
    g.bench_function("10000_claims_1000_links", |b| {
        ran("token_status/10000_claims_1000_links");
        b.iter(|| {
            let claims = linked.claims().expect("claims");
            claims
                .iter()
                .filter(|c| c.state(NOW) == ClaimState::Active)
                .count()
        })
    });
    g.finish();
    let mut g = c.benchmark_group("status");
    g.bench_function("10000_claims_1000_links", |b| {
        ran("status/10000_claims_1000_links");
        b.iter(|| linked.status(NOW).expect("status"))
    });
    g.finish();
}

fn floor_and_baseline(c: &mut Criterion) {
    let mut g = c.benchmark_group("floor");
    // ring's own P-256 key generation and one ECDSA signature: the least an
    // issuing site can do per certificate.
    let ring_rng = ring::rand::SystemRandom::new();
    let tbs = [0x5au8; 400];
    g.bench_function("ring_p256_keygen_sign", |b| {
        ran("floor/ring_p256_keygen_sign");
        b.iter(|| {
            let alg = &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
            let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &ring_rng).expect("key");
            let key = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &ring_rng)
                .expect("key");
            key.sign(&ring_rng, black_box(&tbs)).expect("signature")
        })
    });
    g.finish();

    if !full_size() {
        // RSA key generation is far too slow unoptimized; `cargo bench` only.
        return;
    }
    let mut g = c.benchmark_group("baseline");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10));
    let mut rng = RsaRng(SeededRandom::new(7));
    let ca = rsa_key(&mut rng);
    g.bench_function("skupper_rsa2048_keygen_sign", |b| {
        ran("baseline/skupper_rsa2048_keygen_sign");
        b.iter(|| skupper_rsa_issue(&ca, black_box(&tbs), &mut rng))
    });
    g.finish();
}

// ---------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------

/// Budgets from issue 5, in nanoseconds.
fn budget(id: &str) -> Option<f64> {
    Some(match id {
        "issue/cert_token" => 100e3,
        "issue/claim_token" => 20e3,
        "redeem/memory_store" => 120e3,
        "decode/cert_token" => 100e3,
        "auth/p256_chain" | "auth/rsa2048_chain" => 100e3,
        "revoke_access/10000_claims_1000_incoming" => 1e9,
        _ => return None,
    })
}

/// Prints the table and the ratios ([`emit`]).
fn summary(dir: &Path) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let ran = RAN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let rows: Vec<(&str, Stats)> = ran
        .iter()
        .filter_map(|id| Some((*id, stats(dir, id)?)))
        .collect();
    if rows.is_empty() {
        return;
    }
    out.push('\n');
    writeln!(
        out,
        "| benchmark | median | MAD | p10-p90 of samples | budget | |"
    )
    .expect("formatting to a String");
    writeln!(out, "| --- | ---: | ---: | ---: | ---: | --- |").expect("formatting to a String");
    for (id, s) in &rows {
        let (b, verdict) = match budget(id) {
            Some(b) if s.median <= b => (human(b), "within"),
            Some(b) => (human(b), "OVER"),
            None => ("-".to_owned(), ""),
        };
        writeln!(
            out,
            "| {id} | {} | ±{} | {} - {} | {b} | {verdict} |",
            human(s.median),
            human(s.mad),
            human(s.p10),
            human(s.p90)
        )
        .expect("formatting to a String");
    }
    let median = |id: &str| rows.iter().find(|(i, _)| *i == id).map(|(_, s)| s.median);
    if let (Some(rsa), Some(ours)) = (
        median("baseline/skupper_rsa2048_keygen_sign"),
        median("issue/cert_token"),
    ) {
        out.push('\n');
        writeln!(out,
            "Skupper's RSA-2048 key + signature per certificate takes {:.0}x our whole P-256 cert token issuance (budget: at least 1000x).",
            rsa / ours
        ).expect("formatting to a String");
    }
    if let (Some(floor), Some(ours)) = (
        median("floor/ring_p256_keygen_sign"),
        median("issue/cert_token"),
    ) {
        writeln!(out,
            "Our cert token issuance takes {:.2}x ring's P-256 key generation + one signature (budget: within 1.7x).",
            ours / floor
        ).expect("formatting to a String");
    }
    emit(&out);
}

fn main() {
    let dir = output_directory();
    let mut c = Criterion::default()
        .configure_from_args()
        .output_directory(&dir);
    issuing(&mut c);
    redeeming(&mut c);
    decoding(&mut c);
    authenticating(&mut c);
    revoking(&mut c);
    listing(&mut c);
    floor_and_baseline(&mut c);
    c.final_summary();
    if full_size() {
        summary(&dir);
    }
}
