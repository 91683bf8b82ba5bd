//! Arbitrary bytes into the token decoder (YAML, base64, PEM, X.509).
//!
//! Never panics (libFuzzer reports any panic), and a decoded token
//! re-encodes to a file that decodes to the same value; encoding that value
//! again gives the same bytes.
#![no_main]
// fuzz_target! expands to code that uses std::fs (clippy.toml bans it for the core).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use libfuzzer_sys::fuzz_target;
use skupper_token::token::{CertToken, ClaimToken, Token};

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
