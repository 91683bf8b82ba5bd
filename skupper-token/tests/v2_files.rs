//! Skupper 2.x files, read and written: the AccessToken of `skupper token
//! issue`, the Link file of `skupper link generate` and the body of a grant
//! server's answer, all made by Skupper's own 2.x code (`data/v2/`).
//! Decoding gives the exact values, encoding gives the exact bytes back,
//! every kind of damage has its own error, and no code or key is ever
//! shown.

use std::collections::BTreeMap;

use proptest::prelude::*;
use skupper_token::token::{
    CertToken, DecodeError, Endpoint, SecretPem, Token, TokenFile, MAX_TOKEN_BYTES,
};
use skupper_token::v2::{AccessCode, AccessToken, Link, LinkEndpoint, LinkFile, TlsSecret};

const ACCESS_TOKEN: &str = include_str!("data/v2/v2-access-token.yaml");
const LINK_GENERATE: &str = include_str!("data/v2/v2-link-generate.yaml");
const GRANT_RESPONSE: &str = include_str!("data/v2/v2-grant-response.yaml");
const GRANT_SERVER_CA: &str = include_str!("data/v2/grant-server-ca.crt");
const SITE_CA: &str = include_str!("data/v2/site-ca.crt");
const GENERATED_CRT: &str = include_str!("data/v2/link-generate-tls.crt");
const GENERATED_KEY: &str = include_str!("data/v2/link-generate-tls.key");
const RESPONSE_CRT: &str = include_str!("data/v2/grant-response-tls.crt");
const RESPONSE_KEY: &str = include_str!("data/v2/grant-response-tls.key");
const V1_CLAIM: &str = include_str!("data/skupper-1.5.2-claim-token.yaml");
const CA: &str = include_str!("data/ca.crt");
const TLS_CRT: &str = include_str!("data/tls.crt");
const TLS_KEY: &str = include_str!("data/tls.key");

const CODE: &str = "qDjNTlhWXkVbesDnBcqs3vQi";

fn fixture_access_token() -> AccessToken {
    AccessToken {
        name: "grant1".into(),
        ca_pem: GRANT_SERVER_CA.into(),
        code: AccessCode::from(CODE),
        link_cost: 1,
        url: "https://127.0.0.1:21461/035a7829-c135-423b-94aa-46f08d5d5822".into(),
    }
}

fn router_endpoints() -> Vec<LinkEndpoint> {
    vec![
        LinkEndpoint {
            name: "inter-router".into(),
            host: "127.0.0.1".into(),
            port: 21462,
            group: "skupper-router".into(),
        },
        LinkEndpoint {
            name: "edge".into(),
            host: "127.0.0.1".into(),
            port: 21463,
            group: "skupper-router".into(),
        },
    ]
}

fn fixture_link_generate() -> LinkFile {
    LinkFile {
        links: vec![Link {
            name: "mylink-skupper-router".into(),
            endpoints: router_endpoints(),
            tls_credentials: "mylink".into(),
            cost: 1,
            settings: BTreeMap::new(),
        }],
        secret: TlsSecret {
            name: "mylink".into(),
            ca_pem: SITE_CA.into(),
            cert_pem: GENERATED_CRT.into(),
            key_pem: SecretPem::new(GENERATED_KEY),
        },
    }
}

fn fixture_grant_response() -> LinkFile {
    LinkFile {
        links: vec![Link {
            name: "my-link".into(),
            endpoints: router_endpoints(),
            tls_credentials: "my-link".into(),
            cost: 0,
            settings: BTreeMap::new(),
        }],
        secret: TlsSecret {
            name: "my-link".into(),
            ca_pem: SITE_CA.into(),
            cert_pem: RESPONSE_CRT.into(),
            key_pem: SecretPem::new(RESPONSE_KEY),
        },
    }
}

fn v1_cert_token() -> String {
    Token::Cert(CertToken {
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
    })
    .encode()
}

/// `text` with `from` replaced by `to`, `from` required to be there.
fn damage(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in the file");
    text.replacen(from, to, 1)
}

fn link_generate_error(text: &str) -> DecodeError {
    LinkFile::decode(text.as_bytes()).unwrap_err()
}

fn access_token_error(text: &str) -> DecodeError {
    AccessToken::decode(text.as_bytes()).unwrap_err()
}

// ---------------------------------------------------------------------------
// The fixtures

#[test]
fn the_access_token_fixture_decodes_to_its_values() {
    let token = AccessToken::decode(ACCESS_TOKEN.as_bytes()).unwrap();
    assert_eq!(token, fixture_access_token());
    assert_eq!(token.code.expose(), CODE);
    assert_eq!(
        token.endpoint(),
        Ok(Endpoint {
            host: "127.0.0.1".into(),
            port: 21461
        })
    );
}

