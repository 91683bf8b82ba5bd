//! Reading token files: a real Skupper 1.5.2 claim token, and damaged files
//! that must give the right error with Skupper's wording.

use skupper_token::token::*;

const FIXTURE: &[u8] = include_bytes!("data/skupper-1.5.2-claim-token.yaml");

fn fixture_text() -> String {
    String::from_utf8(FIXTURE.to_vec()).unwrap()
}

/// The fixture with one line replaced (or removed when `new` is empty).
fn with_line(prefix: &str, new: &str) -> String {
    let text = fixture_text();
    let mut found = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with(prefix) && !found {
            found = true;
            if !new.is_empty() {
                out.push_str(new);
                out.push('\n');
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(found, "no line starting with {prefix:?}");
    out
}

fn decode(text: &str) -> Result<Token, DecodeError> {
    Token::decode(text.as_bytes())
}

#[test]
fn real_skupper_claim_token_decodes() {
    let token = Token::decode(FIXTURE).unwrap();
    assert_eq!(token.type_label(), "token-claim");
    assert_eq!(token.name(), "6fe5599e-ae73-11ee-b75a-902e1655a5fe");
    assert_eq!(
        token.issuer_site_id(),
        "67b7e59e-37aa-4179-8191-077b7a0d90d7"
    );
    assert_eq!(token.issuer_version(), "1.5.2");
    assert!(token.ca_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
    let Token::Claim(claim) = token else {
        panic!("not a claim token")
    };
    assert_eq!(claim.password.expose(), "mIfZT0vI1cUBhLsgNfKvY2ua");
    assert_eq!(
        claim.url,
        "https://claims-xxx-0-153f1de160110098c1928a6c05e19444-0000.us-east.containers.appdomain.cloud:443/6fe5599e-ae73-11ee-b75a-902e1655a5fe"
    );
    assert_eq!(claim.expires_at, None);
    let endpoint = claim.endpoint().unwrap();
    assert_eq!(endpoint.port, 443);
    assert_eq!(
        endpoint.host,
        "claims-xxx-0-153f1de160110098c1928a6c05e19444-0000.us-east.containers.appdomain.cloud"
    );
    // The URL path is the claim name.
    assert!(claim.url.ends_with(&format!("/{}", claim.name)));
    assert_eq!(ClaimToken::decode(FIXTURE), Ok(claim));
}

#[test]
fn real_skupper_claim_token_reencodes_byte_for_byte() {
    let token = Token::decode(FIXTURE).unwrap();
    assert_eq!(token.encode(), fixture_text());
}

#[test]
fn fixture_ca_is_rsa_2048_with_an_empty_dns_san() {
    // The decoder accepted it (above); check it really is the awkward kind.
    let token = Token::decode(FIXTURE).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(token.ca_pem().as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    assert_eq!(cert.subject().to_string(), "CN=skupper-site-ca");
    assert_eq!(
        cert.public_key().algorithm.algorithm.to_id_string(),
        "1.2.840.113549.1.1.1"
    );
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert!(san
        .value
        .general_names
        .iter()
        .any(|n| matches!(n, x509_parser::extensions::GeneralName::DNSName(""))));
}

#[test]
fn debug_never_shows_secrets() {
    let token = Token::decode(FIXTURE).unwrap();
    let debug = format!("{token:?}");
    assert!(debug.contains("Password(<redacted>)"), "{debug}");
    assert!(!debug.contains("mIfZT0vI1cUBhLsgNfKvY2ua"));
    let cert = CertToken {
        name: "skupper".into(),
        ca_pem: include_str!("data/ca.crt").into(),
        cert_pem: include_str!("data/tls.crt").into(),
        key_pem: SecretPem::new(include_str!("data/tls.key")),
        issuer_site_id: "x".into(),
        issuer_version: "1.9.6".into(),
        inter_router: Endpoint {
            host: "h".into(),
            port: 1,
        },
        edge: Endpoint {
            host: "h".into(),
            port: 2,
        },
    };
    let debug = format!("{cert:?}");
    assert!(debug.contains("SecretPem(<redacted>)"), "{debug}");
    assert!(!debug.contains("PRIVATE KEY"));
}

#[test]
fn windows_line_endings_and_a_byte_order_mark_are_accepted() {
    let crlf = fixture_text().replace('\n', "\r\n");
    assert_eq!(decode(&crlf), Token::decode(FIXTURE));
    let bom = format!("\u{feff}{}", fixture_text());
    assert_eq!(decode(&bom), Token::decode(FIXTURE));
}

#[test]
fn claim_expiration_is_read() {
    let text = with_line(
        "skupper.io/generated-by",
        "    skupper.io/claim-expiration: \"2026-11-28T10:15:00Z\"\n    skupper.io/generated-by: 67b7e59e-37aa-4179-8191-077b7a0d90d7",
    );
    let Ok(Token::Claim(claim)) = decode(&text) else {
        panic!()
    };
    assert_eq!(
        claim.expires_at,
        Some(time::macros::datetime!(2026-11-28 10:15:00 UTC))
    );
    assert_eq!(Token::Claim(claim).encode(), text);
}

#[test]
fn skupper_1_8_extras_are_ignored() {
    // ownerReferences, unknown annotations/labels/data, a `type:` and
    // unquoted numbers are accepted.
    let text = with_line(
        "creationTimestamp",
        "  creationTimestamp: \"2024-01-08T22:14:33Z\"\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: skupper-site\n    uid: 1c6a7e0c-2b9f-4d1e-9a0a-6a9d2c1e0f00\n  resourceVersion: \"123\"\n  uid: 42",
    );
    let text = text.replace(
        "  annotations:\n",
        "  annotations:\n    example.com/note: hello\n    example.com/count: 7\n    example.com/empty:\n",
    );
    let text = text.replace(
        "    skupper.io/type: token-claim\n",
        "    app: x\n    skupper.io/type: token-claim\n",
    );
    let text = text.replace(
        "kind: Secret\n",
        "kind: Secret\ntype: Opaque\nstringData: {}\n",
    );
    let token = decode(&text).unwrap();
    assert_eq!(token, Token::decode(FIXTURE).unwrap());
}

#[test]
fn json_is_yaml_too() {
    // kubectl can write the same Secret as JSON; it is YAML as well.
    let token = Token::decode(FIXTURE).unwrap();
    let Token::Claim(claim) = &token else {
        panic!()
    };
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let json = format!(
        r#"{{"apiVersion":"v1","kind":"Secret","data":{{"ca.crt":"{}","password":"{}"}},"metadata":{{"name":"{}","labels":{{"skupper.io/type":"token-claim"}},"annotations":{{"skupper.io/url":"{}","skupper.io/generated-by":"{}","skupper.io/site-version":"1.5.2"}}}}}}"#,
        b64(&claim.ca_pem),
        b64(claim.password.expose()),
        claim.name,
        claim.url,
        claim.issuer_site_id
    );
    assert_eq!(decode(&json), Ok(token));
}

#[test]
fn missing_data_fields_use_skupper_wording() {
    let err = decode(&with_line("ca.crt:", "")).unwrap_err();
    assert_eq!(
        err,
        DecodeError::MissingField {
            field: "ca.crt".into()
        }
    );
    assert_eq!(err.to_string(), "Expected ca.crt field in secret data");
    let err = decode(&with_line("password:", "")).unwrap_err();
    assert_eq!(err.to_string(), "Expected password field in secret data");
    let err = decode(&with_line("password:", "  password:")).unwrap_err();
    assert_eq!(err.to_string(), "Expected password field in secret data");
}

#[test]
fn missing_annotations_use_skupper_wording() {
    let err = decode(&with_line("skupper.io/url:", "")).unwrap_err();
    assert_eq!(
        err,
        DecodeError::MissingAnnotation {
            name: "skupper.io/url".into()
        }
    );
    assert_eq!(err.to_string(), "Expected skupper.io/url annotation");
    let err = decode(&with_line("skupper.io/generated-by:", "")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Expected skupper.io/generated-by annotation"
    );
}

#[test]
fn missing_site_version_is_read_as_empty() {
    // The version check refuses it later (minimum version required 0.8.0).
    let token = decode(&with_line("skupper.io/site-version:", "")).unwrap();
    assert_eq!(token.issuer_version(), "");
}

#[test]
fn not_a_skupper_token() {
    let err = decode(&fixture_text().replace("token-claim", "something-else")).unwrap_err();
    assert_eq!(
        err,
        DecodeError::NotASkupperToken {
            kind: Some("Secret".into()),
            type_label: Some("something-else".into())
        }
    );
    assert!(err
        .to_string()
        .starts_with("Secret is not a valid skupper token"));
    assert!(err.to_string().contains("something-else"));

    let err = decode(&with_line("skupper.io/type:", "")).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::NotASkupperToken {
            type_label: None,
            ..
        }
    ));
    let err = decode(&fixture_text().replace("  labels:\n    skupper.io/type: token-claim\n", ""))
        .unwrap_err();
    assert!(matches!(err, DecodeError::NotASkupperToken { .. }), "{err}");

    let err = decode(&fixture_text().replace("kind: Secret", "kind: ConfigMap")).unwrap_err();
    assert_eq!(
        err,
        DecodeError::NotASkupperToken {
            kind: Some("ConfigMap".into()),
            type_label: Some("token-claim".into())
        }
    );
    assert!(err.to_string().contains("ConfigMap"));
    let err = decode(&with_line("kind:", "")).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::NotASkupperToken { kind: None, .. }
    ));
}

