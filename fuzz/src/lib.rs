//! Shared code of the skupper-token fuzz targets: the fixed site the
//! `authenticate_peer` target checks chains against, the independent
//! (rustls-webpki) verifier, the claims site and request builder of
//! `claim_request`, and the `ops` model. The targets in
//! `fuzz_targets/` are thin shims over this crate, so the same code also
//! runs in `cargo test` (see `tests/`) and writes the seed corpus
//! (`examples/make_corpus.rs`).

pub mod auth;
pub mod claims;
pub mod ops;

use time::macros::datetime;
use time::OffsetDateTime;

/// When the fixed sites are created.
pub const START: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);
