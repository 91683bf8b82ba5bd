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
//! [`KeyBackend`]. With the default backend the
//! private scalar comes from the injected [`Random`] and signatures are
//! deterministic (RFC 6979), so the same seed gives byte-identical
//! certificates; faster backends that use the OS's randomness can be passed
//! instead. Certificates made by real Skupper sites (RSA-2048, SHA-256, with
//! an empty `DNS:` SAN) are read and verified too.
//!
//! Nothing here reads the clock: validity is computed from the `now` passed
//! in, truncated to whole seconds.

use std::fmt;
// An address value for IP SANs: parsing and printing only, no sockets.
use core::net::IpAddr;

use std::sync::Arc;

use base64::Engine as _;
use p256::elliptic_curve::subtle::ConstantTimeEq as _;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::DecodePrivateKey as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType,
    SerialNumber, SignatureAlgorithm,
};
use ring::signature as rsig;
use time::{Duration, OffsetDateTime, UtcOffset};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry as oids;
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

use crate::keys::{self, KeyBackend, P256Signing};
use crate::random::Random;

/// Common name of every site CA, as in Skupper.
pub const SITE_CA_CN: &str = "skupper-site-ca";

/// Common name of a server certificate issued without any host name.
pub const DEFAULT_SERVER_CN: &str = "skupper-router";

/// Validity of certificates made by Skupper: 5 years (5 × 365 days).
pub const DEFAULT_VALIDITY: Duration = Duration::days(5 * 365);

/// How many unusable draws in a row from the [`Random`] before giving up
/// (a draw is unusable with probability below 2^-32 for a working generator).
const MAX_DRAWS: usize = 16;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a key or certificate could not be made, loaded or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The requested validity is zero or negative.
    #[error("certificate validity must be positive, got {validity}")]
    InvalidValidity {
        /// The validity that was asked for.
        validity: Duration,
    },
    /// `now + validity` does not fit in an X.509 date (year 9999 at most).
    #[error("certificate validity {validity} from {} ends after the year 9999: choose a shorter validity", rfc3339(.now))]
    ValidityOutOfRange {
        /// The start of the validity.
        now: OffsetDateTime,
        /// The requested validity.
        validity: Duration,
    },
    /// A certificate's common name (the site name for client certificates)
    /// was empty.
    #[error("the certificate common name must not be empty (it names the site)")]
    EmptyCommonName,
    /// A host name given for a server certificate cannot go into a
    /// certificate.
    #[error("host {host:?} cannot be put in a certificate: {reason}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No usable PEM block was found.
    #[error("no valid PEM {label} block: {reason}")]
    Pem {
        /// The PEM label that was looked for (`CERTIFICATE`, `PRIVATE KEY`).
        label: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A certificate could not be parsed.
    #[error("certificate cannot be parsed: {reason}")]
    Certificate {
        /// The parser's complaint.
        reason: String,
    },
    /// A private key could not be parsed.
    #[error("private key cannot be parsed: {reason}")]
    Key {
        /// What was wrong (never includes key material).
        reason: String,
    },
    /// A key of an algorithm that cannot be used for this purpose.
    #[error("{algorithm} keys are not supported {purpose}")]
    UnsupportedKey {
        /// The key algorithm seen, e.g. `RSA 2048`.
        algorithm: String,
        /// What it was to be used for, e.g. `for a site CA (only ECDSA P-256 can issue certificates here)`.
        purpose: &'static str,
    },
    /// The private key does not belong to the certificate.
    #[error(
        "the private key does not match the certificate {subject:?} (their public keys differ)"
    )]
    KeyMismatch {
        /// Subject of the certificate.
        subject: String,
    },
    /// A certificate used as a CA is not one.
    #[error("certificate {subject:?} cannot be used as a CA: {reason}")]
    NotACa {
        /// Subject of the certificate.
        subject: String,
        /// What is missing.
        reason: String,
    },
    /// The injected random generator kept returning unusable values.
    #[error(
        "the random generator returned {draws} unusable values in a row for a {what}: it is broken"
    )]
    BadRandom {
        /// What was being drawn (`private key`, `serial number`).
        what: &'static str,
        /// How many draws were tried.
        draws: usize,
    },
    /// Building the certificate failed (an internal error of the encoder).
    #[error("certificate could not be encoded: {reason}")]
    Encoding {
        /// The encoder's complaint.
        reason: String,
    },
}