#[test]
fn missing_name() {
    let err = decode(&with_line("name: 6fe5", "")).unwrap_err();
    assert_eq!(err, DecodeError::MissingName);
    let err = decode(&with_line("name: 6fe5", "  name: \"\"")).unwrap_err();
    assert_eq!(err, DecodeError::MissingName);
}

#[test]
fn wrong_token_type() {
    let err = CertToken::decode(FIXTURE).unwrap_err();
    assert_eq!(
        err,
        DecodeError::WrongType {
            expected: "cert",
            found: "claim"
        }
    );
}

#[test]
fn bad_base64() {
    let err = decode(&with_line("password:", "  password: not*base64")).unwrap_err();
    assert!(
        matches!(&err, DecodeError::BadBase64 { field, .. } if field == "password"),
        "{err}"
    );
    assert!(err.to_string().contains("password"));
    // Unpadded and line-wrapped base64 is accepted.
    let token = decode(&with_line(
        "password:",
        "  password: bUlmWlQwdkkxY1VC aExzZ05mS3ZZMnVh",
    ))
    .unwrap();
    let Token::Claim(claim) = token else { panic!() };
    assert_eq!(claim.password.expose(), "mIfZT0vI1cUBhLsgNfKvY2ua");
    let token = decode(&with_line("password:", "  password: YWJj")).unwrap();
    let Token::Claim(claim) = token else { panic!() };
    assert_eq!(claim.password.expose(), "abc");
    let token = decode(&with_line("password:", "  password: YWI")).unwrap();
    let Token::Claim(claim) = token else { panic!() };
    assert_eq!(claim.password.expose(), "ab");
}

