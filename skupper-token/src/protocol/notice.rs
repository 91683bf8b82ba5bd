//! The signed revocation notice: how a listening site tells a linked site
//! that it no longer accepts its certificate, in a form the linked site can
//! trust.
//!
//! The notice is JSON ([`RevokeNotice`]) signed with ECDSA P-256 / SHA-256
//! by the key of the CA that issued the recipient's certificate: after
//! `revoke-access` that is the *previous* CA (the one in the recipient's
//! token; the listener keeps its key for this), after `revoke-access
//! --site` it is the current one. The recipient checks the signature with
//! the public key of the CA certificate in its own token
//! ([`SignedNotice::verify`]), so only the site that issued its credentials
//! can make its link say "access revoked". What is signed is
//! [`NOTICE_CONTEXT`] followed by the payload's bytes, exactly as sent; the
//! signature travels as lowercase hex of the DER `Ecdsa-Sig-Value`, in the
//! `revoke-notice` frame ([`Frame::RevokeNotice`]).
//!
//! The notice names the recipient's certificate (its serial number), so it
//! cannot be replayed to another site's link.
//!
//! Signing goes through the site's [`KeyBackend`](crate::keys::KeyBackend)
//! ([`RevokeNotice::sign`] takes the loaded [`P256Signing`] key): RFC 6979
//! with the default backend, so a seeded run signs the same bytes every
//! time; verification is pure. Nothing here reads a clock or OS randomness.

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use time::OffsetDateTime;
use x509_parser::prelude::FromDer as _;

use super::frame::Frame;
use super::printable::printable;
use crate::claim::{hex, rfc3339};
use crate::keys::P256Signing;
use crate::pki::{pem_to_der, PkiError};

/// Signed before the payload, so the signature cannot be taken for
/// anything else the CA key signs (certificates).
pub const NOTICE_CONTEXT: &[u8] = b"skupper-token link revoke-notice v1\n";

/// The largest payload accepted, in bytes.
pub const MAX_NOTICE_BYTES: usize = 8 * 1024;

/// The longest signature accepted, in hex digits (a P-256 DER signature
/// is at most 72 bytes).
pub const MAX_SIGNATURE_HEX: usize = 512;

/// What a site says when it stops accepting a linked site's certificate.
///
/// On the wire (the signed payload) it is one JSON object:
/// `{"issuer_site_id":..,"issuer_site_name":..,"at":"2026-11-28T11:00:00Z",
/// "certificate_serial":..,"kind":"access-revoked","ca_generation":2}` or,
/// for one site, `"kind":"peer-revoked","revoked_serials":[..]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevokeNotice {
    /// The revoking site's id (the recipient's token names it).
    pub issuer_site_id: String,
    /// The revoking site's name.
    pub issuer_site_name: String,
    /// When access was revoked. Sent as RFC 3339 in UTC, whole seconds.
    #[serde(with = "whole_seconds")]
    pub at: OffsetDateTime,
    /// The serial number (uppercase hex) of the recipient's certificate,
    /// the one that no longer works.
    pub certificate_serial: String,
    /// What was revoked.
    #[serde(flatten)]
    pub revoked: Revoked,
}

/// What was revoked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Revoked {
    /// `revoke-access`: the site has a new CA; no certificate of the old
    /// one works.
    AccessRevoked {
        /// The new CA generation.
        ca_generation: u32,
    },
    /// `revoke-access --site`: these certificates no longer work.
    PeerRevoked {
        /// Their serial numbers, uppercase hex.
        revoked_serials: Vec<String>,
    },
}

/// A notice as sent: the payload and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNotice {
    /// The notice as JSON text, exactly as signed.
    pub payload: String,
    /// The signature, lowercase hex of the DER ECDSA signature.
    pub signature: String,
}