/// Why a peer's certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The peer presented no certificate.
    #[error("no client certificate was presented: a linking site must present the certificate from its token")]
    EmptyChain,
    /// The certificate is not valid DER or breaks X.509 rules.
    #[error("peer certificate is malformed: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The certificate was not issued by this site's current CA. This is what
    /// certificates issued before a revoke-access give.
    #[error("certificate for {common_name:?} was issued by {issuer:?}, which is not this site's current CA (tokens made before a revoke-access no longer work: get a new token)")]
    UnknownIssuer {
        /// The certificate's common name.
        common_name: String,
        /// The issuer named in the certificate (and, when the name matches
        /// but the key does not, the key identifier).
        issuer: String,
    },
    /// The signature does not verify against this site's CA key.
    #[error("certificate for {common_name:?} has a signature that does not verify against this site's CA (altered, or issued by another CA with the same name)")]
    BadSignature {
        /// The certificate's common name.
        common_name: String,
    },
    /// The certificate is signed with an algorithm this verifier does not
    /// support for the CA's key.
    #[error("certificate for {common_name:?} is signed with algorithm {oid}, which is not supported with this site's {ca_key} CA key")]
    UnsupportedAlgorithm {
        /// The certificate's common name.
        common_name: String,
        /// The signature algorithm OID (dotted).
        oid: String,
        /// The CA key type, e.g. `ECDSA P-256`.
        ca_key: &'static str,
    },
    /// The certificate's validity has not started.
    #[error("certificate for {common_name:?} is not valid before {} (now {}): check the clocks of both sites", rfc3339(.not_before), rfc3339(.now))]
    NotYetValid {
        /// The certificate's common name.
        common_name: String,
        /// Start of validity.
        not_before: OffsetDateTime,
        /// The time of the check.
        now: OffsetDateTime,
    },
    /// The certificate has expired.
    #[error("certificate for {common_name:?} expired at {} (now {}): get a new token", rfc3339(.not_after), rfc3339(.now))]
    Expired {
        /// The certificate's common name.
        common_name: String,
        /// End of validity.
        not_after: OffsetDateTime,
        /// The time of the check.
        now: OffsetDateTime,
    },
    /// This site's own CA is not valid at the time of the check.
    #[error("this site's CA is valid from {} to {}, not at {}: it authenticates no one until the site has a new CA (revoking access makes one)", rfc3339(.not_before), rfc3339(.not_after), rfc3339(.now))]
    CaNotValid {
        /// Start of the CA's validity.
        not_before: OffsetDateTime,
        /// End of the CA's validity.
        not_after: OffsetDateTime,
        /// The time of the check.
        now: OffsetDateTime,
    },
    /// The certificate has an extended key usage that excludes client
    /// authentication.
    #[error("certificate for {common_name:?} is not allowed for TLS client authentication (its extended key usage lacks clientAuth)")]
    NotClientAuth {
        /// The certificate's common name.
        common_name: String,
    },
    /// A CA certificate was presented as a client certificate.
    #[error("certificate for {common_name:?} is a CA certificate (basicConstraints CA:TRUE) and cannot be used to link")]
    IsCa {
        /// The certificate's common name.
        common_name: String,
    },
    /// This site accepts no links (an edge site has no CA).
    #[error("this site accepts no incoming links (it is an edge site and has no CA); link to it from an interior site instead")]
    NotAccepting,
    /// Access was revoked for this certificate or site (checked outside this
    /// module, against the site's revocation lists).
    #[error("certificate for {common_name:?} is revoked: {reason}")]
    Revoked {
        /// The certificate's common name.
        common_name: String,
        /// Why (which list, since when).
        reason: String,
    },
    /// The certificate was issued for redeeming a claim, and so belongs to
    /// the site that redeemed it, but the connecting site says it is
    /// another site.
    #[error("certificate from claim {claim:?} belongs to site {common_name}, but the connecting site says it is {claimed_site_id:?}: a claim's certificate links only the site that redeemed it")]
    WrongSite {
        /// The claim the certificate was issued for.
        claim: String,
        /// The certificate's common name: the id of the site that redeemed
        /// the claim.
        common_name: String,
        /// The site id the connecting site gave.
        claimed_site_id: String,
    },
}

fn rfc3339(t: &OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC).truncate_to_second();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn encoding_error(e: rcgen::Error) -> PkiError {
    PkiError::Encoding {
        reason: e.to_string(),
    }
}

// ---------------------------------------------------------------------------
// PEM and hex helpers
// ---------------------------------------------------------------------------

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Finds the first PEM block whose label `accept`s, and decodes it.
/// Returns the label and the DER. Blocks with other labels are skipped.
fn pem_find<'a>(
    text: &'a str,
    want: &'static str,
    accept: impl Fn(&str) -> bool,
) -> Result<(&'a str, Zeroizing<Vec<u8>>), PkiError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let err = |reason: String| PkiError::Pem {
        label: want,
        reason,
    };
    let mut rest = text;
    let mut seen: Vec<&str> = Vec::new();
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let Some(label_end) = after.find(DASHES) else {
            return Err(err("unterminated BEGIN line".into()));
        };
        let label = &after[..label_end];
        let body_and_more = &after[label_end + DASHES.len()..];
        let end_marker = format!("-----END {label}-----");
        let Some(body_end) = body_and_more.find(&end_marker) else {
            return Err(err(format!("no END line for the {label} block")));
        };
        let body = &body_and_more[..body_end];
        rest = &body_and_more[body_end + end_marker.len()..];
        if !accept(label) {
            seen.push(label);
            continue;
        }
        if body.contains(':') {
            return Err(err(format!(
                "the {label} block has RFC 1421 headers (is it encrypted?)"
            )));
        }
        let compact: Zeroizing<Vec<u8>> =
            Zeroizing::new(body.bytes().filter(|b| !b.is_ascii_whitespace()).collect());
        let der = base64::engine::general_purpose::STANDARD
            .decode(&compact[..])
            .map_err(|e| err(format!("bad base64 in the {label} block: {e}")))?;
        if der.is_empty() {
            return Err(err(format!("the {label} block is empty")));
        }
        return Ok((label, Zeroizing::new(der)));
    }
    if seen.is_empty() {
        Err(err("no PEM block found".into()))
    } else {
        Err(err(format!("found only {}", seen.join(", "))))
    }
}

/// The DER of the first `CERTIFICATE` block in `pem` (other blocks before it
/// are skipped).
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    let (_, der) = pem_find(pem, "CERTIFICATE", |l| l == "CERTIFICATE")?;
    Ok(der.to_vec())
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex_upper(bytes: &[u8], sep: Option<char>) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            if let Some(c) = sep {
                s.push(c);
            }
        }
        s.push(HEX_UPPER[(b >> 4) as usize] as char);
        s.push(HEX_UPPER[(b & 15) as usize] as char);
    }
    s
}

/// Serial as uppercase hex without separators, like `openssl x509 -serial`.
fn serial_hex(raw: &[u8]) -> String {
    let mut raw = raw;
    while raw.len() > 1 && raw[0] == 0 {
        raw = &raw[1..];
    }
    hex_upper(raw, None)
}

/// SHA-256 fingerprint as uppercase hex with colons, like
/// `openssl x509 -fingerprint -sha256`.
fn fingerprint(der: &[u8]) -> String {
    hex_upper(
        ring::digest::digest(&ring::digest::SHA256, der).as_ref(),
        Some(':'),
    )
}