#[test]
fn password_must_be_text() {
    // base64 of the bytes ff fe
    let err = decode(&with_line("password:", "  password: //4=")).unwrap_err();
    assert_eq!(
        err,
        DecodeError::NotUtf8 {
            field: "password".into()
        }
    );
}

#[test]
fn ca_must_be_a_pem_certificate() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let err = decode(&with_line(
        "ca.crt:",
        &format!("  ca.crt: {}", b64("hello")),
    ))
    .unwrap_err();
    assert!(
        matches!(&err, DecodeError::BadPem { field, .. } if field == "ca.crt"),
        "{err}"
    );
    let key = include_str!("data/pkcs8.key");
    let err = decode(&with_line("ca.crt:", &format!("  ca.crt: {}", b64(key)))).unwrap_err();
    assert!(matches!(&err, DecodeError::BadPem { .. }), "{err}");
    assert!(err.to_string().contains("PRIVATE KEY"), "{err}");
    let garbage = "-----BEGIN CERTIFICATE-----\nMIIBAAAAAAAAAA==\n-----END CERTIFICATE-----\n";
    let err = decode(&with_line(
        "ca.crt:",
        &format!("  ca.crt: {}", b64(garbage)),
    ))
    .unwrap_err();
    assert!(
        matches!(&err, DecodeError::NotACertificate { field, .. } if field == "ca.crt"),
        "{err}"
    );
}

