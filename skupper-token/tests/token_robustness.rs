//! Token files come from users and from the network: decoding never panics,
//! whatever the bytes, and encoding then decoding gives the same token back.

use proptest::prelude::*;
use skupper_token::token::*;

const FIXTURE: &[u8] = include_bytes!("data/skupper-1.5.2-claim-token.yaml");
const CA: &str = include_str!("data/ca.crt");
const TLS_CRT: &str = include_str!("data/tls.crt");
const TLS_KEY: &str = include_str!("data/tls.key");

fn cert_token_text() -> String {
    CertToken {
        name: "skupper".into(),
        ca_pem: CA.into(),
        cert_pem: TLS_CRT.into(),
        key_pem: SecretPem::new(TLS_KEY),
        issuer_site_id: "67b7e59e-37aa-4179-8191-077b7a0d90d7".into(),
        issuer_version: "1.9.6".into(),
        inter_router: Endpoint {
            host: "west.example.com".into(),
            port: 55671,
        },
        edge: Endpoint {
            host: "west.example.com".into(),
            port: 45671,
        },
    }
    .encode()
}

#[test]
fn truncation_at_every_offset_never_panics() {
    for valid in [FIXTURE.to_vec(), cert_token_text().into_bytes()] {
        assert!(Token::decode(&valid).is_ok());
        for end in 0..valid.len() {
            // Ok (a cut inside the last name) or Err, never a panic.
            let _ = Token::decode(&valid[..end]);
            let _ = Token::decode(&valid[end..]);
        }
    }
}

#[test]
fn truncated_certificates_are_refused() {
    // Cutting the base64 of ca.crt anywhere before the end of its END line
    // never yields a token (only the final newline, `Cg==`, is optional).
    let text = String::from_utf8(FIXTURE.to_vec()).unwrap();
    let line = text.lines().find(|l| l.starts_with("  ca.crt: ")).unwrap();
    let b64 = &line["  ca.crt: ".len()..];
    for cut in (0..b64.len() - 4).step_by(7).chain([b64.len() - 5]) {
        let damaged = text.replace(b64, &b64[..cut]);
        assert!(Token::decode(damaged.as_bytes()).is_err(), "cut at {cut}");
    }
}

/// Byte-level mutations of a valid token.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), 0usize..200).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match *m {
        Mutation::Flip(i, b) => {
            let i = i % bytes.len();
            bytes[i] ^= b | 1;
        }
        Mutation::Insert(i, b) => {
            let i = i % (bytes.len() + 1);
            bytes.insert(i, b);
        }
        Mutation::Delete(i) => {
            let i = i % bytes.len();
            bytes.remove(i);
        }
        Mutation::Duplicate(i, n) => {
            let i = i % bytes.len();
            let end = (i + n).min(bytes.len());
            let piece = bytes[i..end].to_vec();
            bytes.splice(i..i, piece);
        }
    }
}

/// Text made of YAML's structural characters, to reach deeper parser paths
/// than random bytes do.
fn yamlish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("\n".to_owned()),
            Just("  ".to_owned()),
            Just(": ".to_owned()),
            Just("- ".to_owned()),
            Just("&a ".to_owned()),
            Just("*a".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just(",".to_owned()),
            Just("\"".to_owned()),
            Just("'".to_owned()),
            Just("|".to_owned()),
            Just(">".to_owned()),
            Just("!!binary ".to_owned()),
            Just("<<: ".to_owned()),
            Just("---\n".to_owned()),
            Just("kind: Secret\n".to_owned()),
            Just("metadata:\n  labels:\n    skupper.io/type: token-claim\n".to_owned()),
            Just("data:\n  ca.crt: ".to_owned()),
            "[a-zA-Z0-9+/=.:-]{0,12}",
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = Token::decode(&bytes);
        let _ = ClaimToken::decode(&bytes);
        let _ = CertToken::decode(&bytes);
    }

    #[test]
    fn yamlish_text_never_panics(text in yamlish()) {
        let _ = Token::decode(text.as_bytes());
    }

    #[test]
    fn mutated_claim_tokens_never_panic(mutations in proptest::collection::vec(mutation(), 1..8)) {
        let mut bytes = FIXTURE.to_vec();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if let Ok(token) = Token::decode(&bytes) {
            // Whatever was accepted encodes and decodes to itself.
            prop_assert_eq!(Token::decode(token.encode().as_bytes()), Ok(token));
        }
    }

    #[test]
    fn mutated_cert_tokens_never_panic(mutations in proptest::collection::vec(mutation(), 1..8)) {
        let mut bytes = cert_token_text().into_bytes();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if let Ok(token) = Token::decode(&bytes) {
            prop_assert_eq!(Token::decode(token.encode().as_bytes()), Ok(token));
        }
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9][a-z0-9.-]{0,20}",
        ".{1,20}",
        Just("yes".to_owned()),
        Just("45671".to_owned()),
        Just("1.10".to_owned()),
        Just("2026-11-28T10:15:00Z".to_owned()),
        Just("- x: y # z".to_owned()),
    ]
}

fn claim_token() -> impl Strategy<Value = ClaimToken> {
    (
        text(),
        ".{0,40}",
        (
            "[a-z0-9][a-z0-9.-]{0,20}",
            1u16..=65535,
            "[A-Za-z0-9-]{1,36}",
        ),
        text(),
        prop_oneof![Just(String::new()), text()],
        proptest::option::of(0i64..253_402_300_799),
    )
        .prop_map(
            |(name, password, (host, port, path), site, version, expiry)| ClaimToken {
                name,
                ca_pem: CA.to_owned(),
                password: Password::from(password),
                url: format!("https://{host}:{port}/{path}"),
                issuer_site_id: site,
                issuer_version: version,
                expires_at: expiry.map(|s| time::OffsetDateTime::from_unix_timestamp(s).unwrap()),
            },
        )
}

fn cert_token() -> impl Strategy<Value = CertToken> {
    (
        text(),
        text(),
        prop_oneof![Just(String::new()), text()],
        (text(), 1u16..=65535),
        (text(), 1u16..=65535),
        prop_oneof![
            Just(TLS_KEY),
            Just(include_str!("data/ec-sec1.key")),
            Just(include_str!("data/pkcs8.key"))
        ],
    )
        .prop_map(
            |(name, site, version, (ir_host, ir_port), (edge_host, edge_port), key)| CertToken {
                name,
                ca_pem: CA.to_owned(),
                cert_pem: TLS_CRT.to_owned(),
                key_pem: SecretPem::new(key),
                issuer_site_id: site,
                issuer_version: version,
                inter_router: Endpoint {
                    host: ir_host,
                    port: ir_port,
                },
                edge: Endpoint {
                    host: edge_host,
                    port: edge_port,
                },
            },
        )
}

proptest! {
    #[test]
    fn claim_tokens_round_trip(token in claim_token()) {
        let text = token.encode();
        prop_assert_eq!(ClaimToken::decode(text.as_bytes()), Ok(token.clone()));
        prop_assert_eq!(Token::decode(text.as_bytes()), Ok(Token::Claim(token.clone())));
        // Encoding is deterministic.
        prop_assert_eq!(Token::Claim(token).encode(), text);
    }

    #[test]
    fn cert_tokens_round_trip(token in cert_token()) {
        let text = token.encode();
        prop_assert_eq!(CertToken::decode(text.as_bytes()), Ok(token.clone()));
        prop_assert_eq!(Token::decode(text.as_bytes()), Ok(Token::Cert(token)));
    }
}
