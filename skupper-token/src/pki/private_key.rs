//! [`PrivateKey`]: a private key held as PKCS#8 DER, read from the PEM
//! forms found in cert tokens, and the canonical P-256 layout that key
//! backends write.

use std::fmt;

use p256::elliptic_curve::sec1::ToSec1Point as _;
use p256::elliptic_curve::subtle::ConstantTimeEq as _;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::DecodePrivateKey as _;
use ring::signature as rsig;

use super::error::PkiError;
use super::pem::{pem_encode, pem_find};

/// The algorithm of a [`PrivateKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind {
    EcdsaP256,
    Rsa,
}

/// DER prefix of a PKCS#8 ECDSA P-256 key with its public key, as written by
/// OpenSSL, ring and the RustCrypto crates: 36 bytes, then the 32-byte
/// scalar, then [`P256_PKCS8_MIDDLE`], then the 65-byte uncompressed point.
const P256_PKCS8_PREFIX: [u8; 36] = [
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
    0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02,
    0x01, 0x01, 0x04, 0x20,
];
const P256_PKCS8_MIDDLE: [u8; 5] = [0xa1, 0x44, 0x03, 0x42, 0x00];
pub(super) const P256_PKCS8_LEN: usize = 36 + 32 + 5 + 65;

/// A private key, held as PKCS#8 DER.
///
/// Keys made here are ECDSA P-256. RSA keys (as in cert tokens from real
/// Skupper sites) can be loaded and carried, but not used to issue
/// certificates. `Debug` shows only the algorithm, never key material, and
/// the DER is wiped from memory when the key is dropped.
#[derive(Clone)]
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
    pub(super) kind: KeyKind,
}

impl PrivateKey {
    /// Builds the canonical PKCS#8 of a P-256 key from its 32-byte scalar
    /// and uncompressed public point.
    pub(crate) fn assemble_p256(scalar: &[u8], point: &[u8; 65]) -> PrivateKey {
        debug_assert_eq!(scalar.len(), 32);
        let mut der = Zeroizing::new(Vec::with_capacity(P256_PKCS8_LEN));
        der.extend_from_slice(&P256_PKCS8_PREFIX);
        der.extend_from_slice(scalar);
        der.extend_from_slice(&P256_PKCS8_MIDDLE);
        der.extend_from_slice(point);
        PrivateKey {
            pkcs8: der,
            kind: KeyKind::EcdsaP256,
        }
    }

    /// Takes a P-256 key from a [`KeyBackend`](crate::keys::KeyBackend) in the canonical PKCS#8
    /// layout (version 0, `ecPublicKey` on `prime256v1`, the 32-byte scalar
    /// and the uncompressed public point), as OpenSSL, ring and the
    /// RustCrypto crates write it.
    ///
    /// Only the layout is checked here, not that the point belongs to the
    /// scalar: that costs a scalar multiplication and is done once, when
    /// the key is loaded for signing. For keys from outside the process use
    /// [`PrivateKey::from_pkcs8_der`].
    pub fn from_p256_pkcs8(der: &[u8]) -> Result<PrivateKey, PkiError> {
        let layout_ok = der.len() == P256_PKCS8_LEN
            && der[..36] == P256_PKCS8_PREFIX
            && der[68..73] == P256_PKCS8_MIDDLE
            && der[73] == 0x04;
        if !layout_ok {
            return Err(PkiError::Key {
                reason: "not a P-256 PKCS#8 key in the canonical layout (scalar and uncompressed public point)".into(),
            });
        }
        Ok(PrivateKey {
            pkcs8: Zeroizing::new(der.to_vec()),
            kind: KeyKind::EcdsaP256,
        })
    }

    /// For a P-256 key, its 32-byte private scalar and its 65-byte
    /// uncompressed public point (for
    /// [`KeyBackend`](crate::keys::KeyBackend)s); `None` for RSA.
    pub fn p256_parts(&self) -> Option<(&[u8], &[u8])> {
        match self.kind {
            KeyKind::EcdsaP256 => Some((&self.pkcs8[36..68], &self.pkcs8[P256_PKCS8_LEN - 65..])),
            KeyKind::Rsa => None,
        }
    }

