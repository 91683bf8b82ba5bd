//! Writes the seed corpus: `cargo run --example make_corpus [DIR]` from
//! `fuzz/` (default DIR: `corpus`). Deterministic: the same files on every
//! run.
// Writing files is this tool's job (clippy.toml bans I/O for the core).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use skupper_token::duration::GoDuration;
use skupper_token::harness::Network;
use skupper_token::random::{Random, SeededRandom};
use skupper_token::site::{SiteConfig, TokenOptions};
use skupper_token::token::{CertToken, Endpoint, SecretPem, Token};
use skupper_token_fuzz::auth::{fixture, join_chain};
use skupper_token_fuzz::claims::{self, encode, op, Field, PAYLOAD_NAME, RAW};
use skupper_token_fuzz::ops::{run, Op, Script};
use skupper_token_fuzz::START;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
}

fn decode_token_seeds(dir: &Path) {
    // The repository's copy of the real Skupper 1.5.2 token (shared fixture).
    let real = fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../skupper-token/tests/data/skupper-1.5.2-claim-token.yaml"),
    )
    .expect("the Skupper 1.5.2 fixture");
    write(dir, "skupper-1.5.2-claim-token.yaml", &real);
    // The files made by Skupper 2.x's own code: an AccessToken, a Link file
    // from `skupper link generate`, a grant server's answer.
    for name in ["v2-access-token", "v2-link-generate", "v2-grant-response"] {
        let file = fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../skupper-token/tests/data/v2/{name}.yaml")),
        )
        .expect("a Skupper 2.x fixture");
        write(dir, &format!("{name}.yaml"), &file);
    }

    let net = Network::new(11);
    net.add_site("west").expect("west");
    net.add_site_with(SiteConfig::new("east").hosts(["fd00::1"]))
        .expect("east");
    let claim = net
        .create_token("west", &TokenOptions::claim())
        .expect("claim");
    write(dir, "claim-default.yaml", claim.encode().as_bytes());
    let forever = net
        .create_token(
            "east",
            &TokenOptions::claim()
                .name("forever")
                .uses(0)
                .expiry(GoDuration::ZERO),
        )
        .expect("claim");
    write(dir, "claim-unlimited.yaml", forever.encode().as_bytes());
    let cert = net
        .create_token("west", &TokenOptions::cert())
        .expect("cert");
    write(dir, "cert-p256.yaml", cert.encode().as_bytes());

    // An RSA cert token shaped like Skupper's (PKCS#1 key, RSA leaf).
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../skupper-token/tests/data");
    let read = |f: &str| fs::read_to_string(data.join(f)).expect("test data");
    let rsa = Token::Cert(CertToken {
        name: "skupper".into(),
        ca_pem: read("ca.crt"),
        cert_pem: read("tls.crt"),
        key_pem: SecretPem::new(read("tls.key")),
        issuer_site_id: "0b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9".into(),
        issuer_version: "1.5.2".into(),
        inter_router: Endpoint {
            host: "skupper-inter-router-west.example.com".into(),
            port: 443,
        },
        edge: Endpoint {
            host: "skupper-edge-west.example.com".into(),
            port: 443,
        },
    });
    write(dir, "cert-rsa-pkcs1.yaml", rsa.encode().as_bytes());
}

fn authenticate_peer_seeds(dir: &Path) {
    let fx = fixture();
    for (i, leaf) in fx.accepted.iter().enumerate() {
        write(dir, &format!("accepted-{i}.bin"), &join_chain(&[leaf]));
    }
    write(
        dir,
        "leaf-and-ca.bin",
        &join_chain(&[&fx.accepted[0], &fx.ca_der]),
    );
    write(
        dir,
        "leaf-foreign-ca.bin",
        &join_chain(&[&fx.accepted[1], &fx.foreign, &fx.ca_der]),
    );
    write(dir, "revoked.bin", &join_chain(&[&fx.revoked]));
    write(dir, "foreign.bin", &join_chain(&[&fx.foreign]));
    write(dir, "ca-as-leaf.bin", &join_chain(&[&fx.ca_der]));
    let rsa_leaf = skupper_token::pki::pem_to_der(
        &fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../skupper-token/tests/data/tls.crt"),
        )
        .expect("tls.crt"),
    )
    .expect("tls.crt PEM");
    write(dir, "rsa-leaf.bin", &join_chain(&[&rsa_leaf]));
}

