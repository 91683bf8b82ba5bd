//! Encoding writes exactly the Secret layout a Skupper 1.x site writes: keys
//! in alphabetical order at every level, `creationTimestamp: null`, ports as
//! quoted strings, standard padded base64, RFC 3339 expiry without fractional
//! seconds, no `type:` on claim tokens and `type: kubernetes.io/tls` on cert
//! tokens.

use skupper_token::token::*;

const CA: &str = include_str!("data/ca.crt");
const TLS_CRT: &str = include_str!("data/tls.crt");
const TLS_KEY: &str = include_str!("data/tls.key");

fn claim() -> ClaimToken {
    ClaimToken {
        name: "6fe5599e-ae73-11ee-b75a-902e1655a5fe".into(),
        ca_pem: CA.into(),
        password: Password::from("mIfZT0vI1cUBhLsgNfKvY2ua"),
        url: "https://claims.west.example.com:8081/6fe5599e-ae73-11ee-b75a-902e1655a5fe".into(),
        issuer_site_id: "67b7e59e-37aa-4179-8191-077b7a0d90d7".into(),
        issuer_version: "1.9.6".into(),
        expires_at: Some(time::macros::datetime!(2026-11-28 10:15:00 UTC)),
    }
}

fn cert() -> CertToken {
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
            host: "10.0.0.7".into(),
            port: 45671,
        },
    }
}

const EXPECTED_CLAIM: &str = r#"apiVersion: v1
data:
  ca.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJuRENDQVVHZ0F3SUJBZ0lVWUwyUktNT2kvUldYVUZqREdtMkwxTDQ4eGgwd0NnWUlLb1pJemowRUF3SXcKR2pFWU1CWUdBMVVFQXd3UGMydDFjSEJsY2kxemFYUmxMV05oTUNBWERUSTJNVEV5T0RBMk1qRXdPRm9ZRHpJeApNall4TVRBME1EWXlNVEE0V2pBYU1SZ3dGZ1lEVlFRRERBOXphM1Z3Y0dWeUxYTnBkR1V0WTJFd1dUQVRCZ2NxCmhrak9QUUlCQmdncWhrak9QUU1CQndOQ0FBUnk2cmd3Tks5WXBVVmRTS3N5cnRXUFhqc0lzMXJJSjRiSXEvQzUKYXpIeG90QlUrQzJ6S2tKUVRmdnVZdUpnbTYwNklDMFV3a2d5bXhiZVhvalE2K1NEbzJNd1lUQWRCZ05WSFE0RQpGZ1FVMFpVdFJSZ2JHUUhrUTR5Q1F1aWJWS2tRYWNZd0h3WURWUjBqQkJnd0ZvQVUwWlV0UlJnYkdRSGtRNHlDClF1aWJWS2tRYWNZd0R3WURWUjBUQVFIL0JBVXdBd0VCL3pBT0JnTlZIUThCQWY4RUJBTUNBUVl3Q2dZSUtvWkkKemowRUF3SURTUUF3UmdJaEFMVmdMNGlVRWFndngwVDl1RCt3M3hMdFh0L05ENUlnZWxQUHRub2RUTnByQWlFQQoxcEYzSldxZnVpVkxzYk11bk1qOU8yYXE5OWdLcFp2TjNkcDBCdWlndUF3PQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==
  password: bUlmWlQwdkkxY1VCaExzZ05mS3ZZMnVh
kind: Secret
metadata:
  annotations:
    skupper.io/claim-expiration: "2026-11-28T10:15:00Z"
    skupper.io/generated-by: 67b7e59e-37aa-4179-8191-077b7a0d90d7
    skupper.io/site-version: 1.9.6
    skupper.io/url: https://claims.west.example.com:8081/6fe5599e-ae73-11ee-b75a-902e1655a5fe
  creationTimestamp: null
  labels:
    skupper.io/type: token-claim
  name: 6fe5599e-ae73-11ee-b75a-902e1655a5fe
"#;