// ---------------------------------------------------------------------------
// Private keys
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
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
const P256_PKCS8_LEN: usize = 36 + 32 + 5 + 65;

/// A private key, held as PKCS#8 DER.
///
/// Keys made here are ECDSA P-256. RSA keys (as in cert tokens from real
/// Skupper sites) can be loaded and carried, but not used to issue
/// certificates. `Debug` shows only the algorithm, never key material, and
/// the DER is wiped from memory when the key is dropped.
#[derive(Clone)]
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
    kind: KeyKind,
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

    /// Takes a P-256 key from a [`KeyBackend`] in the canonical PKCS#8
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
    /// uncompressed public point (for [`KeyBackend`]s); `None` for RSA.
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
                Ok(keys::canonical_p256(&secret))
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
            return Ok(keys::canonical_p256(&secret));
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
    fn public_key_bytes(&self) -> Result<Vec<u8>, PkiError> {
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

/// A 128-bit positive, non-zero serial number from `rng`.
fn random_serial(rng: &mut dyn Random) -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    for _ in 0..MAX_DRAWS {
        rng.fill(&mut bytes);
        bytes[0] &= 0x7f;
        if bytes.iter().any(|&b| b != 0) {
            return Ok(SerialNumber::from_slice(&bytes));
        }
    }
    Err(PkiError::BadRandom {
        what: "serial number",
        draws: MAX_DRAWS,
    })
}

/// A CA's signing key, for rcgen: the backend's signer and the public
/// point it signs for.
#[derive(Clone)]
struct CaSigner {
    signing: Arc<dyn P256Signing>,
    point: [u8; 65],
}

impl CaSigner {
    fn load(backend: &dyn KeyBackend, key: &PrivateKey) -> Result<CaSigner, PkiError> {
        let signing = backend.p256_signer(key)?;
        let (_, point) = key.p256_parts().ok_or_else(|| PkiError::UnsupportedKey {
            algorithm: key.algorithm().into(),
            purpose: "for a site CA (only ECDSA P-256 keys can issue certificates here)",
        })?;
        let point = point.try_into().map_err(|_| PkiError::Key {
            reason: "the ECDSA P-256 public point is not 65 bytes".into(),
        })?;
        Ok(CaSigner { signing, point })
    }
}

impl PublicKeyData for CaSigner {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for CaSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signing
            .sign(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// The public half of a freshly made leaf key.
struct LeafPublicKey<'a>(&'a [u8]);

impl PublicKeyData for LeafPublicKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

// ---------------------------------------------------------------------------
// Certified keys and the CA
// ---------------------------------------------------------------------------

/// A certificate with its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedKey {
    /// The certificate as PEM (`CERTIFICATE`).
    pub cert_pem: String,
    /// The certificate as DER (same certificate as `cert_pem`).
    pub cert_der: Vec<u8>,
    /// The certificate's private key.
    pub key: PrivateKey,
}

impl CertifiedKey {
    /// Loads a certificate and its key from PEM (as in a cert token's
    /// `tls.crt` and `tls.key`), checking that the key belongs to the
    /// certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let cert_der = pem_to_der(cert_pem)?;
        let key = PrivateKey::from_pem(key_pem)?;
        Self::from_der(cert_der, key)
    }

    /// Pairs a DER certificate with its key, checking that they match.
    pub fn from_der(cert_der: Vec<u8>, key: PrivateKey) -> Result<Self, PkiError> {
        let cert = parse_cert(&cert_der)?;
        let spki_key = cert.public_key().subject_public_key.data.as_ref();
        if key.public_key_bytes()? != spki_key {
            return Err(PkiError::KeyMismatch {
                subject: cert.subject().to_string(),
            });
        }
        drop(cert);
        Ok(CertifiedKey {
            cert_pem: pem_encode("CERTIFICATE", &cert_der),
            cert_der,
            key,
        })
    }
}

impl fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("cert_pem", &self.cert_pem)
            .field("key", &self.key)
            .finish()
    }
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(PkiError::Certificate {
            reason: format!(
                "{} bytes of trailing data after the certificate",
                rest.len()
            ),
        }),
        Err(e) => Err(PkiError::Certificate {
            reason: e.to_string(),
        }),
    }
}

/// How far before the time it is made a certificate starts to be valid.
///
/// Every certificate a site makes (its CA, its server certificate, cert
/// tokens, redeemed claims) starts [`BACKDATE`] before `now`: a peer whose
/// clock is a little behind this site's would otherwise refuse a
/// certificate made a moment ago as not valid yet, which is what happened
/// to every link right after `init` or `revoke-access` when the clocks were
/// a second apart. Five minutes covers the clock skew of machines that keep
/// time at all (Kerberos allows the same). The validity still runs from
/// `now`: `not_after` is `now` plus the validity.
pub const BACKDATE: Duration = Duration::minutes(5);

/// The validity window for a certificate made at `now`: from [`BACKDATE`]
/// before `now` to `validity` after it, to the second.
fn validity_window(
    now: OffsetDateTime,
    validity: Duration,
) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
    if !validity.is_positive() {
        return Err(PkiError::InvalidValidity { validity });
    }
    let now = now.to_offset(UtcOffset::UTC).truncate_to_second();
    let not_before = now.saturating_sub(BACKDATE);
    let not_after = now
        .checked_add(validity)
        .filter(|t| t.year() <= 9999)
        .ok_or(PkiError::ValidityOutOfRange { now, validity })?
        .truncate_to_second();
    Ok((not_before, not_after))
}

/// A site CA loaded and ready to issue certificates (its key parsed once).
pub struct CaIssuer {
    ca: CertifiedKey,
    backend: Arc<dyn KeyBackend>,
    issuer: Issuer<'static, CaSigner>,
    /// Kept to rebuild `issuer` on clone (rcgen's issuer is not `Clone`).
    dn: DistinguishedName,
    key_id: Option<Vec<u8>>,
    subject: String,
    not_after: OffsetDateTime,
}