/// Why a notice was not signed, or not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoticeError {
    /// The payload is over [`MAX_NOTICE_BYTES`].
    #[error("the notice is {bytes} bytes, over the {max} byte limit")]
    TooLarge {
        /// The payload's size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The signature is not an even number of hex digits, or is over
    /// [`MAX_SIGNATURE_HEX`] of them.
    #[error("the notice's signature is not hex of at most {max} digits")]
    SignatureNotHex {
        /// The limit, in hex digits.
        max: usize,
    },
    /// The CA certificate the notice is checked against cannot be read.
    #[error("the CA certificate in this link's token cannot be read: {reason}")]
    CaCertificate {
        /// What is wrong with it.
        reason: String,
    },
    /// The CA certificate's key is not ECDSA P-256.
    #[error("the CA key in this link's token is {algorithm}, not ECDSA P-256, so notices from its site cannot be verified")]
    CaKeyNotP256 {
        /// The key's algorithm (an OID for unknown ones).
        algorithm: String,
    },
    /// The signature is not the token CA's over this payload: forged,
    /// altered, or signed by another CA.
    #[error("the signature does not verify with the CA certificate in this link's token")]
    BadSignature,
    /// The signature verifies but the payload is not a notice.
    #[error("the signed notice cannot be read: {reason}")]
    Unreadable {
        /// The JSON parser's complaint.
        reason: String,
    },
    /// The notice comes from another site than the one the link goes to.
    #[error("the notice is from site {from}, but this link goes to site {expected}")]
    WrongSite {
        /// The site the notice names (made printable).
        from: String,
        /// The site the link's token is from.
        expected: String,
    },
    /// The notice is about another certificate.
    #[error("the notice is about certificate {named}, not this link's certificate {own}")]
    WrongCertificate {
        /// The serial the notice names (made printable).
        named: String,
        /// This link's certificate serial.
        own: String,
    },
    /// A `revoke-access --site` notice that does not list the recipient's
    /// certificate among the revoked ones.
    #[error(
        "the notice revokes {listed} certificate(s), none of them this link's certificate {own}"
    )]
    NotListed {
        /// How many serials it lists.
        listed: usize,
        /// This link's certificate serial.
        own: String,
    },
    /// The CA key could not sign.
    #[error("the revocation notice cannot be signed: {source}")]
    Signing {
        /// The key backend's error.
        source: PkiError,
    },
    /// The notice could not be written as JSON.
    #[error("the revocation notice cannot be encoded: {reason}")]
    Encoding {
        /// The encoder's complaint.
        reason: String,
    },
}

/// The notice a listening site owes a peer whose certificate it no longer
/// accepts ([`RevokeNotice::for_peer`]), and which CA's key signs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedNotice {
    /// The notice.
    pub notice: RevokeNotice,
    /// The CA generation whose key must sign it: the one that issued the
    /// peer's certificate (the one in the peer's token, so the peer can
    /// check it).
    pub signer_generation: u32,
}

impl RevokeNotice {
    /// The notice a listening site whose record is now `record` owes a
    /// connected peer whose certificate (serial `serial`, hex, issued by CA
    /// generation `generation` when the listener knows which) no longer
    /// authenticates: [`Revoked::AccessRevoked`], signed by that old CA,
    /// when it was replaced since (`revoke-access`);
    /// [`Revoked::PeerRevoked`], signed by the current CA, when the site
    /// revoked that certificate (`revoke-access --site`); `None` when it
    /// was not revoked (it expired, say, or was issued by a CA the
    /// listener does not know: the peer gets a plain goodbye). The
    /// listener keeps the key of an old CA while a connection it issued
    /// the certificate of is open.
    pub fn for_peer(
        record: &crate::site::SiteRecord,
        serial: &str,
        generation: Option<u32>,
        now: OffsetDateTime,
    ) -> Option<OwedNotice> {
        let (revoked, at, signer_generation) = match generation {
            Some(old) if old < record.ca_generation => (
                Revoked::AccessRevoked {
                    ca_generation: record.ca_generation,
                },
                record.revoked_at.unwrap_or(now),
                old,
            ),
            _ => {
                let r = record
                    .revoked
                    .iter()
                    .find(|r| r.serial.eq_ignore_ascii_case(serial))?;
                (
                    Revoked::PeerRevoked {
                        revoked_serials: vec![serial.to_owned()],
                    },
                    r.at,
                    record.ca_generation,
                )
            }
        };
        Some(OwedNotice {
            notice: RevokeNotice {
                issuer_site_id: record.id.clone(),
                issuer_site_name: record.name.clone(),
                at,
                certificate_serial: serial.to_owned(),
                revoked,
            },
            signer_generation,
        })
    }

    /// The situation, for the link's state reason: `access revoked by west
    /// (site <id>) at 2026-11-28T11:00:00Z`. Peer-supplied names are made
    /// printable. (What to do about it is the caller's to add.)
    pub fn reason(&self) -> String {
        format!(
            "access revoked by {} (site {}) at {}",
            printable(&self.issuer_site_name),
            printable(&self.issuer_site_id),
            rfc3339(&self.at)
        )
    }

    /// What was revoked, in words (for the log): `all access revoked (new
    /// CA, generation 2)` or `certificate(s) 0ABC revoked`.
    pub fn what(&self) -> String {
        match &self.revoked {
            Revoked::AccessRevoked { ca_generation } => {
                format!("all access revoked (new CA, generation {ca_generation})")
            }
            Revoked::PeerRevoked { revoked_serials } => {
                let serials: Vec<String> = revoked_serials.iter().map(|s| printable(s)).collect();
                format!("certificate(s) {} revoked", serials.join(", "))
            }
        }
    }