#[test]
fn bad_timestamp() {
    let text = with_line(
        "skupper.io/generated-by",
        "    skupper.io/claim-expiration: next tuesday\n    skupper.io/generated-by: x",
    );
    let err = decode(&text).unwrap_err();
    assert_eq!(
        err,
        DecodeError::BadTimestamp {
            annotation: "skupper.io/claim-expiration".into(),
            value: "next tuesday".into()
        }
    );
    assert!(err.to_string().contains("next tuesday"));
}

#[test]
fn bad_url() {
    for url in [
        "http://h:1/x",
        "https://h:1",
        "https://h:70000/x",
        "not a url",
    ] {
        let err = decode(&with_line(
            "skupper.io/url:",
            &format!("    skupper.io/url: {url}"),
        ))
        .unwrap_err();
        assert_eq!(err, DecodeError::BadUrl { url: url.into() });
        assert!(err.to_string().contains(url));
    }
}

#[test]
fn not_yaml() {
    for text in [
        "",
        "   \n",
        "{",
        "apiVersion: v1\n  bad indent: [\n",
        "- a\n- b\n",
        "just a string",
        "data: 5\nkind: Secret\n",
        "\u{0}\u{1}",
    ] {
        let err = decode(text).unwrap_err();
        assert!(
            matches!(err, DecodeError::NotYaml { .. }),
            "{text:?}: {err:?}"
        );
        assert!(err.to_string().starts_with("token is not YAML: "));
    }
    let err = Token::decode(&[0xff, 0xfe, 0x00]).unwrap_err();
    assert!(matches!(err, DecodeError::NotYaml { .. }));
}

#[test]
fn duplicate_keys_are_refused() {
    let text = fixture_text().replace("  password: ", "  password: YWJj\n  password: ");
    assert!(matches!(decode(&text), Err(DecodeError::NotYaml { .. })));
}

#[test]
fn yaml_errors_do_not_echo_the_password() {
    let text = fixture_text().replace("  password: bUlm", "  password: [bUlm");
    let err = decode(&text).unwrap_err();
    assert!(!err.to_string().contains("bUlmWlQwdkkxY1VC"), "{err}");
    let err = decode("apiVersion: v1\ndata: bUlmWlQwdkkxY1VC\nkind: Secret\n").unwrap_err();
    assert!(!err.to_string().contains("bUlmWlQwdkkxY1VC"), "{err}");
}

#[test]
fn too_large() {
    let mut big = fixture_text().into_bytes();
    big.resize(MAX_TOKEN_BYTES + 1, b'\n');
    let err = Token::decode(&big).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TooLarge {
            len: MAX_TOKEN_BYTES + 1,
            max: MAX_TOKEN_BYTES
        }
    );
    // Exactly at the limit is still read.
    big.truncate(MAX_TOKEN_BYTES);
    assert!(Token::decode(&big).is_ok());
}

