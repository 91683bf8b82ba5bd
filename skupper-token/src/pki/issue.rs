//! Issuing certificates: [`CaIssuer`], a site CA made or loaded, that
//! issues the site's server certificate and client certificates for linking
//! sites; [`CertifiedKey`], a certificate with its key; and when what it
//! issues is valid ([`BACKDATE`], [`DEFAULT_VALIDITY`]).

use std::fmt;
// An address value for IP SANs: parsing and printing only, no sockets.
use core::net::IpAddr;

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType,
    SerialNumber, SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime, UtcOffset};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry as oids;
use x509_parser::x509::X509Name;

use super::error::PkiError;
use super::keys::{self, KeyBackend, P256Signing, MAX_DRAWS};
use super::pem::{parse_cert, pem_encode, pem_to_der};
use super::private_key::{KeyKind, PrivateKey};
use super::verify::PeerVerifier;
use crate::random::Random;

/// Common name of every site CA, as in Skupper.
pub const SITE_CA_CN: &str = "skupper-site-ca";

/// Common name of a server certificate issued without any host name.
pub const DEFAULT_SERVER_CN: &str = "skupper-router";

/// Validity of certificates made by Skupper: 5 years (5 × 365 days).
pub const DEFAULT_VALIDITY: Duration = Duration::days(5 * 365);

fn encoding_error(e: rcgen::Error) -> PkiError {
    PkiError::Encoding {
        reason: e.to_string(),
    }
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
        let sans = host_sans(hosts)?;
        let common_name = hosts
            .iter()
            .map(|h| h.trim())
            .find(|h| !h.is_empty())
            .unwrap_or(DEFAULT_SERVER_CN);
        self.issue(common_name, sans, rng, now, validity)
    }

    /// Issues a client certificate as a Skupper 2.x grant server or `link
    /// generate` does: CN = `common_name` (the redeeming site's id, or the
    /// Secret's name), `hosts` (the issuing site's endpoint hosts) as SANs
    /// as [`CaIssuer::issue_server`] writes them, otherwise as
    /// [`CaIssuer::issue_client`].
    pub fn issue_client_for_hosts(
        &self,
        common_name: &str,
        hosts: &[String],
        rng: &mut dyn Random,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<CertifiedKey, PkiError> {
        self.issue(common_name, host_sans(hosts)?, rng, now, validity)
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

/// `hosts` as SANs: IP addresses as IP SANs, names as DNS SANs; empty
/// entries and duplicates skipped.
fn host_sans(hosts: &[String]) -> Result<Vec<SanType>, PkiError> {
    let mut sans: Vec<SanType> = Vec::with_capacity(hosts.len());
    for host in hosts {
        let h = host.trim();
        if h.is_empty() {
            continue;
        }
        let san = host_san(h)?;
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
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