#[test]
fn the_access_token_fixture_encodes_byte_for_byte() {
    assert_eq!(fixture_access_token().encode(), ACCESS_TOKEN);
    let token = AccessToken::decode(ACCESS_TOKEN.as_bytes()).unwrap();
    assert_eq!(token.encode(), ACCESS_TOKEN);
}

#[test]
fn a_zero_link_cost_is_left_out() {
    let token = AccessToken {
        link_cost: 0,
        ..fixture_access_token()
    };
    let text = token.encode();
    assert_eq!(text, damage(ACCESS_TOKEN, "  linkCost: 1\n", ""));
    assert_eq!(AccessToken::decode(text.as_bytes()), Ok(token));
}

#[test]
fn the_link_generate_fixture_decodes_to_its_values() {
    let file = LinkFile::decode(LINK_GENERATE.as_bytes()).unwrap();
    assert_eq!(file, fixture_link_generate());
    assert_eq!(
        file.links[0].endpoints[1].endpoint(),
        Endpoint {
            host: "127.0.0.1".into(),
            port: 21463
        }
    );
}

#[test]
fn the_link_generate_fixture_encodes_byte_for_byte() {
    assert_eq!(fixture_link_generate().encode_generated(), LINK_GENERATE);
}

#[test]
fn the_grant_response_fixture_decodes_to_its_values() {
    assert_eq!(
        LinkFile::decode(GRANT_RESPONSE.as_bytes()),
        Ok(fixture_grant_response())
    );
}

#[test]
fn the_grant_response_fixture_encodes_byte_for_byte() {
    assert_eq!(
        fixture_grant_response().encode_grant_response(),
        GRANT_RESPONSE
    );
}

#[test]
fn either_layout_reads_back_as_the_same_file() {
    for file in [fixture_link_generate(), fixture_grant_response()] {
        assert_eq!(
            LinkFile::decode(file.encode_generated().as_bytes()).as_ref(),
            Ok(&file)
        );
        assert_eq!(
            LinkFile::decode(file.encode_grant_response().as_bytes()).as_ref(),
            Ok(&file)
        );
    }
}

#[test]
fn several_links_are_written_one_document_each() {
    let mut file = fixture_link_generate();
    let mut second = file.links[0].clone();
    second.name = "mylink-router-2".into();
    second
        .settings
        .insert("inter-router-port".into(), "55671".into());
    second.settings.insert("a key".into(), "yes".into());
    file.links.push(second);
    let generated = file.encode_generated();
    assert_eq!(generated.matches("\n---\n").count(), 2);
    assert!(generated.contains(
        "  settings:\n    \"a key\": \"yes\"\n    inter-router-port: \"55671\"\n  tlsCredentials: mylink\n\n---\n"
    ));
    assert_eq!(LinkFile::decode(generated.as_bytes()).as_ref(), Ok(&file));
    let response = file.encode_grant_response();
    assert_eq!(response.matches("---\n").count(), 3);
    assert_eq!(LinkFile::decode(response.as_bytes()), Ok(file));
}

#[test]
fn a_link_cost_over_zero_replaces_the_servers() {
    let mut file = fixture_grant_response();
    file.links.push(Link {
        name: "my-link-2".into(),
        cost: 7,
        ..file.links[0].clone()
    });
    file.apply_link_cost(0);
    let costs = |f: &LinkFile| f.links.iter().map(|l| l.cost).collect::<Vec<_>>();
    assert_eq!(costs(&file), [0, 7]);
    file.apply_link_cost(fixture_access_token().link_cost);
    assert_eq!(costs(&file), [1, 1]);
}

// ---------------------------------------------------------------------------
// One entry point for every token file

#[test]
fn token_file_reads_every_generation() {
    assert_eq!(
        TokenFile::decode(ACCESS_TOKEN.as_bytes()),
        Ok(TokenFile::AccessToken(fixture_access_token()))
    );
    assert_eq!(
        TokenFile::decode(LINK_GENERATE.as_bytes()),
        Ok(TokenFile::LinkFile(fixture_link_generate()))
    );
    assert_eq!(
        TokenFile::decode(GRANT_RESPONSE.as_bytes()),
        Ok(TokenFile::LinkFile(fixture_grant_response()))
    );
    let claim = Token::decode(V1_CLAIM.as_bytes()).unwrap();
    assert_eq!(
        TokenFile::decode(V1_CLAIM.as_bytes()),
        Ok(TokenFile::V1(claim))
    );
    let cert = v1_cert_token();
    assert_eq!(
        TokenFile::decode(cert.as_bytes()),
        Ok(TokenFile::V1(Token::decode(cert.as_bytes()).unwrap()))
    );
    // encode writes each in its own layout.
    assert_eq!(
        TokenFile::decode(ACCESS_TOKEN.as_bytes()).unwrap().encode(),
        ACCESS_TOKEN
    );
    assert_eq!(
        TokenFile::decode(LINK_GENERATE.as_bytes())
            .unwrap()
            .encode(),
        LINK_GENERATE
    );
    assert_eq!(
        TokenFile::decode(V1_CLAIM.as_bytes()).unwrap().encode(),
        V1_CLAIM
    );
}

