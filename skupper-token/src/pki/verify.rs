//! Verifying a linking site's certificate: [`PeerVerifier`] checks a
//! peer's chain with rustls-webpki against one CA, at the time passed in,
//! and returns the [`PeerCertificate`] it verified or the [`AuthError`]
//! that says why not.

use std::fmt;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer as _;

use super::error::{AuthError, PkiError};
use super::info::{key_kind, CaKeyKind};
use super::pem::{fingerprint, hex_upper, parse_cert, pem_to_der, serial_hex};

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
