//! Skupper 2.x files (made by Skupper's own 2.x code, `tests/data/v2/`)
//! are not tokens this version reads: the error says what the file is, and
//! that Skupper 1.x tokens are what it reads. A file of several YAML
//! documents never gets the YAML library's advice to call another function.

use skupper_token::token::{DecodeError, Token};

const ACCESS_TOKEN: &[u8] = include_bytes!("data/v2/v2-access-token.yaml");
const LINK_GENERATE: &[u8] = include_bytes!("data/v2/v2-link-generate.yaml");
const GRANT_RESPONSE: &[u8] = include_bytes!("data/v2/v2-grant-response.yaml");
const V1_CLAIM: &[u8] = include_bytes!("data/skupper-1.5.2-claim-token.yaml");

const READS_V1: &str = "not a Skupper 1.x token: this version reads only Skupper 1.x claim and cert tokens (Secrets labelled skupper.io/type: token-claim or connection-token)";

#[test]
fn an_access_token_is_named_as_one() {
    let err = Token::decode(ACCESS_TOKEN).unwrap_err();
    assert!(matches!(err, DecodeError::SkupperV2 { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("this is a Skupper 2.x AccessToken (made by 'skupper token issue'; the 1.x counterpart is a claim token), {READS_V1}")
    );
}

#[test]
fn a_link_file_is_named_as_one_whichever_document_comes_first() {
    // `skupper link generate`: the Link, then the Secret.
    let err = Token::decode(LINK_GENERATE).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("this is a Skupper 2.x Link file (1 Link and 1 Secret, as 'skupper link generate' writes it; the 1.x counterpart is a cert token), {READS_V1}")
    );
    // A grant server's answer: the Secret, then the Link.
    let err = Token::decode(GRANT_RESPONSE).unwrap_err();
    assert!(matches!(err, DecodeError::SkupperV2 { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("this is a Skupper 2.x Link file (1 Link and 1 Secret,"),
        "{err}"
    );
}

#[test]
fn a_single_link_or_grant_is_named_too() {
    let link =
        "apiVersion: skupper.io/v2alpha1\nkind: Link\nmetadata:\n  name: l1\nspec:\n  cost: 1\n";
    assert_eq!(
        Token::decode(link.as_bytes()).unwrap_err().to_string(),
        format!("this is a Skupper 2.x Link (the 1.x counterpart is a cert token), {READS_V1}")
    );
    let grant = "apiVersion: skupper.io/v2alpha1\nkind: AccessGrant\nmetadata:\n  name: g1\n";
    assert!(Token::decode(grant.as_bytes())
        .unwrap_err()
        .to_string()
        .starts_with("this is a Skupper 2.x AccessGrant ("));
}

#[test]
fn several_documents_say_so_without_library_advice() {
    let mut two = V1_CLAIM.to_vec();
    two.extend_from_slice(b"---\n");
    two.extend_from_slice(V1_CLAIM);
    let err = Token::decode(&two).unwrap_err();
    assert_eq!(err, DecodeError::MultipleDocuments { count: 2 });
    assert_eq!(
        err.to_string(),
        "the file holds 2 YAML documents; a Skupper token file is one Secret"
    );
    // Several documents that cannot all be read: still no advice to call
    // another function.
    let broken = b"kind: Secret\n---\nkind: [unclosed\n";
    let err = Token::decode(broken).unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("from_str"), "{text}");
    assert!(!text.contains("multidoc"), "{text}");
}

#[test]
fn other_kinds_are_still_refused_as_before() {
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n";
    assert_eq!(
        Token::decode(config_map.as_bytes())
            .unwrap_err()
            .to_string(),
        "Secret is not a valid skupper token (kind is \"ConfigMap\", expected Secret)"
    );
}