#[test]
fn token_decode_still_reads_only_1x() {
    for file in [ACCESS_TOKEN, LINK_GENERATE, GRANT_RESPONSE] {
        assert!(
            matches!(
                Token::decode(file.as_bytes()),
                Err(DecodeError::SkupperV2 { .. })
            ),
            "{file}"
        );
    }
}

#[test]
fn token_file_keeps_the_1x_errors() {
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n";
    assert_eq!(
        TokenFile::decode(config_map.as_bytes()),
        Err(DecodeError::NotASkupperToken {
            kind: Some("ConfigMap".into()),
            type_label: None
        })
    );
    let two = format!("{V1_CLAIM}---\n{V1_CLAIM}");
    assert_eq!(
        TokenFile::decode(two.as_bytes()),
        Err(DecodeError::MultipleDocuments { count: 2 })
    );
    let missing = damage(V1_CLAIM, "  password: ", "  passwd: ");
    assert_eq!(
        TokenFile::decode(missing.as_bytes()),
        Err(DecodeError::MissingField {
            field: "password".into()
        })
    );
    assert_eq!(
        TokenFile::decode(b"  \n"),
        Err(DecodeError::NotYaml {
            reason: "the input is empty".into()
        })
    );
}

#[test]
fn an_access_grant_is_not_a_token() {
    let grant = "apiVersion: skupper.io/v2alpha1\nkind: AccessGrant\nmetadata:\n  name: grant1\nspec:\n  code: qDjNTlhWXkVbesDnBcqs3vQi\n  expirationWindow: 15m\n  redemptionsAllowed: 1\n";
    let err = TokenFile::decode(grant.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        DecodeError::AccessGrant {
            name: Some("grant1".into())
        }
    );
    assert_eq!(
        err.to_string(),
        "this is a Skupper 2.x AccessGrant \"grant1\", the issuing site's record of the access it grants, not a token: another site links with the AccessToken issued from it"
    );
    assert!(!err.to_string().contains(CODE));
    assert_eq!(AccessToken::decode(grant.as_bytes()), Err(err));
}

#[test]
fn an_unknown_kind_is_named() {
    let site = "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\n";
    let err = TokenFile::decode(site.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        DecodeError::V2UnexpectedKind {
            document: 1,
            api_version: Some("skupper.io/v2alpha1".into()),
            kind: Some("Site".into()),
            expected: "a token file: a Skupper 1.x claim or cert token, a Skupper 2.x AccessToken or a Skupper 2.x Link file",
        }
    );
    assert_eq!(
        err.to_string(),
        "YAML document 1 is kind \"Site\" (apiVersion \"skupper.io/v2alpha1\"), expected a token file: a Skupper 1.x claim or cert token, a Skupper 2.x AccessToken or a Skupper 2.x Link file"
    );
    // In a Link file, after the Link.
    let file = LINK_GENERATE.replacen("---\n", &format!("---\n{site}---\n"), 1);
    assert_eq!(
        TokenFile::decode(file.as_bytes()),
        Err(DecodeError::V2UnexpectedKind {
            document: 2,
            api_version: Some("skupper.io/v2alpha1".into()),
            kind: Some("Site".into()),
            expected: "a Skupper 2.x Link (apiVersion: skupper.io/v2alpha1, kind: Link) or a Secret (apiVersion: v1, kind: Secret)",
        })
    );
    // Another API version of the AccessToken.
    let old = damage(ACCESS_TOKEN, "skupper.io/v2alpha1", "skupper.io/v1alpha1");
    assert_eq!(
        TokenFile::decode(old.as_bytes()),
        Err(DecodeError::V2UnexpectedKind {
            document: 1,
            api_version: Some("skupper.io/v1alpha1".into()),
            kind: Some("AccessToken".into()),
            expected:
                "a Skupper 2.x AccessToken (apiVersion: skupper.io/v2alpha1, kind: AccessToken)",
        })
    );
}

