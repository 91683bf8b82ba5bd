//! Where ECDSA P-256 keys come from and who signs certificates: the
//! expensive half of issuing a certificate, behind one trait.
//!
//! Two scalar multiplications on P-256 (deriving the new key's public point,
//! and the CA's signature) are almost all the work of issuing a cert token.
//! How they are done is a choice with a trade-off:
//!
//! - [`Deterministic`] (the default) is pure Rust. The private scalar is
//!   drawn from the injected [`Random`] and signatures are RFC 6979, so a
//!   seeded run makes byte-identical keys and certificates every time: what
//!   test harnesses and fuzzers need.
//! - A backend built on an optimised library (the CLI ships one on `ring`)
//!   is several times faster, but such libraries take randomness only from
//!   the operating system, so their keys and signatures do not repeat. That
//!   is right for a real site and wrong for a reproducible test.
//!
//! A [`Site`](crate::site::Site) uses [`Deterministic`] unless it is given
//! another backend with
//! [`Site::with_key_backend`](crate::site::Site::with_key_backend).
//!
//! This module is both `skupper_token::keys` and `skupper_token::pki::keys`.
//! It depends only on the key format ([`PrivateKey`]) and the errors
//! ([`PkiError`]) of [`pki`](crate::pki), never on its certificate code; the
//! certificate code (`CaIssuer`) depends on it.

use std::fmt;
use std::sync::Arc;

use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::zeroize::Zeroizing;

use super::error::PkiError;
use super::private_key::{canonical_p256, public_point, PrivateKey};
use crate::random::Random;

/// How many unusable draws in a row from the [`Random`] before giving up
/// (a draw is unusable with probability below 2^-32 for a working generator).
pub(super) const MAX_DRAWS: usize = 16;

/// Makes P-256 keys and loads them for signing.
///
/// Implementations must return keys in the canonical PKCS#8 layout that
/// [`PrivateKey::from_p256_pkcs8`] accepts, and [`KeyBackend::p256_signer`]
/// must refuse a key whose stored public point does not belong to its
/// private scalar.
pub trait KeyBackend: Send + Sync + fmt::Debug {
    /// A short name for messages and benchmarks, e.g. `"p256 (RFC 6979)"`.
    fn name(&self) -> &'static str;

    /// Makes a new P-256 key. Deterministic backends draw the scalar from
    /// `rng`; a backend that takes its randomness from the operating system
    /// may ignore it.
    fn generate_p256(&self, rng: &mut dyn Random) -> Result<PrivateKey, PkiError>;

    /// Loads a P-256 key to sign certificates with. Done once per CA, not
    /// once per certificate.
    fn p256_signer(&self, key: &PrivateKey) -> Result<Arc<dyn P256Signing>, PkiError>;
}

/// A P-256 private key loaded for signing.
pub trait P256Signing: Send + Sync {
    /// ECDSA with SHA-256 over `message`, as a DER `Ecdsa-Sig-Value`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError>;
}

/// The default backend: pure-Rust P-256 (the `p256` crate), scalar from the
/// injected [`Random`], RFC 6979 deterministic signatures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deterministic;

/// The default backend, shared.
pub fn deterministic() -> Arc<dyn KeyBackend> {
    Arc::new(Deterministic)
}

impl KeyBackend for Deterministic {
    fn name(&self) -> &'static str {
        "p256 (RFC 6979, seeded)"
    }

    fn generate_p256(&self, rng: &mut dyn Random) -> Result<PrivateKey, PkiError> {
        let secret = random_p256(rng)?;
        Ok(canonical_p256(&secret))
    }

    fn p256_signer(&self, key: &PrivateKey) -> Result<Arc<dyn P256Signing>, PkiError> {
        let (scalar, point) = key.p256_parts().ok_or_else(|| PkiError::UnsupportedKey {
            algorithm: key.algorithm().into(),
            purpose: "for signing certificates (only ECDSA P-256 keys can issue certificates here)",
        })?;
        let signing = p256::ecdsa::SigningKey::from_slice(scalar).map_err(|_| PkiError::Key {
            reason: "the ECDSA P-256 private scalar is zero or not below the group order".into(),
        })?;
        if public_point(&p256::PublicKey::from(signing.verifying_key())) != point {
            return Err(PkiError::Key {
                reason: "the ECDSA P-256 key's public point does not belong to its private scalar"
                    .into(),
            });
        }
        Ok(Arc::new(DeterministicSigner(signing)))
    }
}