    /// Reads a private key from PEM: PKCS#8 `PRIVATE KEY` (ECDSA P-256 or
    /// RSA), SEC1 `EC PRIVATE KEY` (P-256) or PKCS#1 `RSA PRIVATE KEY`, as
    /// found in cert tokens. The first private key block is used.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        let (label, der) = pem_find(pem, "PRIVATE KEY", |l| {
            matches!(
                l,
                "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY" | "ENCRYPTED PRIVATE KEY"
            )
        })?;
        match label {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "EC PRIVATE KEY" => {
                let secret = p256::SecretKey::from_sec1_der(&der).map_err(|_| PkiError::Key {
                    reason: "EC PRIVATE KEY is not a valid P-256 key (only P-256 is supported)"
                        .into(),
                })?;
                Ok(canonical_p256(&secret))
            }
            "RSA PRIVATE KEY" => {
                rsig::RsaKeyPair::from_der(&der).map_err(|e| PkiError::Key {
                    reason: format!("RSA PRIVATE KEY rejected: {e}"),
                })?;
                Ok(PrivateKey {
                    pkcs8: wrap_rsa_pkcs1(&der),
                    kind: KeyKind::Rsa,
                })
            }
            _ => Err(PkiError::Key {
                reason: "encrypted private keys are not supported: decrypt it first".into(),
            }),
        }
    }

    /// Reads a PKCS#8 DER private key (ECDSA P-256 or RSA).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, PkiError> {
        if let Ok(secret) = p256::SecretKey::from_pkcs8_der(der) {
            return Ok(canonical_p256(&secret));
        }
        if rsig::RsaKeyPair::from_pkcs8(der).is_ok() {
            return Ok(PrivateKey {
                pkcs8: Zeroizing::new(der.to_vec()),
                kind: KeyKind::Rsa,
            });
        }
        if rsig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).is_ok() {
            return Err(PkiError::UnsupportedKey {
                algorithm: "Ed25519".into(),
                purpose: "as private keys here (use ECDSA P-256 or RSA)",
            });
        }
        Err(PkiError::Key {
            reason: "not a valid PKCS#8 ECDSA P-256 or RSA private key".into(),
        })
    }

    /// The key as PEM `PRIVATE KEY` (PKCS#8; for P-256 keys with the public
    /// key included, as OpenSSL writes it).
    pub fn to_pem(&self) -> String {
        pem_encode("PRIVATE KEY", &self.pkcs8)
    }

    /// The key as PKCS#8 DER (what TLS libraries take).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key algorithm: `"ECDSA P-256"` or `"RSA"`.
    pub fn algorithm(&self) -> &'static str {
        match self.kind {
            KeyKind::EcdsaP256 => "ECDSA P-256",
            KeyKind::Rsa => "RSA",
        }
    }

    /// The public key as it appears in a certificate's subjectPublicKey bit
    /// string (SEC1 point or PKCS#1 RSAPublicKey).
    pub(super) fn public_key_bytes(&self) -> Result<Vec<u8>, PkiError> {
        match self.kind {
            KeyKind::EcdsaP256 => Ok(self.pkcs8[P256_PKCS8_LEN - 65..].to_vec()),
            KeyKind::Rsa => {
                use ring::signature::KeyPair as _;
                let kp = rsig::RsaKeyPair::from_pkcs8(&self.pkcs8).map_err(|e| PkiError::Key {
                    reason: format!("RSA key rejected: {e}"),
                })?;
                Ok(kp.public_key().as_ref().to_vec())
            }
        }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.algorithm())
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && bool::from(self.pkcs8[..].ct_eq(&other.pkcs8[..]))
    }
}

impl Eq for PrivateKey {}

fn der_push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// PKCS#1 RSAPrivateKey -> PKCS#8 PrivateKeyInfo.
fn wrap_rsa_pkcs1(pkcs1: &[u8]) -> Zeroizing<Vec<u8>> {
    // version 0, AlgorithmIdentifier { rsaEncryption, NULL }
    const HEAD: [u8; 18] = [
        0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
        0x01, 0x05, 0x00,
    ];
    let mut octets = Zeroizing::new(Vec::with_capacity(pkcs1.len() + 6));
    octets.push(0x04);
    der_push_len(&mut octets, pkcs1.len());
    octets.extend_from_slice(pkcs1);
    let mut out = Zeroizing::new(Vec::with_capacity(octets.len() + HEAD.len() + 6));
    out.push(0x30);
    der_push_len(&mut out, HEAD.len() + octets.len());
    out.extend_from_slice(&HEAD);
    out.extend_from_slice(&octets);
    out
}

/// The canonical PKCS#8 of a P-256 key made with the `p256` crate.
pub(super) fn canonical_p256(secret: &p256::SecretKey) -> PrivateKey {
    let point = public_point(&secret.public_key());
    let scalar = Zeroizing::new(secret.to_bytes());
    PrivateKey::assemble_p256(&scalar, &point)
}

/// The uncompressed SEC1 encoding of a public key.
pub(super) fn public_point(public: &p256::PublicKey) -> [u8; 65] {
    let sec1 = public.as_affine().to_sec1_point(false);
    let mut point = [0u8; 65];
    point.copy_from_slice(sec1.as_bytes());
    point
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        for (len, enc) in [
            (0usize, &[0x00][..]),
            (127, &[0x7f]),
            (128, &[0x81, 0x80]),
            (255, &[0x81, 0xff]),
            (256, &[0x82, 0x01, 0x00]),
            (1190, &[0x82, 0x04, 0xa6]),
        ] {
            let mut out = Vec::new();
            der_push_len(&mut out, len);
            assert_eq!(out, enc, "{len}");
        }
    }

    #[test]
    fn rsa_pkcs1_is_wrapped_as_pkcs8() {
        let inner = [0x30, 0x03, 0x02, 0x01, 0x00];
        let der = wrap_rsa_pkcs1(&inner);
        let mut expected = vec![0x30, 25, 0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09];
        expected.extend_from_slice(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]);
        expected.extend_from_slice(&[0x05, 0x00, 0x04, 0x05]);
        expected.extend_from_slice(&inner);
        assert_eq!(&der[..], &expected[..]);
    }
}