    /// Signs the notice with `ca_key`, the key of the CA that issued the
    /// recipient's certificate, loaded through the site's key backend
    /// ([`KeyBackend::p256_signer`](crate::keys::KeyBackend::p256_signer)).
    pub fn sign(&self, ca_key: &dyn P256Signing) -> Result<SignedNotice, NoticeError> {
        let payload = serde_json::to_string(self).map_err(|e| NoticeError::Encoding {
            reason: e.to_string(),
        })?;
        let signature = ca_key
            .sign(&signed_bytes(&payload))
            .map_err(|source| NoticeError::Signing { source })?;
        Ok(SignedNotice {
            payload,
            signature: hex(&signature),
        })
    }
}

impl SignedNotice {
    /// Checks the notice's signature against the CA certificate `ca_pem`
    /// (the one in the recipient's token) and reads it. Also checks that it
    /// is from `issuer_site_id` (the site the token is from) and about
    /// `own_serial` (the recipient's certificate, hex in either case), and
    /// that a `revoke-access --site` notice lists that certificate. The
    /// notice's time comes back in UTC, whole seconds.
    pub fn verify(
        &self,
        ca_pem: &str,
        issuer_site_id: &str,
        own_serial: &str,
    ) -> Result<RevokeNotice, NoticeError> {
        if self.payload.len() > MAX_NOTICE_BYTES {
            return Err(NoticeError::TooLarge {
                bytes: self.payload.len(),
                max: MAX_NOTICE_BYTES,
            });
        }
        let signature = unhex(&self.signature).ok_or(NoticeError::SignatureNotHex {
            max: MAX_SIGNATURE_HEX,
        })?;
        let key = ca_public_key(ca_pem)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key)
            .verify(&signed_bytes(&self.payload), &signature)
            .map_err(|_| NoticeError::BadSignature)?;
        let mut notice: RevokeNotice =
            serde_json::from_str(&self.payload).map_err(|e| NoticeError::Unreadable {
                reason: e.to_string(),
            })?;
        if notice.issuer_site_id != issuer_site_id {
            return Err(NoticeError::WrongSite {
                from: printable(&notice.issuer_site_id),
                expected: issuer_site_id.to_owned(),
            });
        }
        if !notice.certificate_serial.eq_ignore_ascii_case(own_serial) {
            return Err(NoticeError::WrongCertificate {
                named: printable(&notice.certificate_serial),
                own: own_serial.to_owned(),
            });
        }
        if let Revoked::PeerRevoked { revoked_serials } = &notice.revoked {
            if !revoked_serials
                .iter()
                .any(|s| s.eq_ignore_ascii_case(own_serial))
            {
                return Err(NoticeError::NotListed {
                    listed: revoked_serials.len(),
                    own: own_serial.to_owned(),
                });
            }
        }
        notice.at = notice
            .at
            .to_offset(time::UtcOffset::UTC)
            .truncate_to_second();
        Ok(notice)
    }
}

impl From<SignedNotice> for Frame {
    fn from(signed: SignedNotice) -> Frame {
        Frame::RevokeNotice {
            payload: signed.payload,
            signature: signed.signature,
        }
    }
}

/// What the signature covers: the context, then the payload's bytes.
fn signed_bytes(payload: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(NOTICE_CONTEXT.len() + payload.len());
    m.extend_from_slice(NOTICE_CONTEXT);
    m.extend_from_slice(payload.as_bytes());
    m
}

/// The uncompressed P-256 point of the first certificate in `ca_pem`.
fn ca_public_key(ca_pem: &str) -> Result<Vec<u8>, NoticeError> {
    let unreadable = |reason: String| NoticeError::CaCertificate { reason };
    let der = pem_to_der(ca_pem).map_err(|e| unreadable(e.to_string()))?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der)
        .map_err(|e| unreadable(e.to_string()))?;
    let spki = cert.public_key();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY {
        return Err(NoticeError::CaKeyNotP256 {
            algorithm: format!("a key of type {}", spki.algorithm.algorithm.to_id_string()),
        });
    }
    if curve.as_ref() != Some(&x509_parser::oid_registry::OID_EC_P256) {
        return Err(NoticeError::CaKeyNotP256 {
            algorithm: match curve {
                Some(oid) => format!("ECDSA on curve {}", oid.to_id_string()),
                None => "ECDSA with no named curve".into(),
            },
        });
    }
    Ok(spki.subject_public_key.data.to_vec())
}

/// Hex digits (either case) to bytes; `None` when odd, not hex, or over
/// [`MAX_SIGNATURE_HEX`] digits.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > MAX_SIGNATURE_HEX {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

/// The notice's time on the wire: RFC 3339, written in UTC with whole
/// seconds, read with any offset.
mod whole_seconds {
    use serde::de::Error as _;
    use serde::Deserialize as _;
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub(super) fn serialize<S: serde::Serializer>(
        at: &OffsetDateTime,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::claim::rfc3339(at))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(|e| {
            D::Error::custom(format!(
                "the notice's time {} is not RFC 3339: {e}",
                super::printable(&text)
            ))
        })
    }
}