const EXPECTED_CERT: &str = r#"apiVersion: v1
data:
  ca.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJuRENDQVVHZ0F3SUJBZ0lVWUwyUktNT2kvUldYVUZqREdtMkwxTDQ4eGgwd0NnWUlLb1pJemowRUF3SXcKR2pFWU1CWUdBMVVFQXd3UGMydDFjSEJsY2kxemFYUmxMV05oTUNBWERUSTJNVEV5T0RBMk1qRXdPRm9ZRHpJeApNall4TVRBME1EWXlNVEE0V2pBYU1SZ3dGZ1lEVlFRRERBOXphM1Z3Y0dWeUxYTnBkR1V0WTJFd1dUQVRCZ2NxCmhrak9QUUlCQmdncWhrak9QUU1CQndOQ0FBUnk2cmd3Tks5WXBVVmRTS3N5cnRXUFhqc0lzMXJJSjRiSXEvQzUKYXpIeG90QlUrQzJ6S2tKUVRmdnVZdUpnbTYwNklDMFV3a2d5bXhiZVhvalE2K1NEbzJNd1lUQWRCZ05WSFE0RQpGZ1FVMFpVdFJSZ2JHUUhrUTR5Q1F1aWJWS2tRYWNZd0h3WURWUjBqQkJnd0ZvQVUwWlV0UlJnYkdRSGtRNHlDClF1aWJWS2tRYWNZd0R3WURWUjBUQVFIL0JBVXdBd0VCL3pBT0JnTlZIUThCQWY4RUJBTUNBUVl3Q2dZSUtvWkkKemowRUF3SURTUUF3UmdJaEFMVmdMNGlVRWFndngwVDl1RCt3M3hMdFh0L05ENUlnZWxQUHRub2RUTnByQWlFQQoxcEYzSldxZnVpVkxzYk11bk1qOU8yYXE5OWdLcFp2TjNkcDBCdWlndUF3PQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==
  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUNjVENDQWhlZ0F3SUJBZ0lVT1RlSWlGRzdFRU1BbGhQd05VaWFSb1p2VHcwd0NnWUlLb1pJemowRUF3SXcKR2pFWU1CWUdBMVVFQXd3UGMydDFjSEJsY2kxemFYUmxMV05oTUNBWERUSTJNVEV5T0RBMk1qRXdPVm9ZRHpJeApNall4TVRBME1EWXlNVEE1V2pBUE1RMHdDd1lEVlFRRERBUmxZWE4wTUlJQklqQU5CZ2txaGtpRzl3MEJBUUVGCkFBT0NBUThBTUlJQkNnS0NBUUVBb3Z1UUxKc3hnNFFDeGJXTHhJaDJ4aGFyeGlVM0xsT2lJcERVTUwvdmROR2gKTmluQzlRcTFENkd5Z3huN0toZDdCdndMcmwxOFlJV2N3MTFYVjdiK2M4T0tSRDRUTHhFNzNXYStHKzdVMENMTApaN2xhNjc5UkNYUk1ITS95elYwTTQ4YVhrV2M1dHRoNkZJV2JvMzRYUXNsZlpyb3pSMWh0OVNVSjNiYWtBYkpMCktWMDFaNDhZZGl3Z0UwKzZvVmtuVThKUmxsLzl0UnEzaXJwU1pnWVV0QkpJQm1odjVwY0ZzL3hDY0I1a3hvTW0KTTVDQUdWMFZaN08xUzc5SkJpS3J3MzRxckRibnJhMVJ3MlRZL0lwZHNXa3NyYkdlY2NYNnRMTU0xVVg2R2pySgpvOUk3NzBRZTNoZWVwazRpelg5WVdONjRuS1VZaHp1RGhOTldoOE9EZXdJREFRQUJvM2t3ZHpBSkJnTlZIUk1FCkFqQUFNQXNHQTFVZER3UUVBd0lGb0RBZEJnTlZIU1VFRmpBVUJnZ3JCZ0VGQlFjREFRWUlLd1lCQlFVSEF3SXcKSFFZRFZSME9CQllFRkIvRWpicXZQVmNQWldraXRXbFNQTkQ5YnFsUU1COEdBMVVkSXdRWU1CYUFGTkdWTFVVWQpHeGtCNUVPTWdrTG9tMVNwRUduR01Bb0dDQ3FHU000OUJBTUNBMGdBTUVVQ0lCa0ZuRVhYNmxaWG9uNTRlQ2RtCjRYZDVkUnFKdk9GSHJqZUxSOTlPYVErQkFpRUFxaEp5RGhRTXY1MDU4ZnYvbS9NQnM0SEIwV1RKdXU1WllwQngKMkc0am5RUT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
  tls.key: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFb3dJQkFBS0NBUUVBb3Z1UUxKc3hnNFFDeGJXTHhJaDJ4aGFyeGlVM0xsT2lJcERVTUwvdmROR2hOaW5DCjlRcTFENkd5Z3huN0toZDdCdndMcmwxOFlJV2N3MTFYVjdiK2M4T0tSRDRUTHhFNzNXYStHKzdVMENMTFo3bGEKNjc5UkNYUk1ITS95elYwTTQ4YVhrV2M1dHRoNkZJV2JvMzRYUXNsZlpyb3pSMWh0OVNVSjNiYWtBYkpMS1YwMQpaNDhZZGl3Z0UwKzZvVmtuVThKUmxsLzl0UnEzaXJwU1pnWVV0QkpJQm1odjVwY0ZzL3hDY0I1a3hvTW1NNUNBCkdWMFZaN08xUzc5SkJpS3J3MzRxckRibnJhMVJ3MlRZL0lwZHNXa3NyYkdlY2NYNnRMTU0xVVg2R2pySm85STcKNzBRZTNoZWVwazRpelg5WVdONjRuS1VZaHp1RGhOTldoOE9EZXdJREFRQUJBb0lCQUFacTJsdnZSbTFUd3RvdgpFbEJNUVVUK2VvZ0VTaDV3VzVkNTFXa1AvYWsvWWRZa29kRU5PV0Rpc0lrNStpcEhuMmdBZjZNL2VoakEyaEhWCk9JMnpIbVRIZzhlNUcvOUQ4ZlAvU2lnR2FPbkRIUGc2RTZycHJ4S3N1aHgrVWFTbGI4NytNRlNnMkdSck5LOWYKTFdnc0hGVmNZWDNGZ2lSaWhuM2JGZjdkWktyT1hzSjRUZFRESVVhMU1hRUFiOG5tRnNyQUxCRWVVSk5KQW5naQo3ZTdWU0dnWlRBdWM3WW92aVdLc3g0Vm8wVFFXVkdWaWhZTE84ekJEWUlHQTA0Z0dhZ05saHd2bmdqMFNkczV6CnBXSERqcUpPaEtGL05SOGpoOXpwTGIwUWhlenJldUhSNTZpZ0kvUi9XWmRlSFZhM1BTUElxWmdJRW1IN0JxS1oKTkJUVWVEMENnWUVBM3ZidUVTRVN5N2JaY0s4L0h2cDdKRFN0U1VoODl1VWRHTXBiWHgzZFdLUHR0WHo5MmhyMAplQ0RTY3lYZEdEZzdLSkk1eFFFQTcrZ2JJMzk4MDN3SE9VZ1J4dTR1VjE5dnRlNU1FNTR3THB5UzBqWXVSTHROCkYyNzc4NGs4aEY3Smt5OXNBcHErTHgxOFB4eGlSTE9yb0VHSmhic3I4ZW9oRmVOUTZiNW15OThDZ1lFQXV5R0QKWmoyUGwycG43bXFuMFhBRXlGdW1sY3JNWTNYblVyN1g0QUtMaFFRRkFyOUpvandHL2RyRi9VMSt5NWtYWWJVVwp3T3BoelM4dThFRGtkVnNXMUpETVU3bzFZL1BrMU83K2YzeTNHWjNzb1ppRDFhOTJqbWhpS2YweE1WWHFLZm1CCk5jRjRpU2o5ay9LRFlqVys1bmV1V050MGNuTiszTWRGOFBtRmUrVUNnWUF5by9qOFVQdTQ0eVhOenkvUjlHZ2wKbUFWSG9Md3BRMjV4WS95T3hQU3lIa0Z1T0I1Yi9FVk1SNEFsQVJPUFhhNHFEOVFwSjRvejh3Nis2RVRNcjkzZwpKN3RKNkcwRUVUd0pJVCtNTVNDV1paOS9PU2tYR1Vkd0xCZnpmMWNNWlk3NDdBdG5LQWhNSVRGSUVFVk5mMVZhCng2ZlpoT0o5Um9VUE9KcjNDL1RERndLQmdRQ2pnNnMvd1hjaFJkYy9HMjg4c1BkYzQ4anlodHlGNUZhWGxTOHAKRE5CQkVMd1lKSElCRXhiQTUxT3QvUE5Za0pNL3kyN3diMTI2WHdwUzRVRS8wckptVjRoVGVSaUNHSEhTSm11MwpscENnRDhEZmkxZFhkeFRQWnlLdnNoQTBIZkNaY08yWXZVL0gra3RwNWJVc01lNTNrQWlHbUd4dVBjR1N4WVcyCkJUTEFpUUtCZ0NZdlZtOHlIQjk4OFliUjVkMllEMTNqVE5EYWVTZWJESUZBWllhL09ndTZxaE1BTGZ6OG5zWVcKc0RBcEdHOVpJS2pwZHU3NWFmMFc4ZVE2V0ZaTVVWR1lMbGN1WW8wMHFWR0VNNkpkU1FUclhXQy9aRENWTFVPZgpod1dvOEgxQVNvUUFuVy9LUHRVOUFrZXp0R2d5NTM4dWNqTFhrWmZXRHROWGdTOGo0UUZDCi0tLS0tRU5EIFJTQSBQUklWQVRFIEtFWS0tLS0tCg==
