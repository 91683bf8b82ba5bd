//! Arbitrary DER (split into 1-3 chunks, see `split_chain`) as a peer's
//! certificate chain against a fixed site. An accepted chain must verify
//! under the site CA by rustls-webpki too, and must not be revoked.
#![no_main]
// fuzz_target! expands to code that uses std::fs (clippy.toml bans it for the core).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    skupper_token_fuzz::auth::check_chain(data);
});