#[test]
fn a_1x_token_given_to_a_2x_decoder_says_what_it_is() {
    let err = AccessToken::decode(V1_CLAIM.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        DecodeError::SkupperV1 {
            kind: "claim",
            expected: "a Skupper 2.x AccessToken"
        }
    );
    assert_eq!(
        err.to_string(),
        "this is a Skupper 1.x claim token (skupper.io/type: token-claim), not a Skupper 2.x AccessToken"
    );
    assert_eq!(
        LinkFile::decode(v1_cert_token().as_bytes()),
        Err(DecodeError::SkupperV1 {
            kind: "cert",
            expected: "a Skupper 2.x Link file"
        })
    );
    assert_eq!(
        LinkFile::decode(V1_CLAIM.as_bytes()),
        Err(DecodeError::SkupperV1 {
            kind: "claim",
            expected: "a Skupper 2.x Link file"
        })
    );
}

#[test]
fn a_file_of_the_other_2x_kind_is_named() {
    assert_eq!(
        access_token_error(LINK_GENERATE),
        DecodeError::V2UnexpectedKind {
            document: 1,
            api_version: Some("skupper.io/v2alpha1".into()),
            kind: Some("Link".into()),
            expected:
                "a Skupper 2.x AccessToken (apiVersion: skupper.io/v2alpha1, kind: AccessToken)",
        }
    );
    assert_eq!(
        link_generate_error(ACCESS_TOKEN),
        DecodeError::V2UnexpectedKind {
            document: 1,
            api_version: Some("skupper.io/v2alpha1".into()),
            kind: Some("AccessToken".into()),
            expected: "a Skupper 2.x Link (apiVersion: skupper.io/v2alpha1, kind: Link) or a Secret (apiVersion: v1, kind: Secret)",
        }
    );
    let two = format!("{ACCESS_TOKEN}---\n{ACCESS_TOKEN}");
    assert_eq!(
        access_token_error(&two),
        DecodeError::V2UnexpectedKind {
            document: 2,
            api_version: Some("skupper.io/v2alpha1".into()),
            kind: Some("AccessToken".into()),
            expected: "nothing after the AccessToken (an AccessToken file holds one document)",
        }
    );
}

// ---------------------------------------------------------------------------
// Damaged AccessTokens

#[test]
fn an_access_token_without_a_code_is_refused() {
    let missing = damage(ACCESS_TOKEN, &format!("  code: {CODE}\n"), "");
    let err = access_token_error(&missing);
    assert_eq!(
        err,
        DecodeError::V2MissingField {
            resource: "AccessToken \"grant1\"".into(),
            field: "spec.code".into()
        }
    );
    assert_eq!(err.to_string(), "AccessToken \"grant1\" has no spec.code");
    // Empty or null is as good as missing.
    for value in ["\"\"", "null", "~"] {
        let empty = damage(ACCESS_TOKEN, CODE, value);
        assert_eq!(access_token_error(&empty), err, "{value}");
    }
    // The same through the entry point.
    assert_eq!(TokenFile::decode(missing.as_bytes()), Err(err));
}

#[test]
fn any_code_skupper_accepts_is_read() {
    // Skupper posts the code as it is; only this crate's codes are
    // 24 characters from [a-zA-Z0-9].
    for (yaml, code) in [
        ("short", "short"),
        ("\"123456\"", "123456"),
        ("\"with space and é\"", "with space and é"),
    ] {
        let text = damage(ACCESS_TOKEN, CODE, yaml);
        assert_eq!(
            AccessToken::decode(text.as_bytes()).map(|t| t.code),
            Ok(AccessCode::from(code))
        );
    }
}

