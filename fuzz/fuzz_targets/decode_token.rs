//! Arbitrary bytes into the token decoders (YAML, base64, PEM, X.509): the
//! Skupper 1.x decoder and the entry point for every generation.
//!
//! Never panics (libFuzzer reports any panic); the entry point reads a 1.x
//! token exactly when the 1.x decoder does, and the same token; a decoded
//! token or 2.x file re-encodes to a file that decodes to the same value,
//! and encoding that value again gives the same bytes.
#![no_main]
// fuzz_target! expands to code that uses std::fs (clippy.toml bans it for the core).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use libfuzzer_sys::fuzz_target;
use skupper_token::token::{CertToken, ClaimToken, Token, TokenFile};
use skupper_token::v2::{AccessToken, LinkFile};

fuzz_target!(|data: &[u8]| {
    let decoded = Token::decode(data);
    // The kind-specific decoders agree with the generic one.
    match &decoded {
        Ok(Token::Claim(t)) => assert_eq!(ClaimToken::decode(data).as_ref(), Ok(t)),
        Ok(Token::Cert(t)) => assert_eq!(CertToken::decode(data).as_ref(), Ok(t)),
        Err(_) => {
            assert!(ClaimToken::decode(data).is_err());
            assert!(CertToken::decode(data).is_err());
        }
    }
    // The entry point for every generation agrees with the 1.x decoder
    // and with the 2.x ones.
    let file = TokenFile::decode(data);
    match (&decoded, &file) {
        (Ok(t), Ok(TokenFile::V1(f))) => assert_eq!(t, f),
        (Ok(_), other) => panic!("a 1.x token that TokenFile::decode reads as {other:?}"),
        (Err(_), Ok(TokenFile::V1(f))) => {
            panic!("TokenFile::decode read {f:?}, Token::decode did not")
        }
        _ => {}
    }
    match file {
        Ok(TokenFile::AccessToken(token)) => {
            assert_eq!(AccessToken::decode(data).as_ref(), Ok(&token));
            let encoded = token.encode();
            let again = AccessToken::decode(encoded.as_bytes()).unwrap_or_else(|e| {
                panic!("a decoded AccessToken re-encodes to a file that does not decode: {e}\n{encoded}")
            });
            assert_eq!(token, again, "decode(encode(token)) != token\n{encoded}");
            assert_eq!(encoded, again.encode(), "encoding is not stable");
        }
        Ok(TokenFile::LinkFile(links)) => {
            assert_eq!(LinkFile::decode(data).as_ref(), Ok(&links));
            for encoded in [links.encode_generated(), links.encode_grant_response()] {
                let again = LinkFile::decode(encoded.as_bytes()).unwrap_or_else(|e| {
                    panic!("a decoded Link file re-encodes to a file that does not decode: {e}\n{encoded}")
                });
                assert_eq!(links, again, "decode(encode(file)) != file\n{encoded}");
            }
        }
        _ => {}
    }
    let Ok(token) = decoded else { return };
    let encoded = token.encode();
    let again = match Token::decode(encoded.as_bytes()) {
        Ok(t) => t,
        Err(e) => {
            panic!("a decoded token re-encodes to a file that does not decode: {e}\n{encoded}")
        }
    };
    assert_eq!(token, again, "decode(encode(token)) != token\n{encoded}");
    assert_eq!(
        encoded,
        again.encode(),
        "encoding is not stable across a round trip"
    );
});