struct DeterministicSigner(p256::ecdsa::SigningKey);

impl P256Signing for DeterministicSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let sig: p256::ecdsa::DerSignature =
            self.0.try_sign(message).map_err(|e| PkiError::Key {
                reason: format!("ECDSA P-256 signing failed: {e}"),
            })?;
        Ok(sig.as_bytes().to_vec())
    }
}

/// Draws a P-256 private scalar from `rng` (rejecting zero and values not
/// below the group order).
pub(crate) fn random_p256(rng: &mut dyn Random) -> Result<p256::SecretKey, PkiError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    for _ in 0..MAX_DRAWS {
        rng.fill(&mut bytes[..]);
        if let Ok(secret) = p256::SecretKey::from_slice(&bytes[..]) {
            return Ok(secret);
        }
    }
    Err(PkiError::BadRandom {
        what: "private key",
        draws: MAX_DRAWS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::private_key::P256_PKCS8_LEN;
    use crate::random::SeededRandom;

    #[test]
    fn seeded_keys_repeat_and_sign_verifiably() {
        let backend = Deterministic;
        let a = backend.generate_p256(&mut SeededRandom::new(7)).unwrap();
        let b = backend.generate_p256(&mut SeededRandom::new(7)).unwrap();
        let c = backend.generate_p256(&mut SeededRandom::new(8)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);

        let signer = backend.p256_signer(&a).unwrap();
        let sig = signer.sign(b"to be signed").unwrap();
        assert_eq!(sig, signer.sign(b"to be signed").unwrap(), "RFC 6979");
        let (_, point) = a.p256_parts().unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
            .verify(b"to be signed", &sig)
            .expect("ring verifies the signature");
    }

    #[test]
    fn refuses_a_key_whose_point_is_not_its_own() {
        let backend = Deterministic;
        let a = backend.generate_p256(&mut SeededRandom::new(1)).unwrap();
        let b = backend.generate_p256(&mut SeededRandom::new(2)).unwrap();
        let (scalar, _) = a.p256_parts().unwrap();
        let (_, point) = b.p256_parts().unwrap();
        let mut point_b = [0u8; 65];
        point_b.copy_from_slice(point);
        let mixed = PrivateKey::assemble_p256(scalar, &point_b);
        let err = backend.p256_signer(&mixed).err().expect("mismatch refused");
        assert!(err.to_string().contains("does not belong"), "{err}");
    }

    #[test]
    fn p256_pkcs8_template_holds_the_scalar_and_point() {
        let secret = random_p256(&mut SeededRandom::new(1)).unwrap();
        let key = canonical_p256(&secret);
        let point = public_point(&secret.public_key());
        assert_eq!(key.pkcs8_der().len(), P256_PKCS8_LEN);
        assert_eq!(&key.pkcs8_der()[36..68], &secret.to_bytes()[..]);
        assert_eq!(&key.pkcs8_der()[73..], &point[..]);
        assert_eq!(point[0], 0x04, "uncompressed point");
        assert_eq!(key.public_key_bytes().unwrap(), point.to_vec());
        assert_eq!(key.p256_parts().unwrap().1, &point[..]);
        // The canonical layout is what the backends' constructor accepts.
        assert_eq!(PrivateKey::from_p256_pkcs8(key.pkcs8_der()).unwrap(), key);
        let mut truncated = key.pkcs8_der().to_vec();
        truncated.pop();
        assert!(PrivateKey::from_p256_pkcs8(&truncated).is_err());
    }
}
