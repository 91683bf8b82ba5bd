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
use benches::token_files;
use criterion::Criterion;
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
    for (name, file) in token_files() {
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
        if let Some(s) = stats(&dir, id) {
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
