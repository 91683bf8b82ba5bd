//! Reading a certificate without verifying it: [`certificate_info`] and
//! the [`CertificateInfo`] it returns, and the type of a certificate's
//! public key.

// An address value for IP SANs: parsing and printing only, no sockets.
use core::net::IpAddr;

use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry as oids;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::error::PkiError;
use super::pem::{fingerprint, hex_upper, parse_cert, serial_hex};

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

/// The type of a certificate's public key, as far as it matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CaKeyKind {
    EcP256,
    EcP384,
    Rsa,
    Ed25519,
}

impl CaKeyKind {
    /// The key type in words, e.g. `ECDSA P-256`.
    pub(super) fn name(self) -> &'static str {
        match self {
            CaKeyKind::EcP256 => "ECDSA P-256",
            CaKeyKind::EcP384 => "ECDSA P-384",
            CaKeyKind::Rsa => "RSA",
            CaKeyKind::Ed25519 => "Ed25519",
        }
    }
}

/// The key type of `spki`, `None` for any other.
pub(super) fn key_kind(spki: &SubjectPublicKeyInfo<'_>) -> Option<CaKeyKind> {
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