fn claim_request_seeds(dir: &Path) {
    let fx = claims::fixture().lock().expect("claims fixture");
    let (one, two, three, gone, forever, old) = (0, 1, 2, 3, 4, 5);
    let post = |claim| (op(claim, Field::Append, false), &b""[..]);
    // The client's POST, as https::client sends it, past each claim's uses.
    write(
        dir,
        "post-each.bin",
        &encode(0, &[post(one), post(two), post(three), post(forever)]),
    );
    write(
        dir,
        "post-past-uses.bin",
        &encode(
            0,
            &[
                post(two),
                post(two),
                post(two),
                post(one),
                post(one),
                post(three),
            ],
        ),
    );
    write(
        dir,
        "post-expired-and-old.bin",
        &encode(0, &[post(gone), post(old)]),
    );
    // Methods, the version check, the site name, wrong passwords.
    let field = |claim, f, payload: &'static [u8]| (op(claim, f, false), payload);
    write(
        dir,
        "methods.bin",
        &encode(
            0,
            &[
                field(one, Field::Method, b"GET"),
                field(one, Field::Method, b"PUT"),
                field(one, Field::Method, b"post"),
                post(one),
            ],
        ),
    );
    write(
        dir,
        "versions.bin",
        &encode(
            0,
            &[
                field(three, Field::SiteVersion, b"0.7.0"),
                field(three, Field::SiteVersion, b""),
                field(three, Field::Query, b"x=1&site-version=1.5.2"),
                field(three, Field::SiteVersion, b"v1.9.6+rc%21"),
            ],
        ),
    );
    write(
        dir,
        "site-names.bin",
        &encode(
            0,
            &[
                field(two, Field::SiteName, b""),
                (op(two, Field::Append, true), b""),
                field(two, Field::SiteName, b"east \xc3\xa9t\x7f"),
            ],
        ),
    );
    write(
        dir,
        "wrong-passwords.bin",
        &encode(
            0,
            &[
                field(one, Field::Body, b"not-the-password"),
                field(one, Field::Body, b""),
                field(gone, Field::Body, b"x"),
                field(PAYLOAD_NAME, Field::Append, b""),
            ],
        ),
    );
    // Framing: chunked bodies, Content-Length, HTTP/1.0, bare LF, targets.
    write(
        dir,
        "chunked.bin",
        &encode(
            0,
            &[
                field(three, Field::Chunked, b"\x05\x85\x0fTrailer: 1"),
                field(three, Field::Chunked, b"\x01\x02\x03\x04"),
                field(two, Field::ContentLength, b"999999"),
                field(two, Field::ContentLength, b"3"),
            ],
        ),
    );
    write(
        dir,
        "framing.bin",
        &encode(
            0,
            &[
                field(forever, Field::HttpVersion, b"1.0"),
                field(forever, Field::BareLf, b"\r\n\n"),
                field(forever, Field::Authority, b"claims.west.example:8081"),
                field(forever, Field::PathSuffix, b"/"),
                field(
                    forever,
                    Field::ExtraHeaders,
                    b"Expect: 100-continue\r\nX-A: b",
                ),
                field(forever, Field::Headers, b"Content-Length: 24"),
                field(forever, Field::Truncate, b"\x30\x00"),
                field(forever, Field::Overwrite, b"\x00\x70\x05\x00"),
            ],
        ),
    );
    // Names: percent escapes, slashes, names that do not exist.
    write(
        dir,
        "names.bin",
        &encode(
            0,
            &[
                field(PAYLOAD_NAME, Field::Append, b"o%6Ee"),
                field(PAYLOAD_NAME, Field::Append, b"t/w/o"),
                field(PAYLOAD_NAME, Field::Append, b"%zz"),
                field(PAYLOAD_NAME, Field::Append, b"nosuch"),
            ],
        ),
    );
    // Small limits, read one byte at a time; and the server's 4 KiB reads
    // of a body over the limit.
    write(
        dir,
        "small-limits-bytewise.bin",
        &encode(
            1 | (1 << 1),
            &[post(three), field(three, Field::Body, &[b'p'; 100])],
        ),
    );
    // Raw requests: the client's POST for "one" spelled out, and garbage.
    let c = &fx.claims[one as usize];
    let raw = format!(
        "POST /{}?site-version=1.9.6 HTTP/1.1\r\nHost: claims.west.example:8081\r\nUser-Agent: skupper-token/1.9.6\r\nSkupper-Site-Name: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        c.name,
        claims::PEER_SITE_ID,
        c.password.len(),
        c.password
    );
    write(
        dir,
        "raw.bin",
        &encode(
            0,
            &[
                (RAW, raw.as_bytes()),
                (RAW, b"GET / HTTP/1.1\r\n\r\n"),
                (RAW, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
                (
                    RAW,
                    b"POST /one HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                ),
            ],
        ),
    );
}

/// How much of the model an op sequence exercises, to pick seeds.
fn score(script: &Script) -> usize {
    let mut kinds = std::collections::HashSet::new();
    for op in &script.ops {
        kinds.insert(std::mem::discriminant(op));
    }
    kinds.len()
}

fn ops_seeds(dir: &Path) {
    let mut rng = SeededRandom::new(99);
    let mut kept = 0;
    for attempt in 0..2000u32 {
        let mut bytes = vec![0u8; 160];
        rng.fill(&mut bytes);
        let Ok(script) = Script::arbitrary(&mut Unstructured::new(&bytes)) else {
            continue;
        };
        let links = script
            .ops
            .iter()
            .filter(|o| matches!(o, Op::CreateLink { .. }))
            .count();
        let ticks = script.ops.iter().filter(|o| matches!(o, Op::Tick)).count();
        if score(&script) >= 8 && links >= 2 && ticks >= 1 {
            run(&script);
            write(dir, &format!("mixed-{attempt}.bin"), &bytes);
            kept += 1;
            if kept == 6 {
                break;
            }
        }
    }
    assert!(kept > 0, "no ops seed found");
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let _ = START;
    for (target, make) in [
        ("decode_token", decode_token_seeds as fn(&Path)),
        ("claim_request", claim_request_seeds),
        ("authenticate_peer", authenticate_peer_seeds),
        ("ops", ops_seeds),
    ] {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        make(&dir);
    }
}