impl CaIssuer {
    /// Makes a new site CA: ECDSA P-256 key from `rng`, `CN=skupper-site-ca`,
    /// `CA:TRUE` (path length 0), key usage keyCertSign + cRLSign, a subject
    /// key identifier, a random 128-bit serial, valid from [`BACKDATE`] before `now` (to the
    /// second) for `validity`. Keys and signatures come from the
    /// [`Deterministic`](crate::keys::Deterministic) backend.
    pub fn new_site_ca(
        rng: &mut dyn Random,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<CaIssuer, PkiError> {
        Self::new_site_ca_with(keys::deterministic(), rng, now, validity)
    }

    /// [`CaIssuer::new_site_ca`] with keys made and signed by `backend`
    /// (which also makes the keys of every certificate this CA issues).
    pub fn new_site_ca_with(
        backend: Arc<dyn KeyBackend>,
        rng: &mut dyn Random,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<CaIssuer, PkiError> {
        let (not_before, not_after) = validity_window(now, validity)?;
        let key = backend.generate_p256(rng)?;
        let serial = random_serial(rng)?;
        let signer = CaSigner::load(&*backend, &key)?;

        let mut params = CertificateParams::default();
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(serial);
        params.distinguished_name = site_ca_dn();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params.self_signed(&signer).map_err(encoding_error)?;
        let cert_der = cert.der().to_vec();
        let ca = CertifiedKey {
            cert_pem: pem_encode("CERTIFICATE", &cert_der),
            cert_der,
            key,
        };
        Self::from_parts(ca, backend, signer)
    }

    /// Loads an existing CA (certificate and ECDSA P-256 key), e.g. from a
    /// site's store. Checks that the certificate is a CA and that the key is
    /// its key. Uses the [`Deterministic`](crate::keys::Deterministic)
    /// backend.
    pub fn from_certified_key(ca: &CertifiedKey) -> Result<CaIssuer, PkiError> {
        Self::from_certified_key_with(keys::deterministic(), ca)
    }

    /// [`CaIssuer::from_certified_key`] with signing and key generation by
    /// `backend`.
    pub fn from_certified_key_with(
        backend: Arc<dyn KeyBackend>,
        ca: &CertifiedKey,
    ) -> Result<CaIssuer, PkiError> {
        if ca.key.kind != KeyKind::EcdsaP256 {
            return Err(PkiError::UnsupportedKey {
                algorithm: ca.key.algorithm().into(),
                purpose: "for a site CA (only ECDSA P-256 keys can issue certificates here)",
            });
        }
        let signer = CaSigner::load(&*backend, &ca.key)?;
        Self::from_parts(ca.clone(), backend, signer)
    }

    /// The backend that makes this CA's keys and signatures.
    pub fn key_backend(&self) -> &Arc<dyn KeyBackend> {
        &self.backend
    }

    fn from_parts(
        ca: CertifiedKey,
        backend: Arc<dyn KeyBackend>,
        signer: CaSigner,
    ) -> Result<CaIssuer, PkiError> {
        let cert = parse_cert(&ca.cert_der)?;
        let subject = cert.subject().to_string();
        if !cert.is_ca() {
            return Err(PkiError::NotACa {
                subject,
                reason: "it has no basicConstraints CA:TRUE".into(),
            });
        }
        if let Ok(Some(ku)) = cert.key_usage() {
            if !ku.value.key_cert_sign() {
                return Err(PkiError::NotACa {
                    subject,
                    reason: "its key usage does not include keyCertSign".into(),
                });
            }
        }
        if cert.public_key().subject_public_key.data.as_ref() != signer.point.as_slice() {
            return Err(PkiError::KeyMismatch { subject });
        }
        let dn = rcgen_dn(cert.subject())?;
        let key_id = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(ki) => Some(ki.0.to_vec()),
                _ => None,
            });
        let not_after = cert.validity().not_after.to_datetime();
        let subject_raw = cert.subject().as_raw().to_vec();
        drop(cert);

        let issuer = make_issuer(&dn, key_id.as_deref(), signer);
        let ca_issuer = CaIssuer {
            ca,
            backend,
            issuer,
            dn,
            key_id,
            subject,
            not_after,
        };
        ca_issuer.check_issuer_name(&subject_raw)?;
        Ok(ca_issuer)
    }

    /// Issues a throwaway certificate once to check that the issuer name
    /// written into leaves is byte-for-byte the CA's subject (otherwise
    /// verifiers could not chain them).
    fn check_issuer_name(&self, subject_raw: &[u8]) -> Result<(), PkiError> {
        let mut params = CertificateParams::default();
        params.serial_number = Some(SerialNumber::from_slice(&[1]));
        let probe = params
            .signed_by(self.issuer.key(), &self.issuer)
            .map_err(encoding_error)?;
        let cert = parse_cert(probe.der())?;
        if cert.issuer().as_raw() != subject_raw {
            return Err(PkiError::NotACa {
                subject: self.subject.clone(),
                reason:
                    "its subject name uses an encoding that cannot be reproduced as an issuer name"
                        .into(),
            });
        }
        Ok(())
    }

    /// The CA certificate and key (to store, or to put in tokens as
    /// `ca.crt`).
    pub fn certified_key(&self) -> &CertifiedKey {
        &self.ca
    }

    /// The CA certificate as PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// The end of the CA's validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// A verifier for certificates issued by this CA.
    pub fn peer_verifier(&self) -> Result<PeerVerifier, PkiError> {
        PeerVerifier::new(&self.ca.cert_der)
    }