#[test]
fn access_token_fields_are_checked() {
    let resource = || "AccessToken \"grant1\"".to_owned();
    let bad = |field: &str, problem: &str| DecodeError::V2BadField {
        resource: resource(),
        field: field.into(),
        problem: problem.into(),
    };
    let http = damage(ACCESS_TOKEN, "url: https://", "url: http://");
    assert_eq!(
        access_token_error(&http),
        bad(
            "spec.url",
            "is not https://<host>:<port>/<grant id>: \"http://127.0.0.1:21461/035a7829-c135-423b-94aa-46f08d5d5822\""
        )
    );
    let no_grant_id = damage(ACCESS_TOKEN, "/035a7829-c135-423b-94aa-46f08d5d5822", "");
    assert_eq!(
        access_token_error(&no_grant_id),
        bad(
            "spec.url",
            "is not https://<host>:<port>/<grant id>: \"https://127.0.0.1:21461\""
        )
    );
    let bad_port = damage(ACCESS_TOKEN, ":21461/", ":99999/");
    assert!(matches!(
        access_token_error(&bad_port),
        DecodeError::V2BadField { field, .. } if field == "spec.url"
    ));
    for (value, problem) in [
        ("-1", "is negative: a cost is 0 or more"),
        ("abc", "is not a whole number from 0 to 4294967295: \"abc\""),
        ("1.5", "is not a whole number from 0 to 4294967295: \"1.5\""),
        ("4294967296", "is over 4294967295: \"4294967296\""),
    ] {
        let text = damage(ACCESS_TOKEN, "linkCost: 1", &format!("linkCost: {value}"));
        assert_eq!(
            access_token_error(&text),
            bad("spec.linkCost", problem),
            "{value}"
        );
    }
    // A key where the CA should be.
    let ca_start = ACCESS_TOKEN.find("  ca: |\n").unwrap();
    let ca_end = ACCESS_TOKEN.find("  code: ").unwrap();
    let key = TLS_KEY
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>();
    let text = format!(
        "{}  ca: |\n{key}{}",
        &ACCESS_TOKEN[..ca_start],
        &ACCESS_TOKEN[ca_end..]
    );
    let err = access_token_error(&text);
    assert_eq!(
        err,
        bad(
            "spec.ca",
            "is not valid PEM: found a RSA PRIVATE KEY block, expected CERTIFICATE"
        )
    );
    assert_eq!(
        err.to_string(),
        "AccessToken \"grant1\": spec.ca is not valid PEM: found a RSA PRIVATE KEY block, expected CERTIFICATE"
    );
    let not_x509 = format!(
        "{}  ca: |\n    -----BEGIN CERTIFICATE-----\n    MAMCAQA=\n    -----END CERTIFICATE-----\n{}",
        &ACCESS_TOKEN[..ca_start],
        &ACCESS_TOKEN[ca_end..]
    );
    assert!(matches!(
        access_token_error(&not_x509),
        DecodeError::V2BadField { field, problem, .. }
            if field == "spec.ca" && problem.starts_with("holds a CERTIFICATE block that is not a valid X.509 certificate: ")
    ));
    let no_name = damage(ACCESS_TOKEN, "metadata:\n  name: grant1\n", "");
    assert_eq!(
        access_token_error(&no_name),
        DecodeError::V2MissingField {
            resource: "AccessToken".into(),
            field: "metadata.name".into()
        }
    );
    let no_spec = &ACCESS_TOKEN[..ACCESS_TOKEN.find("spec:").unwrap()];
    assert_eq!(
        access_token_error(no_spec),
        DecodeError::V2MissingField {
            resource: resource(),
            field: "spec".into()
        }
    );
}

#[test]
fn oversized_and_non_yaml_input_is_refused() {
    let mut big = ACCESS_TOKEN.as_bytes().to_vec();
    big.resize(MAX_TOKEN_BYTES + 1, b'\n');
    let too_large = DecodeError::TooLarge {
        len: MAX_TOKEN_BYTES + 1,
        max: MAX_TOKEN_BYTES,
    };
    assert_eq!(AccessToken::decode(&big), Err(too_large.clone()));
    assert_eq!(LinkFile::decode(&big), Err(too_large.clone()));
    assert_eq!(TokenFile::decode(&big), Err(too_large));
    let broken = format!("{ACCESS_TOKEN}  code: [{CODE}\n");
    let err = access_token_error(&broken);
    assert!(matches!(err, DecodeError::NotYaml { .. }), "{err:?}");
    assert!(!err.to_string().contains(CODE), "{err}");
}

// ---------------------------------------------------------------------------
// Damaged Link files

const LINK_RESOURCE: &str = "Link \"mylink-skupper-router\" (YAML document 1)";
const SECRET_RESOURCE: &str = "Secret \"mylink\" (YAML document 2)";

#[test]
fn a_bad_port_is_named_with_its_endpoint() {
    for (value, shown) in [("\"70000\"", "70000"), ("\"0\"", "0"), ("http", "http")] {
        let text = damage(LINK_GENERATE, "port: \"21463\"", &format!("port: {value}"));
        let err = link_generate_error(&text);
        assert_eq!(
            err,
            DecodeError::V2BadField {
                resource: LINK_RESOURCE.into(),
                field: "spec.endpoints[1].port".into(),
                problem: format!("is not a port number (1-65535): {shown:?}"),
            }
        );
    }
    let err = link_generate_error(&damage(LINK_GENERATE, "port: \"21462\"", "port: \"x\""));
    assert_eq!(
        err.to_string(),
        "Link \"mylink-skupper-router\" (YAML document 1): spec.endpoints[0].port is not a port number (1-65535): \"x\""
    );
    // A port written as a number is read as one.
    let plain = damage(LINK_GENERATE, "port: \"21462\"", "port: 21462");
    assert_eq!(
        LinkFile::decode(plain.as_bytes()),
        Ok(fixture_link_generate())
    );
    let no_port = damage(LINK_GENERATE, "    port: \"21462\"\n", "");
    assert_eq!(
        link_generate_error(&no_port),
        DecodeError::V2MissingField {
            resource: LINK_RESOURCE.into(),
            field: "spec.endpoints[0].port".into()
        }
    );
    let no_host = damage(LINK_GENERATE, "    host: 127.0.0.1\n", "");
    assert_eq!(
        link_generate_error(&no_host),
        DecodeError::V2MissingField {
            resource: LINK_RESOURCE.into(),
            field: "spec.endpoints[0].host".into()
        }
    );
}

