//! Token decoding with the YAML crate this build reads with: serde-saphyr
//! by default, serde_norway with the `yaml-serde-norway` feature. Run both
//! and compare (README, "YAML crate"):
//!
//! ```sh
//! cargo bench -p benches --bench yaml -- --warm-up-time 1 --measurement-time 3
//! cargo bench -p benches --bench yaml --features yaml-serde-norway -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The benchmark ids name the crate (`decode-yaml/serde-saphyr/cert_token`),
//! so the two runs do not overwrite each other's criterion results.
#![allow(missing_docs)]
// The command line is the bench's business.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;

use benches::report::{emit, human, output_directory, stats};
use benches::{site, NOW, SKUPPER_CLAIM_TOKEN};
use criterion::Criterion;
use skupper_token::random::SeededRandom;
use skupper_token::site::TokenOptions;
use skupper_token::token::Token;

/// The YAML crate of this build.
const YAML_CRATE: &str = if cfg!(feature = "yaml-serde-norway") {
    "serde_norway"
} else {
    "serde-saphyr"
};

/// Benchmarks decoding; returns the benchmark ids.
fn decoding(c: &mut Criterion) -> Vec<String> {
    let mut ids = Vec::new();
    let mut g = c.benchmark_group(format!("decode-yaml/{YAML_CRATE}"));
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
    for (name, file) in [
        ("claim_token", claim.as_str()),
        ("cert_token", cert.as_str()),
        ("skupper_1_5_2_rsa_claim", SKUPPER_CLAIM_TOKEN),
    ] {
        Token::decode(file.as_bytes()).expect("decodes");
        ids.push(format!("decode-yaml/{YAML_CRATE}/{name}"));
        g.bench_function(name, |b| {
            b.iter(|| Token::decode(black_box(file.as_bytes())).expect("decodes"))
        });
    }
    g.finish();
    ids
}

fn main() {
    let dir = output_directory();
    let mut c = Criterion::default()
        .configure_from_args()
        .output_directory(&dir);
    let ids = decoding(&mut c);
    c.final_summary();
    // Without `--bench` (`cargo test --benches`) nothing was measured.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut out = String::new();
    for id in &ids {
        // Criterion keeps a group's results in a directory named after
        // the group with '/' replaced.
        let (group, name) = id.rsplit_once('/').unwrap_or(("", id));
        let files = format!("{}/{name}", group.replace('/', "_"));
        if let Some(s) = stats(&dir, &files) {
            out.push_str(&format!(
                "| {id} | {} | ±{} | {} - {} |\n",
                human(s.median),
                human(s.mad),
                human(s.p10),
                human(s.p90)
            ));
        }
    }
    emit(&out);
}