kind: Secret
metadata:
  annotations:
    edge-host: 10.0.0.7
    edge-port: "45671"
    inter-router-host: west.example.com
    inter-router-port: "55671"
    skupper.io/generated-by: 67b7e59e-37aa-4179-8191-077b7a0d90d7
    skupper.io/site-version: 1.9.6
  creationTimestamp: null
  labels:
    skupper.io/type: connection-token
  name: skupper
type: kubernetes.io/tls
"#;

#[test]
fn claim_token_is_wire_exact() {
    assert_eq!(claim().encode(), EXPECTED_CLAIM);
    assert_eq!(Token::Claim(claim()).encode(), EXPECTED_CLAIM);
}

#[test]
fn cert_token_is_wire_exact() {
    assert_eq!(cert().encode(), EXPECTED_CERT);
    assert_eq!(Token::Cert(cert()).encode(), EXPECTED_CERT);
}

#[test]
fn encoded_tokens_decode_to_themselves() {
    assert_eq!(ClaimToken::decode(EXPECTED_CLAIM.as_bytes()), Ok(claim()));
    assert_eq!(CertToken::decode(EXPECTED_CERT.as_bytes()), Ok(cert()));
    assert_eq!(
        Token::decode(EXPECTED_CLAIM.as_bytes()),
        Ok(Token::Claim(claim()))
    );
    assert_eq!(
        Token::decode(EXPECTED_CERT.as_bytes()),
        Ok(Token::Cert(cert()))
    );
}