#[test]
fn a_link_without_endpoints_is_refused() {
    let start = LINK_GENERATE.find("  endpoints:\n").unwrap();
    let end = LINK_GENERATE.find("  tlsCredentials:").unwrap();
    let without = format!("{}{}", &LINK_GENERATE[..start], &LINK_GENERATE[end..]);
    let err = link_generate_error(&without);
    assert_eq!(
        err,
        DecodeError::V2MissingField {
            resource: LINK_RESOURCE.into(),
            field: "spec.endpoints".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "Link \"mylink-skupper-router\" (YAML document 1) has no spec.endpoints"
    );
    let empty = format!(
        "{}  endpoints: []\n{}",
        &LINK_GENERATE[..start],
        &LINK_GENERATE[end..]
    );
    assert_eq!(link_generate_error(&empty), err);
}

#[test]
fn a_link_file_without_its_secret_is_refused() {
    let links_only = &LINK_GENERATE[..LINK_GENERATE.find("---\n").unwrap()];
    let err = link_generate_error(links_only);
    assert_eq!(
        err,
        DecodeError::V2SecretMissing {
            tls_credentials: "mylink".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "the Link file has no Secret: its Links take their certificate from the Secret \"mylink\" (spec.tlsCredentials), which the file must hold"
    );
    assert_eq!(TokenFile::decode(links_only.as_bytes()), Err(err));
    // A Secret alone, and two Secrets.
    let secret_only = &LINK_GENERATE[LINK_GENERATE.find("---\n").unwrap()..];
    assert_eq!(link_generate_error(secret_only), DecodeError::V2NoLinks);
    let two = format!("{LINK_GENERATE}---\n{secret_only}");
    assert_eq!(
        link_generate_error(&two),
        DecodeError::V2SeveralSecrets { count: 2 }
    );
}

#[test]
fn links_must_name_the_files_secret() {
    let other = damage(
        LINK_GENERATE,
        "tlsCredentials: mylink",
        "tlsCredentials: other",
    );
    assert_eq!(
        link_generate_error(&other),
        DecodeError::V2BadField {
            resource: LINK_RESOURCE.into(),
            field: "spec.tlsCredentials".into(),
            problem: "names the Secret \"other\", but the file's Secret is \"mylink\"".into(),
        }
    );
    let none = damage(LINK_GENERATE, "  tlsCredentials: mylink\n", "");
    assert_eq!(
        link_generate_error(&none),
        DecodeError::V2MissingField {
            resource: LINK_RESOURCE.into(),
            field: "spec.tlsCredentials".into()
        }
    );
    // Two Links of one name.
    let link = &LINK_GENERATE[..LINK_GENERATE.find("---\n").unwrap()];
    let twice = format!("{link}---\n{LINK_GENERATE}");
    assert_eq!(
        link_generate_error(&twice),
        DecodeError::V2DuplicateLink {
            name: "mylink-skupper-router".into()
        }
    );
}

#[test]
fn bad_secret_data_is_named_with_its_field() {
    let text = damage(
        LINK_GENERATE,
        "  tls.key: LS0tLS1CRUdJTiBSU0Eg",
        "  tls.key: LS0tLS1CRUdJTiBSU0Eg!!",
    );
    let err = link_generate_error(&text);
    assert_eq!(
        err,
        DecodeError::V2BadField {
            resource: SECRET_RESOURCE.into(),
            field: "data.tls.key".into(),
            problem: "is not valid base64: Invalid symbol 33, offset 20.".into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "Secret \"mylink\" (YAML document 2): data.tls.key is not valid base64: Invalid symbol 33, offset 20."
    );
    // A certificate where the key should be.
    let crt_b64 = LINK_GENERATE
        .lines()
        .find_map(|l| l.strip_prefix("  tls.crt: "))
        .unwrap();
    let key_b64 = LINK_GENERATE
        .lines()
        .find_map(|l| l.strip_prefix("  tls.key: "))
        .unwrap();
    let swapped = damage(LINK_GENERATE, key_b64, crt_b64);
    assert_eq!(
        link_generate_error(&swapped),
        DecodeError::V2BadField {
            resource: SECRET_RESOURCE.into(),
            field: "data.tls.key".into(),
            problem: "is not valid PEM: found a CERTIFICATE block, expected PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY".into(),
        }
    );
    let no_ca = damage(LINK_GENERATE, "  ca.crt: ", "  ca.pem: ");
    assert_eq!(
        link_generate_error(&no_ca),
        DecodeError::V2MissingField {
            resource: SECRET_RESOURCE.into(),
            field: "data.ca.crt".into()
        }
    );
    let not_utf8 = damage(LINK_GENERATE, crt_b64, "/w==");
    assert_eq!(
        link_generate_error(&not_utf8),
        DecodeError::V2BadField {
            resource: SECRET_RESOURCE.into(),
            field: "data.tls.crt".into(),
            problem: "is not UTF-8 text".into(),
        }
    );
}

#[test]
fn link_costs_are_checked() {
    let text = damage(LINK_GENERATE, "  cost: 1\n", "  cost: -3\n");
    assert_eq!(
        link_generate_error(&text),
        DecodeError::V2BadField {
            resource: LINK_RESOURCE.into(),
            field: "spec.cost".into(),
            problem: "is negative: a cost is 0 or more".into(),
        }
    );
}

#[test]
fn empty_documents_are_skipped() {
    let text = format!("---\n{LINK_GENERATE}---\n");
    assert_eq!(
        LinkFile::decode(text.as_bytes()),
        Ok(fixture_link_generate())
    );
}

// ---------------------------------------------------------------------------
// Secrets stay secret

#[test]
fn debug_and_display_never_show_a_code_or_a_key() {
    let token = fixture_access_token();
    let file = fixture_grant_response();
    let key_line = RESPONSE_KEY.lines().nth(5).unwrap();
    assert!(file.secret.key_pem.expose().contains(key_line));
    let shown = [
        format!("{token:?}"),
        format!("{:?}", token.code),
        format!("{}", token.code),
        format!("{file:?}"),
        format!("{:?}", file.secret),
        format!("{}", file.secret.key_pem),
        format!("{:?}", TokenFile::AccessToken(token.clone())),
        format!("{:?}", TokenFile::LinkFile(file.clone())),
    ];
    for text in &shown {
        assert!(!text.contains(CODE), "{text}");
        assert!(!text.contains(key_line), "{text}");
        assert!(!text.contains("PRIVATE KEY-----"), "{text}");
    }
    assert!(
        shown[0].contains("code: AccessCode(<redacted>)"),
        "{}",
        shown[0]
    );
    assert!(
        shown[4].contains("key_pem: SecretPem(<redacted>)"),
        "{}",
        shown[4]
    );
}

#[test]
fn errors_never_show_a_code_or_a_key() {
    let key_b64 = GRANT_RESPONSE
        .lines()
        .find_map(|l| l.strip_prefix("  tls.key: "))
        .unwrap();
    let damaged = [
        damage(ACCESS_TOKEN, "url: https://", "url: ftp://"),
        damage(ACCESS_TOKEN, "linkCost: 1", "linkCost: x"),
        damage(ACCESS_TOKEN, "kind: AccessToken", "kind: AccessTokens"),
        damage(
            ACCESS_TOKEN,
            &format!("code: {CODE}"),
            &format!("code: {{{CODE}"),
        ),
        damage(
            ACCESS_TOKEN,
            &format!("code: {CODE}"),
            &format!("code: [{CODE}]"),
        ),
        damage(GRANT_RESPONSE, key_b64, &key_b64[..key_b64.len() - 9]),
        damage(GRANT_RESPONSE, key_b64, &format!("[{key_b64}")),
        damage(GRANT_RESPONSE, "kind: Link", "kind: Links"),
    ];
    for text in &damaged {
        let err = TokenFile::decode(text.as_bytes()).unwrap_err().to_string();
        assert!(!err.contains(CODE), "{err}");
        assert!(!err.contains(&key_b64[..40]), "{err}");
        assert!(!err.contains(&key_b64[100..140]), "{err}");
    }
}

// ---------------------------------------------------------------------------
// Never a panic, and round trips

#[test]
fn truncation_at_every_offset_never_panics() {
    for file in [ACCESS_TOKEN, LINK_GENERATE, GRANT_RESPONSE] {
        let bytes = file.as_bytes();
        for end in (0..bytes.len()).step_by(3) {
            let _ = TokenFile::decode(&bytes[..end]);
            let _ = TokenFile::decode(&bytes[end..]);
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
        Just("a\nb".to_owned()),
        Just("'\"|>".to_owned()),
    ]
}

/// A non-empty string that is not only "null" in YAML's eyes.
fn name() -> impl Strategy<Value = String> {
    text()
}

fn ca() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(GRANT_SERVER_CA.to_owned()),
        Just(CA.to_owned()),
        Just(format!("{CA}{SITE_CA}")),
        Just(CA.replace('\n', "\r\n")),
        Just(CA.trim_end().to_owned()),
        Just(format!("\n{CA}\n")),
    ]
}

fn access_token() -> impl Strategy<Value = AccessToken> {
    (
        name(),
        ca(),
        prop_oneof!["[a-zA-Z0-9]{24}", ".{1,40}", Just("123456".to_owned())],
        prop_oneof![Just(0u32), Just(1), any::<u32>()],
        (
            "[a-z0-9][a-z0-9.-]{0,20}",
            1u16..=65535,
            "[A-Za-z0-9-]{1,36}(/[a-z0-9-]{1,10})?",
        ),
    )
        .prop_map(
            |(name, ca_pem, code, link_cost, (host, port, path))| AccessToken {
                name,
                ca_pem,
                code: AccessCode::from(code),
                link_cost,
                url: format!("https://{host}:{port}/{path}"),
            },
        )
}

fn endpoint() -> impl Strategy<Value = LinkEndpoint> {
    (
        prop_oneof![
            Just(String::new()),
            Just("inter-router".to_owned()),
            Just("edge".to_owned()),
            text()
        ],
        name(),
        1u16..=65535,
        prop_oneof![Just(String::new()), text()],
    )
        .prop_map(|(name, host, port, group)| LinkEndpoint {
            name,
            host,
            port,
            group,
        })
}

fn link_file() -> impl Strategy<Value = LinkFile> {
    (
        name(),
        proptest::collection::vec(
            (
                proptest::collection::vec(endpoint(), 1..4),
                prop_oneof![Just(0u32), Just(1), any::<u32>()],
                proptest::collection::btree_map(
                    text(),
                    prop_oneof![Just(String::new()), text()],
                    0..3,
                ),
            ),
            1..4,
        ),
        prop_oneof![
            Just((CA, TLS_CRT, TLS_KEY)),
            Just((SITE_CA, GENERATED_CRT, GENERATED_KEY)),
            Just((SITE_CA, RESPONSE_CRT, include_str!("data/pkcs8.key"))),
            Just((CA, TLS_CRT, include_str!("data/ec-sec1.key"))),
        ],
    )
        .prop_map(|(secret_name, links, (ca, crt, key))| LinkFile {
            links: links
                .into_iter()
                .enumerate()
                .map(|(i, (endpoints, cost, settings))| Link {
                    name: format!("{secret_name}-{i}"),
                    endpoints,
                    tls_credentials: secret_name.clone(),
                    cost,
                    settings,
                })
                .collect(),
            secret: TlsSecret {
                name: secret_name,
                ca_pem: ca.to_owned(),
                cert_pem: crt.to_owned(),
                key_pem: SecretPem::new(key),
            },
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn access_tokens_round_trip(token in access_token()) {
        let text = token.encode();
        prop_assert_eq!(AccessToken::decode(text.as_bytes()), Ok(token.clone()));
        prop_assert_eq!(
            TokenFile::decode(text.as_bytes()),
            Ok(TokenFile::AccessToken(token.clone()))
        );
        // Encoding is deterministic.
        prop_assert_eq!(token.encode(), text);
    }

    #[test]
    fn link_files_round_trip(file in link_file()) {
        let generated = file.encode_generated();
        prop_assert_eq!(LinkFile::decode(generated.as_bytes()), Ok(file.clone()));
        prop_assert_eq!(
            TokenFile::decode(generated.as_bytes()),
            Ok(TokenFile::LinkFile(file.clone()))
        );
        let response = file.encode_grant_response();
        prop_assert_eq!(LinkFile::decode(response.as_bytes()), Ok(file.clone()));
        prop_assert_eq!(file.encode_generated(), generated);
    }

    #[test]
    fn mutated_2x_files_never_panic(
        which in 0usize..3,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = [ACCESS_TOKEN, LINK_GENERATE, GRANT_RESPONSE][which].as_bytes().to_vec();
        for (at, byte) in &flips {
            let i = at.index(bytes.len());
            bytes[i] = *byte;
        }
        match TokenFile::decode(&bytes) {
            Ok(TokenFile::AccessToken(t)) => {
                prop_assert_eq!(AccessToken::decode(t.encode().as_bytes()), Ok(t));
            }
            Ok(TokenFile::LinkFile(f)) => {
                prop_assert_eq!(LinkFile::decode(f.encode_generated().as_bytes()), Ok(f));
            }
            Ok(TokenFile::V1(t)) => {
                prop_assert_eq!(Token::decode(t.encode().as_bytes()), Ok(t));
            }
            Err(_) => {}
        }
    }
}