#[test]
fn alias_bombs_are_refused_quickly() {
    let mut doc =
        String::from("apiVersion: v1\nkind: Secret\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
    for i in 1..12 {
        let p = i - 1;
        doc.push_str(&format!(
            "x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n"
        ));
    }
    let err = decode(&doc).unwrap_err();
    assert!(matches!(err, DecodeError::NotYaml { .. }), "{err:?}");
}

#[test]
fn deep_nesting_is_refused() {
    let doc = format!(
        "apiVersion: v1\nx: {}{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    assert!(matches!(decode(&doc), Err(DecodeError::NotYaml { .. })));
    let mut doc = String::from("apiVersion: v1\nx:\n");
    for depth in 1..1000 {
        doc.push_str(&" ".repeat(depth));
        doc.push_str("y:\n");
    }
    let r = decode(&doc);
    assert!(matches!(r, Err(DecodeError::NotYaml { .. })), "{r:?}");
}

// Cert tokens ---------------------------------------------------------------

fn cert_token() -> CertToken {
    CertToken {
        name: "skupper".into(),
        ca_pem: include_str!("data/ca.crt").into(),
        cert_pem: include_str!("data/tls.crt").into(),
        key_pem: SecretPem::new(include_str!("data/tls.key")),
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
}

fn cert_with_line(prefix: &str, new: &str) -> String {
    let text = cert_token().encode();
    let mut found = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with(prefix) && !found {
            found = true;
            if !new.is_empty() {
                out.push_str(new);
                out.push('\n');
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(found, "no line starting with {prefix:?}");
    out
}

#[test]
fn cert_token_decodes() {
    let text = cert_token().encode();
    let token = Token::decode(text.as_bytes()).unwrap();
    assert_eq!(token.type_label(), "connection-token");
    assert_eq!(token, Token::Cert(cert_token()));
    assert_eq!(
        ClaimToken::decode(text.as_bytes()),
        Err(DecodeError::WrongType {
            expected: "claim",
            found: "cert"
        })
    );
}

#[test]
fn cert_token_accepts_all_key_formats() {
    for key in [
        include_str!("data/tls.key"),
        include_str!("data/ec-sec1.key"),
        include_str!("data/pkcs8.key"),
    ] {
        let mut t = cert_token();
        t.key_pem = SecretPem::new(key);
        assert_eq!(CertToken::decode(t.encode().as_bytes()), Ok(t));
    }
}

#[test]
fn cert_token_unquoted_ports_are_read() {
    let text = cert_with_line("edge-port:", "    edge-port: 45671");
    assert_eq!(CertToken::decode(text.as_bytes()), Ok(cert_token()));
}

#[test]
fn cert_token_missing_pieces() {
    for field in ["ca.crt", "tls.crt", "tls.key"] {
        let err = Token::decode(cert_with_line(&format!("{field}:"), "").as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Expected {field} field in secret data")
        );
    }
    for name in [
        "edge-host",
        "edge-port",
        "inter-router-host",
        "inter-router-port",
        "skupper.io/generated-by",
    ] {
        let err = Token::decode(cert_with_line(&format!("{name}:"), "").as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), format!("Expected {name} annotation"));
    }
    let err =
        Token::decode(cert_with_line("edge-host:", "    edge-host: \"\"").as_bytes()).unwrap_err();
    assert_eq!(err.to_string(), "Expected edge-host annotation");
}

#[test]
fn cert_token_bad_ports() {
    for value in ["\"0\"", "\"65536\"", "abc", "\"-1\"", "\"\"", "1.5"] {
        let err = Token::decode(
            cert_with_line(
                "inter-router-port:",
                &format!("    inter-router-port: {value}"),
            )
            .as_bytes(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, DecodeError::BadPort { annotation, .. } if annotation == "inter-router-port"),
            "{value}: {err}"
        );
    }
}

#[test]
fn cert_token_bad_key() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for bad in [
        include_str!("data/ca.crt"),
        "-----BEGIN PUBLIC KEY-----\nMAMCAQA=\n-----END PUBLIC KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "not pem",
    ] {
        let err = Token::decode(
            cert_with_line("tls.key:", &format!("  tls.key: {}", b64(bad))).as_bytes(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, DecodeError::BadPem { field, .. } if field == "tls.key"),
            "{bad:?}: {err}"
        );
        // The key text never appears in the message.
        assert!(!err.to_string().contains("MAMCAQA"));
    }
}

#[test]
fn cert_token_bad_certificate() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let err = Token::decode(
        cert_with_line(
            "tls.crt:",
            &format!("  tls.crt: {}", b64(include_str!("data/tls.key"))),
        )
        .as_bytes(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, DecodeError::BadPem { field, .. } if field == "tls.crt"),
        "{err}"
    );
}