#[test]
fn base64_fields_are_standard_padded_base64_of_the_pem() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let text = cert().encode();
    assert!(text.contains(&format!("  ca.crt: {}\n", b64(CA))));
    assert!(text.contains(&format!("  tls.crt: {}\n", b64(TLS_CRT))));
    assert!(text.contains(&format!("  tls.key: {}\n", b64(TLS_KEY))));
    let text = claim().encode();
    assert!(text.contains("  password: bUlmWlQwdkkxY1VCaExzZ05mS3ZZMnVh\n"));
}

#[test]
fn no_expiry_means_no_annotation() {
    let mut t = claim();
    t.expires_at = None;
    let text = t.encode();
    assert!(!text.contains("claim-expiration"));
    assert_eq!(
        text,
        EXPECTED_CLAIM.replace(
            "    skupper.io/claim-expiration: \"2026-11-28T10:15:00Z\"\n",
            ""
        )
    );
    assert_eq!(ClaimToken::decode(text.as_bytes()), Ok(t));
}

#[test]
fn expiry_is_written_in_utc_whole_seconds() {
    let mut t = claim();
    t.expires_at = Some(time::macros::datetime!(2026-11-28 11:15:00.987654321 +01:00));
    assert_eq!(t.encode(), EXPECTED_CLAIM);
}

#[test]
fn empty_version_is_not_written() {
    let mut t = cert();
    t.issuer_version = String::new();
    let text = t.encode();
    assert!(!text.contains("site-version"));
    assert_eq!(CertToken::decode(text.as_bytes()), Ok(t));
}

#[test]
fn user_text_is_quoted_safely() {
    let mut t = cert();
    t.name = "my token: \"west\" # 1\nsecond line".into();
    t.issuer_site_id = "yes".into();
    t.issuer_version = "1.10".into();
    t.edge.host = "- not a list".into();
    t.inter_router.host = "fd00::7".into();
    let text = t.encode();
    assert!(
        text.contains("  name: \"my token: \\\"west\\\" # 1\\u000Asecond line\"\n"),
        "{text}"
    );
    assert!(text.contains("    skupper.io/generated-by: \"yes\"\n"));
    assert!(text.contains("    skupper.io/site-version: \"1.10\"\n"));
    assert_eq!(CertToken::decode(text.as_bytes()), Ok(t));
}