    /// Issues a server certificate for `hosts`: CN = the first host (or
    /// `skupper-router` when there is none), every host as a SAN (IP
    /// addresses as IP SANs, names as DNS SANs; empty entries and duplicates
    /// skipped), EKU serverAuth + clientAuth, `CA:FALSE`, key usage
    /// digitalSignature + keyEncipherment.
    pub fn issue_server(
        &self,
        hosts: &[String],
        rng: &mut dyn Random,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<CertifiedKey, PkiError> {
        let mut sans: Vec<SanType> = Vec::with_capacity(hosts.len());
        let mut common_name: Option<&str> = None;
        for host in hosts {
            let h = host.trim();
            if h.is_empty() {
                continue;
            }
            let san = host_san(h)?;
            if !sans.contains(&san) {
                sans.push(san);
            }
            common_name.get_or_insert(h);
        }
        self.issue(
            common_name.unwrap_or(DEFAULT_SERVER_CN),
            sans,
            rng,
            now,
            validity,
        )
    }

    /// Issues a client certificate for a linking site: CN = `common_name`
    /// (the site name), EKU clientAuth + serverAuth, `CA:FALSE`, key usage
    /// digitalSignature + keyEncipherment, no SAN.
    pub fn issue_client(
        &self,
        common_name: &str,
        rng: &mut dyn Random,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<CertifiedKey, PkiError> {
        self.issue(common_name, Vec::new(), rng, now, validity)
    }

    fn issue(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        rng: &mut dyn Random,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<CertifiedKey, PkiError> {
        if common_name.is_empty() {
            return Err(PkiError::EmptyCommonName);
        }
        let (not_before, not_after) = validity_window(now, validity)?;
        let key = self.backend.generate_p256(rng)?;
        let serial = random_serial(rng)?;
        let (_, point) = key.p256_parts().ok_or_else(|| PkiError::UnsupportedKey {
            algorithm: key.algorithm().into(),
            purpose: "from a key backend (it must make ECDSA P-256 keys)",
        })?;

        let mut params = CertificateParams::default();
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(serial);
        params.subject_alt_names = sans;
        params.distinguished_name = common_name_dn(common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = self.key_id.is_some();
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params
            .signed_by(&LeafPublicKey(point), &self.issuer)
            .map_err(encoding_error)?;
        let cert_der = cert.der().to_vec();
        Ok(CertifiedKey {
            cert_pem: pem_encode("CERTIFICATE", &cert_der),
            cert_der,
            key,
        })
    }
}

impl Clone for CaIssuer {
    fn clone(&self) -> Self {
        CaIssuer {
            ca: self.ca.clone(),
            backend: self.backend.clone(),
            issuer: make_issuer(&self.dn, self.key_id.as_deref(), self.issuer.key().clone()),
            dn: self.dn.clone(),
            key_id: self.key_id.clone(),
            subject: self.subject.clone(),
            not_after: self.not_after,
        }
    }
}

impl fmt::Debug for CaIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaIssuer")
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("key", &self.ca.key)
            .finish_non_exhaustive()
    }
}

fn site_ca_dn() -> DistinguishedName {
    common_name_dn(SITE_CA_CN)
}

/// `CN=<name>`, encoded like Go (and so Skupper) does: PrintableString when
/// the name allows it, UTF8String otherwise.
fn common_name_dn(name: &str) -> DistinguishedName {
    let value = match rcgen::string::PrintableString::try_from(name) {
        Ok(p) if writable_printable(name) => DnValue::PrintableString(p),
        _ => DnValue::Utf8String(name.to_owned()),
    };
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, value);
    dn
}

fn make_issuer(
    dn: &DistinguishedName,
    key_id: Option<&[u8]>,
    signer: CaSigner,
) -> Issuer<'static, CaSigner> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn.clone();
    // The CA's own subject key identifier, so that leaves' authority key
    // identifiers match it exactly (and no hashing per issued certificate).
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_id.unwrap_or_default().to_vec());
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Issuer::new(params, signer)
}

/// Whether rcgen's DER writer can write `s` as a PrintableString: the
/// characters X.680 allows except `?`, which rcgen accepts into a
/// `PrintableString` but its writer (yasna) refuses with a panic. A site id
/// or name with `?` arrives in a claim request's `skupper-site-name`.
fn writable_printable(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=".contains(&b))
}

/// Rebuilds a certificate subject as an rcgen name with the same attribute
/// types, string types and order.
fn rcgen_dn(name: &X509Name<'_>) -> Result<DistinguishedName, PkiError> {
    let unsupported = |reason: String| PkiError::NotACa {
        subject: name.to_string(),
        reason,
    };
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(unsupported(
                "its subject has a multi-valued name component".into(),
            ));
        };
        let oid = attr.attr_type();
        let ty = if *oid == oids::OID_X509_COMMON_NAME {
            DnType::CommonName
        } else if *oid == oids::OID_X509_COUNTRY_NAME {
            DnType::CountryName
        } else if *oid == oids::OID_X509_LOCALITY_NAME {
            DnType::LocalityName
        } else if *oid == oids::OID_X509_STATE_OR_PROVINCE_NAME {
            DnType::StateOrProvinceName
        } else if *oid == oids::OID_X509_ORGANIZATION_NAME {
            DnType::OrganizationName
        } else if *oid == oids::OID_X509_ORGANIZATIONAL_UNIT {
            DnType::OrganizationalUnitName
        } else {
            match oid.iter() {
                Some(arcs) => DnType::CustomDnType(arcs.collect()),
                None => return Err(unsupported(format!("attribute type {oid} is too large"))),
            }
        };
        if dn.get(&ty).is_some() {
            return Err(unsupported(format!("its subject repeats attribute {oid}")));
        }
        let value = attr.attr_value();
        let data = value.data;
        let text = || {
            std::str::from_utf8(data)
                .map_err(|_| unsupported(format!("attribute {oid} is not valid text")))
        };
        let bad = |_| unsupported(format!("attribute {oid} has an invalid string value"));
        let v = match value.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => {
                let text = text()?;
                if !writable_printable(text) {
                    return Err(unsupported(format!(
                        "attribute {oid} is a PrintableString with '?' or another character that cannot be written back"
                    )));
                }
                DnValue::PrintableString(text.try_into().map_err(bad)?)
            }
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into().map_err(bad)?),
            Tag::TeletexString => DnValue::TeletexString(text()?.try_into().map_err(bad)?),
            Tag::BmpString => DnValue::BmpString(
                rcgen::string::BmpString::from_utf16be(data.to_vec()).map_err(bad)?,
            ),
            Tag::UniversalString => DnValue::UniversalString(
                rcgen::string::UniversalString::from_utf32be(data.to_vec()).map_err(bad)?,
            ),
            t => {
                return Err(unsupported(format!(
                    "attribute {oid} has string type {t}, which cannot be reproduced"
                )))
            }
        };
        dn.push(ty, v);
    }
    Ok(dn)
}

