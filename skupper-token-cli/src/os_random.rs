//! The operating system's random source, as the core's [`Random`], and the
//! key backend that goes with it.
//!
//! The core crate takes its randomness as an argument (a `&mut dyn Random`)
//! so that tests can repeat exactly. Real sites pass [`OsRandom`]: claim
//! passwords, claim names and serial numbers all come from it. Keys and
//! signatures come from [`RingKeys`], which draws from the same OS source
//! through `ring` and is several times faster than the core's seeded
//! default.

use std::sync::Arc;

use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use skupper_token::keys::{KeyBackend, P256Signing};
use skupper_token::pki::{PkiError, PrivateKey};
use skupper_token::random::Random;

/// The OS CSPRNG (`getrandom` on Linux), through `ring`.
#[derive(Debug, Clone)]
pub struct OsRandom(SystemRandom);

impl OsRandom {
    /// The OS random source. Cheap: it holds no state.
    pub fn new() -> OsRandom {
        OsRandom(SystemRandom::new())
    }
}

impl Default for OsRandom {
    fn default() -> Self {
        OsRandom::new()
    }
}

impl Random for OsRandom {
    /// Fills `dest` from the OS.
    ///
    /// # Panics
    ///
    /// If the OS random source fails. On the systems `ring` supports that
    /// happens only when the kernel cannot provide randomness at all;
    /// continuing would mean issuing keys and passwords that are not
    /// random, so stopping is the safe direction.
    fn fill(&mut self, dest: &mut [u8]) {
        self.0
            .fill(dest)
            .expect("the operating system's random source failed: refusing to make keys or passwords without it");
    }
}

/// ECDSA P-256 keys made and used by `ring`, with randomness from the
/// operating system: the key backend of every site the CLI opens.
///
/// `ring` takes randomness only from the OS, so the `Random` passed to
/// [`KeyBackend::generate_p256`] is not used and keys do not repeat under a
/// seed (harnesses that need that keep the core's default backend).
#[derive(Debug, Clone)]
pub struct RingKeys(SystemRandom);

impl RingKeys {
    /// The backend, shareable between sites and threads.
    pub fn shared() -> Arc<dyn KeyBackend> {
        Arc::new(RingKeys(SystemRandom::new()))
    }
}

impl KeyBackend for RingKeys {
    fn name(&self) -> &'static str {
        "ring (OS random)"
    }

    fn generate_p256(&self, _rng: &mut dyn Random) -> Result<PrivateKey, PkiError> {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.0).map_err(
            |_| PkiError::Key {
                reason: "ring could not make an ECDSA P-256 key (the OS random source failed)"
                    .into(),
            },
        )?;
        PrivateKey::from_p256_pkcs8(doc.as_ref())
    }

    fn p256_signer(&self, key: &PrivateKey) -> Result<Arc<dyn P256Signing>, PkiError> {
        // ring checks that the public point belongs to the scalar.
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key.pkcs8_der(), &self.0)
                .map_err(|e| PkiError::Key {
                    reason: format!("ring refuses the ECDSA P-256 key: {e}"),
                })?;
        Ok(Arc::new(RingSigner {
            pair,
            rng: self.0.clone(),
        }))
    }
}

struct RingSigner {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl P256Signing for RingSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let sig = self
            .pair
            .sign(&self.rng, message)
            .map_err(|_| PkiError::Key {
                reason: "ring could not sign (the OS random source failed)".into(),
            })?;
        Ok(sig.as_ref().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skupper_token::pki::{CaIssuer, PeerVerifier};
    use time::macros::datetime;

    #[test]
    fn ring_keys_issue_certificates_that_verify() {
        let now = datetime!(2027-01-01 00:00 UTC);
        let ca = CaIssuer::new_site_ca_with(
            RingKeys::shared(),
            &mut OsRandom::new(),
            now,
            time::Duration::days(30),
        )
        .unwrap();
        let leaf = ca
            .issue_client("east", &mut OsRandom::new(), now, time::Duration::days(1))
            .unwrap();
        // The leaf's key is the canonical layout and belongs to its certificate.
        assert_eq!(leaf.key.algorithm(), "ECDSA P-256");
        skupper_token::pki::CertifiedKey::from_der(leaf.cert_der.clone(), leaf.key.clone())
            .unwrap();
        // A CA reloaded with the default backend verifies what ring signed.
        let verifier = PeerVerifier::from_pem(ca.ca_pem()).unwrap();
        verifier
            .verify(&[&leaf.cert_der], now)
            .expect("ring-signed leaf verifies");
        // Keys differ every time: they come from the OS.
        let again = ca
            .issue_client("east", &mut OsRandom::new(), now, time::Duration::days(1))
            .unwrap();
        assert_ne!(again.key, leaf.key);
    }

    #[test]
    fn ring_refuses_a_key_whose_point_is_not_its_own() {
        let backend = RingKeys::shared();
        let a = backend.generate_p256(&mut OsRandom::new()).unwrap();
        let b = backend.generate_p256(&mut OsRandom::new()).unwrap();
        let mut mixed = a.pkcs8_der().to_vec();
        let n = mixed.len();
        mixed[n - 65..].copy_from_slice(&b.pkcs8_der()[n - 65..]);
        let mixed = PrivateKey::from_p256_pkcs8(&mixed).unwrap();
        assert!(backend.p256_signer(&mixed).is_err());
        assert!(backend.p256_signer(&a).is_ok());
    }

    #[test]
    fn fills_with_bytes_that_differ() {
        let mut rng = OsRandom::new();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        rng.fill(&mut a);
        rng.fill(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
        rng.fill(&mut []);
    }

    #[test]
    fn makes_passwords_through_the_core() {
        let p = skupper_token::random::password(&mut OsRandom::new());
        assert_eq!(p.len(), skupper_token::random::PASSWORD_LEN);
    }
}
