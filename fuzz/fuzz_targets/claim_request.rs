//! Bytes as HTTP requests to the claims server (method, path, query,
//! headers, body) against a site with a few claims, parsed by hyper and
//! answered by the server's own `ClaimsEndpoint`: every answer is a
//! well-formed response and no claim redeems more often than its uses.
//! Input layout and checks: `skupper_token_fuzz::claims`.
#![no_main]
// fuzz_target! expands to code that uses std::fs (clippy.toml bans it for the core).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = skupper_token_fuzz::claims::check_requests(data);
});