fn host_san(host: &str) -> Result<SanType, PkiError> {
    let invalid = |reason: &str| PkiError::InvalidHost {
        host: host.to_owned(),
        reason: reason.to_owned(),
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if host.len() > 253 {
        return Err(invalid("a DNS name is at most 253 characters"));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'))
    {
        return Err(invalid(
            "a DNS name may only contain letters, digits, '.', '-', '_' and '*' (give the host without scheme or port)",
        ));
    }
    let name = rcgen::string::Ia5String::try_from(host).map_err(|e| invalid(&e.to_string()))?;
    Ok(SanType::DnsName(name))
}

// ---------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaKeyKind {
    EcP256,
    EcP384,
    Rsa,
    Ed25519,
}

impl CaKeyKind {
    fn name(self) -> &'static str {
        match self {
            CaKeyKind::EcP256 => "ECDSA P-256",
            CaKeyKind::EcP384 => "ECDSA P-384",
            CaKeyKind::Rsa => "RSA",
            CaKeyKind::Ed25519 => "Ed25519",
        }
    }
}

fn key_kind(spki: &SubjectPublicKeyInfo<'_>) -> Option<CaKeyKind> {
    let alg = &spki.algorithm.algorithm;
    if *alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
        if curve == oids::OID_EC_P256 {
            Some(CaKeyKind::EcP256)
        } else if curve == oids::OID_NIST_EC_P384 {
            Some(CaKeyKind::EcP384)
        } else {
            None
        }
    } else if *alg == oids::OID_PKCS1_RSAENCRYPTION {
        Some(CaKeyKind::Rsa)
    } else if *alg == oids::OID_SIG_ED25519 {
        Some(CaKeyKind::Ed25519)
    } else {
        None
    }
}

/// A peer whose certificate was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The certificate's common name: the linking site's name.
    pub common_name: String,
    /// Serial number, uppercase hex without separators (as `openssl x509
    /// -serial` prints it).
    pub serial_hex: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// SHA-256 of the certificate DER, uppercase hex with colons (as `openssl
    /// x509 -fingerprint -sha256` prints it).
    pub fingerprint_sha256: String,
}

/// Verifies peer certificates against one CA (parsed once).
///
/// The chain is checked by rustls-webpki at the time passed in: the leaf
/// must be signed by the CA, valid, strictly DER, not a CA, and, if it has
/// an extended key usage, allow clientAuth. Skupper issues client
/// certificates directly from the site CA, so only the first certificate
/// of the chain (the leaf) is used; any further certificates are ignored.
/// On top of that this verifier checks what webpki leaves to the caller:
/// the CA's own validity, and that the leaf names a site (a common name).
#[derive(Clone)]
pub struct PeerVerifier {
    anchor: rustls_pki_types::TrustAnchor<'static>,
    subject: String,
    key_id: Option<Vec<u8>>,
    kind: CaKeyKind,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl fmt::Debug for PeerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerVerifier")
            .field("ca", &self.subject)
            .field("key", &self.kind.name())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The signature algorithms peers' certificates may use: ECDSA P-256 and
/// P-384 with SHA-256/384, RSA PKCS#1 (2048 to 8192 bits) with SHA-256,
/// 384 or 512 (Skupper's own certificates), and Ed25519.
static SIGNATURE_ALGORITHMS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::ED25519,
];

