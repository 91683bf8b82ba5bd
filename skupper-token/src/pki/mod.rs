//! Certificates and keys for mutual TLS between sites.
//!
//! Every site has its own certificate authority, the *site CA*
//! (`CN=skupper-site-ca`). It issues the site's server certificate and the
//! client certificates that other sites present when they link to it (inside
//! cert tokens, or as the answer to a redeemed claim). Incoming links are
//! authenticated by checking that the peer's certificate was issued by the
//! site CA: see [`PeerVerifier`]. Making a new CA (revoke-access) therefore
//! cuts off every certificate issued before.
//!
//! Keys made here are ECDSA P-256, made and signed by a
//! [`KeyBackend`](keys::KeyBackend). With the default backend the private
//! scalar comes from the injected [`Random`](crate::random::Random) and
//! signatures are deterministic (RFC 6979), so the same seed gives
//! byte-identical certificates; faster backends that use the OS's
//! randomness can be passed instead. Certificates made by real Skupper sites (RSA-2048, SHA-256, with
//! an empty `DNS:` SAN) are read and verified too.
//!
//! Nothing here reads the clock: validity is computed from the `now` passed
//! in, truncated to whole seconds.
//!
//! # Layout
//!
//! One concern per file, and the files depend on each other one way only
//! (each uses only those above it):
//!
//! - `error.rs`: [`PkiError`] and [`AuthError`].
//! - `pem.rs`: PEM blocks, parsing a certificate's DER, hex serials and
//!   fingerprints.
//! - `private_key.rs`: [`PrivateKey`] and the canonical P-256 PKCS#8 layout.
//! - [`keys`]: where keys come from and who signs ([`keys::KeyBackend`]);
//!   it uses the three files above and nothing else here.
//! - `info.rs`: [`certificate_info`], reading a certificate unverified.
//! - `verify.rs`: [`PeerVerifier`], a peer's certificate checked by
//!   rustls-webpki.
//! - `issue.rs`: [`CaIssuer`] and [`CertifiedKey`], making certificates
//!   with the keys a [`keys::KeyBackend`] makes and signs.
//!
//! `keys` is also `skupper_token::keys`. It used to import [`PrivateKey`]
//! and [`PkiError`] from here while the issuing code imported the backends
//! from it; now it sits between the key and certificate layers and the
//! dependency goes one way: issuing depends on `keys`, `keys` on the key
//! format and the errors, and those on nothing in this crate.

mod error;
mod info;
mod issue;
pub mod keys;
mod pem;
mod private_key;
mod verify;

pub use error::{AuthError, PkiError};
pub use info::{certificate_info, CertificateInfo};
pub use issue::{
    CaIssuer, CertifiedKey, BACKDATE, DEFAULT_SERVER_CN, DEFAULT_VALIDITY, SITE_CA_CN,
};
pub use pem::pem_to_der;
pub use private_key::PrivateKey;
pub use verify::{PeerCertificate, PeerVerifier};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shareable_between_threads() {
        fn send_sync<T: Send + Sync + Clone>() {}
        send_sync::<CaIssuer>();
        send_sync::<PeerVerifier>();
        send_sync::<CertifiedKey>();
        send_sync::<PrivateKey>();
    }
}