impl PeerVerifier {
    /// A verifier trusting the CA certificate `ca_der` (ECDSA P-256/P-384,
    /// RSA or Ed25519 key; must have basicConstraints CA:TRUE).
    pub fn new(ca_der: &[u8]) -> Result<PeerVerifier, PkiError> {
        let cert = parse_cert(ca_der)?;
        let subject = cert.subject().to_string();
        if !cert.is_ca() {
            return Err(PkiError::NotACa {
                subject,
                reason: "it has no basicConstraints CA:TRUE".into(),
            });
        }
        let spki = cert.public_key();
        let kind = key_kind(spki).ok_or_else(|| PkiError::UnsupportedKey {
            algorithm: spki.algorithm.algorithm.to_id_string(),
            purpose: "for a CA to verify peers (use ECDSA, RSA or Ed25519)",
        })?;
        let der = rustls_pki_types::CertificateDer::from(ca_der);
        let anchor = webpki::anchor_from_trusted_cert(&der)
            .map_err(|e| PkiError::NotACa {
                subject: subject.clone(),
                reason: format!("it cannot be a trust anchor: {e}"),
            })?
            .to_owned();
        let key_id = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(ki) => Some(ki.0.to_vec()),
                _ => None,
            });
        Ok(PeerVerifier {
            anchor,
            subject,
            key_id,
            kind,
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
        })
    }

    /// A verifier trusting the first `CERTIFICATE` in `ca_pem`.
    pub fn from_pem(ca_pem: &str) -> Result<PeerVerifier, PkiError> {
        Self::new(&pem_to_der(ca_pem)?)
    }

    /// Verifies a peer's certificate chain (DER, leaf first) at `now`: the
    /// CA must be within its validity, and the leaf pass rustls-webpki's
    /// checks for a TLS client certificate issued by this CA (see
    /// [`PeerVerifier`]) and carry a common name.
    pub fn verify(
        &self,
        chain: &[&[u8]],
        now: OffsetDateTime,
    ) -> Result<PeerCertificate, AuthError> {
        let leaf_der: &[u8] = chain.first().ok_or(AuthError::EmptyChain)?;
        // webpki parses strictly and decides; x509-parser reads the fields
        // reported.
        let cert = match X509Certificate::from_der(leaf_der) {
            Ok(([], cert)) => cert,
            Ok((rest, _)) => {
                return Err(malformed(format!(
                    "{} bytes of trailing data after the certificate",
                    rest.len()
                )))
            }
            Err(e) => return Err(malformed(e.to_string())),
        };
        let tbs = &cert.tbs_certificate;
        let common_name = tbs
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok());
        let cn_text = || common_name.unwrap_or("").to_owned();
        let not_before = tbs.validity().not_before.to_datetime();
        let not_after = tbs.validity().not_after.to_datetime();
        let der = rustls_pki_types::CertificateDer::from(leaf_der);
        let leaf = webpki::EndEntityCert::try_from(&der)
            .map_err(|e| self.refusal(e, &cert, cn_text(), not_before, not_after, now))?;

        if now < self.not_before || now > self.not_after {
            return Err(AuthError::CaNotValid {
                not_before: self.not_before,
                not_after: self.not_after,
                now,
            });
        }
        let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let time =
            rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
        leaf.verify_for_usage(
            SIGNATURE_ALGORITHMS,
            std::slice::from_ref(&self.anchor),
            &[],
            time,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(|e| self.refusal(e, &cert, cn_text(), not_before, not_after, now))?;
        let Some(common_name) = common_name.filter(|cn| !cn.is_empty()) else {
            return Err(malformed(
                "the certificate has no common name (it names the linking site)".into(),
            ));
        };
        Ok(PeerCertificate {
            common_name: common_name.to_owned(),
            serial_hex: serial_hex(tbs.raw_serial()),
            not_before,
            not_after,
            fingerprint_sha256: fingerprint(leaf_der),
        })
    }

    /// webpki's verdict in this crate's terms.
    fn refusal(
        &self,
        e: webpki::Error,
        cert: &X509Certificate<'_>,
        common_name: String,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> AuthError {
        use webpki::Error as W;
        let issuer = cert.tbs_certificate.issuer().to_string();
        // A CA of the same name but another key (the one before a
        // revoke-access) is named by the leaf's authority key identifier:
        // say so rather than report a bad signature.
        let other_key = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => a
                    .key_identifier
                    .as_ref()
                    .map(|k| k.0)
                    .filter(|aki| self.key_id.as_deref().is_some_and(|ski| ski != *aki)),
                _ => None,
            });
        match e {
            W::CertNotValidYet { .. } => AuthError::NotYetValid {
                common_name,
                not_before,
                now,
            },
            W::CertExpired { .. } => AuthError::Expired {
                common_name,
                not_after,
                now,
            },
            W::UnknownIssuer => AuthError::UnknownIssuer {
                common_name,
                issuer,
            },
            W::InvalidSignatureForPublicKey
            | W::UnsupportedSignatureAlgorithmContext(_)
            | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
                if other_key.is_some() =>
            {
                AuthError::UnknownIssuer {
                    common_name,
                    issuer: format!(
                        "{issuer} (key id {})",
                        hex_upper(other_key.unwrap_or_default(), Some(':'))
                    ),
                }
            }
            W::InvalidSignatureForPublicKey => AuthError::BadSignature { common_name },
            W::UnsupportedSignatureAlgorithmContext(_)
            | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
                AuthError::UnsupportedAlgorithm {
                    common_name,
                    oid: cert.signature_algorithm.algorithm.to_id_string(),
                    ca_key: self.kind.name(),
                }
            }
            W::RequiredEkuNotFoundContext(_) => AuthError::NotClientAuth { common_name },
            W::CaUsedAsEndEntity => AuthError::IsCa { common_name },
            W::UnsupportedCriticalExtension => {
                // The ones webpki acts on: key usage, SAN, basic and name
                // constraints, extended key usage.
                const HANDLED: [&str; 5] = [
                    "2.5.29.15",
                    "2.5.29.17",
                    "2.5.29.19",
                    "2.5.29.30",
                    "2.5.29.37",
                ];
                let oids: Vec<String> = cert
                    .iter_extensions()
                    .filter(|e| e.critical)
                    .map(|e| e.oid.to_id_string())
                    .filter(|oid| !HANDLED.contains(&oid.as_str()))
                    .collect();
                malformed(format!(
                    "unsupported critical extension {}",
                    oids.join(", ")
                ))
            }
            other => malformed(describe_webpki(&other)),
        }
    }
}

/// webpki's parse errors in words.
fn describe_webpki(e: &webpki::Error) -> String {
    use webpki::Error as W;
    match e {
        W::BadDer => "not valid DER".to_owned(),
        W::BadDerTime => "a time that is not valid DER".to_owned(),
        W::TrailingData(what) => format!("trailing data after the {what:?}").to_lowercase(),
        W::UnsupportedCriticalExtension => "an unsupported critical extension".to_owned(),
        W::SignatureAlgorithmMismatch => {
            "the outer signature algorithm differs from the signed one (RFC 5280 4.1.1.2)"
                .to_owned()
        }
        W::UnsupportedCertVersion => "not an X.509 version 3 certificate".to_owned(),
        W::InvalidCertValidity => "a validity that ends before it starts".to_owned(),
        W::InvalidSerialNumber => "a serial number that is not valid".to_owned(),
        W::ExtensionValueInvalid | W::MalformedExtensions => {
            "an extension that is not valid".to_owned()
        }
        other => format!("{other:?}"),
    }
}

fn malformed(reason: String) -> AuthError {
    AuthError::Malformed { reason }
}

// ---------------------------------------------------------------------------
// Inspection
// ---------------------------------------------------------------------------

/// What a certificate says, for display and checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Subject, e.g. `CN=skupper-site-ca`.
    pub subject: String,
    /// Issuer, e.g. `CN=skupper-site-ca`.
    pub issuer: String,
    /// The subject's (first) common name, if any.
    pub common_name: Option<String>,
    /// Serial number, uppercase hex without separators.
    pub serial_hex: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Key algorithm and size: `ECDSA P-256`, `ECDSA P-384`, `RSA 2048`,
    /// `Ed25519`, or the algorithm OID.
    pub key_algorithm: String,
    /// Signature algorithm in OpenSSL's naming, e.g. `ecdsa-with-SHA256`,
    /// `sha256WithRSAEncryption`, or the OID.
    pub signature_algorithm: String,
    /// Whether basicConstraints says CA:TRUE.
    pub is_ca: bool,
    /// DNS names in the subject alternative names, as written (Skupper's
    /// certificates carry one empty name).
    pub dns_names: Vec<String>,
    /// IP addresses in the subject alternative names.
    pub ip_addresses: Vec<String>,
    /// SHA-256 of the DER, uppercase hex with colons, like OpenSSL.
    pub fingerprint_sha256: String,
}

/// Reads the main facts of a DER certificate (no verification).
pub fn certificate_info(der: &[u8]) -> Result<CertificateInfo, PkiError> {
    let cert = parse_cert(der)?;
    let spki = cert.public_key();
    let key_algorithm = match key_kind(spki) {
        Some(CaKeyKind::Rsa) => match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
            _ => "RSA".to_owned(),
        },
        Some(kind) => kind.name().to_owned(),
        None => spki.algorithm.algorithm.to_id_string(),
    };
    let sig = &cert.signature_algorithm.algorithm;
    let signature_algorithm = [
        (&oids::OID_SIG_ECDSA_WITH_SHA256, "ecdsa-with-SHA256"),
        (&oids::OID_SIG_ECDSA_WITH_SHA384, "ecdsa-with-SHA384"),
        (&oids::OID_SIG_ECDSA_WITH_SHA512, "ecdsa-with-SHA512"),
        (&oids::OID_PKCS1_SHA256WITHRSA, "sha256WithRSAEncryption"),
        (&oids::OID_PKCS1_SHA384WITHRSA, "sha384WithRSAEncryption"),
        (&oids::OID_PKCS1_SHA512WITHRSA, "sha512WithRSAEncryption"),
        (&oids::OID_PKCS1_SHA1WITHRSA, "sha1WithRSAEncryption"),
        (&oids::OID_PKCS1_RSASSAPSS, "rsassaPss"),
        (&oids::OID_SIG_ED25519, "ED25519"),
    ]
    .iter()
    .find(|(oid, _)| *oid == sig)
    .map(|(_, name)| (*name).to_owned())
    .unwrap_or_else(|| sig.to_id_string());

    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => dns_names.push((*n).to_owned()),
                GeneralName::IPAddress(b) => ip_addresses.push(match b.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default()).to_string(),
                    16 => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default()).to_string(),
                    _ => hex_upper(b, Some(':')),
                }),
                _ => {}
            }
        }
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(CertificateInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        common_name,
        serial_hex: serial_hex(cert.raw_serial()),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        key_algorithm,
        signature_algorithm,
        is_ca: cert.is_ca(),
        dns_names,
        ip_addresses,
        fingerprint_sha256: fingerprint(der),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    #[test]
    fn shareable_between_threads() {
        fn send_sync<T: Send + Sync + Clone>() {}
        send_sync::<CaIssuer>();
        send_sync::<PeerVerifier>();
        send_sync::<CertifiedKey>();
        send_sync::<PrivateKey>();
    }

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

    #[test]
    fn pem_reading_is_tolerant_of_layout_but_not_of_junk() {
        let der = [0x30u8, 0x03, 0x01, 0x01, 0xff];
        let pem = pem_encode("CERTIFICATE", &der);
        assert_eq!(
            pem,
            "-----BEGIN CERTIFICATE-----\nMAMBAf8=\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(pem_to_der(&pem).unwrap(), der);
        let crlf = pem.replace('\n', "\r\n");
        assert_eq!(pem_to_der(&crlf).unwrap(), der);
        let indented = "  -----BEGIN CERTIFICATE-----\n  MAMB\n  Af8=\n  -----END CERTIFICATE-----";
        assert_eq!(pem_to_der(indented).unwrap(), der);
        let unterminated = "-----BEGIN CERTIFICATE-----\nMAMBAf8=\n";
        assert!(matches!(
            pem_to_der(unterminated),
            Err(PkiError::Pem { reason, .. }) if reason.contains("no END line")
        ));
        let empty = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
        assert!(
            matches!(pem_to_der(empty), Err(PkiError::Pem { reason, .. }) if reason.contains("empty"))
        );
        let headers = "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\nMAMBAf8=\n-----END CERTIFICATE-----\n";
        assert!(matches!(pem_to_der(headers), Err(PkiError::Pem { .. })));
    }

    #[test]
    fn hex_formats() {
        assert_eq!(serial_hex(&[0x00, 0x80, 0x0a]), "800A");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(hex_upper(&[0xab, 0x01], Some(':')), "AB:01");
    }

    #[test]
    fn times_in_messages_are_rfc3339_utc_seconds() {
        let t = time::macros::datetime!(2026-01-01 01:00:00.5 +01:00);
        assert_eq!(rfc3339(&t), "2026-01-01T00:00:00Z");
    }

    #[test]
    fn p256_pkcs8_template_holds_the_scalar_and_point() {
        let secret = keys::random_p256(&mut SeededRandom::new(1)).unwrap();
        let key = keys::canonical_p256(&secret);
        let point = keys::public_point(&secret.public_key());
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
