//! Revocation notices: how a site tells a linked site that it no longer
//! accepts its certificate, in a form the linked site can trust.
//!
//! The notice is JSON ([`RevokeNotice`]) signed with ECDSA P-256 / SHA-256
//! by the key of the CA that issued the recipient's certificate: after
//! `revoke-access` that is the *previous* CA (the one in the recipient's
//! token; the listener keeps its key in memory for this), after
//! `revoke-access --site` it is the current one. The recipient checks the
//! signature with the public key of the CA certificate in its own token, so
//! only the site that issued its credentials can make its link say
//! "access revoked". What is signed is [`NOTICE_CONTEXT`] followed by the
//! payload's bytes, exactly as sent.
//!
//! The notice names the recipient's certificate (its serial number), so it
//! cannot be replayed to another site's link.

use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
};
use skupper_token::pki::pem_to_der;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer as _;

/// Signed before the payload, so the signature cannot be taken for
/// anything else the CA key signs (certificates).
pub const NOTICE_CONTEXT: &[u8] = b"skupper-token link revoke-notice v1\n";

/// The largest payload accepted.
pub const MAX_NOTICE_BYTES: usize = 8 * 1024;

/// What a site says when it stops accepting a linked site's certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevokeNotice {
    /// The revoking site's id (the recipient's token names it).
    pub issuer_site_id: String,
    /// The revoking site's name.
    pub issuer_site_name: String,
    /// When access was revoked, RFC 3339.
    pub at: String,
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

impl RevokeNotice {
    /// The link state reason: `access revoked by west (site <id>) at
    /// <time>`, and what to do about it.
    pub fn reason(&self) -> String {
        format!(
            "access revoked by {} (site {}) at {}; to link again, get a new token from that site and replace this link with it: 'skupper-token link create FILE --replace'",
            printable(&self.issuer_site_name),
            printable(&self.issuer_site_id),
            self.at
        )
    }

    /// What was revoked, in words (for the log).
    pub fn what(&self) -> String {
        match &self.revoked {
            Revoked::AccessRevoked { ca_generation } => {
                format!("all access revoked (new CA, generation {ca_generation})")
            }
            Revoked::PeerRevoked { revoked_serials } => {
                format!("certificate(s) {} revoked", revoked_serials.join(", "))
            }
        }
    }
}

/// A notice as sent: the payload and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNotice {
    /// The notice as JSON text.
    pub payload: String,
    /// The signature, lowercase hex of the ASN.1 DER ECDSA signature.
    pub signature: String,
}

/// Signs `notice` with a CA key (PKCS#8 DER, ECDSA P-256).
pub fn sign(notice: &RevokeNotice, ca_key_pkcs8: &[u8]) -> Result<SignedNotice, String> {
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, ca_key_pkcs8, &rng)
        .map_err(|e| format!("the CA key cannot sign notices (it must be ECDSA P-256): {e}"))?;
    let payload = serde_json::to_string(notice).map_err(|e| e.to_string())?;
    let signature = key
        .sign(&rng, &signed_bytes(&payload))
        .map_err(|e| format!("signing the notice failed: {e}"))?;
    Ok(SignedNotice {
        payload,
        signature: hex(signature.as_ref()),
    })
}

/// Checks a notice's signature against the CA certificate `ca_pem` (the
/// one in the recipient's token) and reads it. Also checks that it is
/// about `own_serial` (the recipient's certificate) and from
/// `issuer_site_id` (the site the token is from).
pub fn verify(
    signed: &SignedNotice,
    ca_pem: &str,
    issuer_site_id: &str,
    own_serial: &str,
) -> Result<RevokeNotice, String> {
    if signed.payload.len() > MAX_NOTICE_BYTES {
        return Err(format!(
            "the notice is {} bytes, over the {MAX_NOTICE_BYTES} byte limit",
            signed.payload.len()
        ));
    }
    let signature = unhex(&signed.signature).ok_or("the signature is not hex")?;
    let key = ca_public_key(ca_pem)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key)
        .verify(&signed_bytes(&signed.payload), &signature)
        .map_err(|_| {
            "the signature does not verify with the CA certificate in this link's token".to_owned()
        })?;
    let notice: RevokeNotice = serde_json::from_str(&signed.payload)
        .map_err(|e| format!("the signed notice cannot be read: {e}"))?;
    if notice.issuer_site_id != issuer_site_id {
        return Err(format!(
            "the notice is from site {:?}, but this link goes to site {issuer_site_id:?}",
            notice.issuer_site_id
        ));
    }
    if !notice.certificate_serial.eq_ignore_ascii_case(own_serial) {
        return Err(format!(
            "the notice is about certificate {:?}, not this link's certificate {own_serial}",
            notice.certificate_serial
        ));
    }
    if let Revoked::PeerRevoked { revoked_serials } = &notice.revoked {
        if !revoked_serials
            .iter()
            .any(|s| s.eq_ignore_ascii_case(own_serial))
        {
            return Err("the notice does not list this link's certificate as revoked".into());
        }
    }
    let at = OffsetDateTime::parse(&notice.at, &Rfc3339)
        .map_err(|e| format!("the notice's time {:?} is not RFC 3339: {e}", notice.at))?;
    Ok(RevokeNotice {
        at: rfc3339(at),
        ..notice
    })
}

/// A time as RFC 3339 in UTC, whole seconds (`2026-11-28T11:00:00Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).truncate_to_second();
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn signed_bytes(payload: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(NOTICE_CONTEXT.len() + payload.len());
    m.extend_from_slice(NOTICE_CONTEXT);
    m.extend_from_slice(payload.as_bytes());
    m
}

/// The uncompressed P-256 point of the first certificate in `ca_pem`.
fn ca_public_key(ca_pem: &str) -> Result<Vec<u8>, String> {
    let der = pem_to_der(ca_pem).map_err(|e| format!("the token's CA certificate: {e}"))?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der)
        .map_err(|e| format!("the token's CA certificate cannot be parsed: {e}"))?;
    let spki = cert.public_key();
    let ec = x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY;
    let p256 = x509_parser::oid_registry::OID_EC_P256;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    if spki.algorithm.algorithm != ec || curve.as_ref() != Some(&p256) {
        return Err(
            "the token's CA key is not ECDSA P-256, so notices from its site cannot be verified"
                .into(),
        );
    }
    Ok(spki.subject_public_key.data.to_vec())
}

/// Makes a peer-supplied string safe for one log line.
pub(crate) fn printable(s: &str) -> String {
    let clean = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if clean {
        s.to_owned()
    } else {
        let mut q = format!("{:?}", s.chars().take(253).collect::<String>());
        if s.chars().count() > 253 {
            q.push_str("...");
        }
        q
    }
}

/// Makes peer-supplied free text (a reason) safe for one log line.
pub(crate) fn printable_text(s: &str) -> String {
    const MAX: usize = 512;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > MAX {
        out.push_str("...");
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 512 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use skupper_token::pki::CaIssuer;
    use skupper_token::random::SeededRandom;

    fn ca(seed: u64) -> CaIssuer {
        CaIssuer::new_site_ca(
            &mut SeededRandom::new(seed),
            OffsetDateTime::now_utc(),
            time::Duration::days(1),
        )
        .unwrap()
    }

    fn notice() -> RevokeNotice {
        RevokeNotice {
            issuer_site_id: "west-id".into(),
            issuer_site_name: "west".into(),
            at: "2026-11-28T11:00:00Z".into(),
            certificate_serial: "0ABC".into(),
            revoked: Revoked::AccessRevoked { ca_generation: 2 },
        }
    }

    #[test]
    fn a_notice_signed_by_the_token_ca_verifies() {
        let ca = ca(1);
        let signed = sign(&notice(), ca.certified_key().key.pkcs8_der()).unwrap();
        let got = verify(&signed, ca.ca_pem(), "west-id", "0abc").unwrap();
        assert_eq!(got, notice());
        assert_eq!(
            got.reason(),
            "access revoked by west (site west-id) at 2026-11-28T11:00:00Z; to link again, get a new token from that site and replace this link with it: 'skupper-token link create FILE --replace'"
        );
    }

    #[test]
    fn forged_altered_or_misdirected_notices_are_refused() {
        let (ca, other) = (ca(1), ca(2));
        let key = ca.certified_key().key.pkcs8_der();
        let signed = sign(&notice(), key).unwrap();
        // Another CA's key.
        let forged = sign(&notice(), other.certified_key().key.pkcs8_der()).unwrap();
        assert!(verify(&forged, ca.ca_pem(), "west-id", "0ABC")
            .unwrap_err()
            .contains("does not verify"));
        // Altered payload.
        let altered = SignedNotice {
            payload: signed.payload.replace("west", "evil"),
            ..signed.clone()
        };
        assert!(verify(&altered, ca.ca_pem(), "west-id", "0ABC").is_err());
        // Not for this certificate, or not from this link's site.
        assert!(verify(&signed, ca.ca_pem(), "west-id", "0ABD")
            .unwrap_err()
            .contains("not this link's certificate"));
        assert!(verify(&signed, ca.ca_pem(), "north-id", "0ABC").is_err());
        // Garbage signature.
        let garbage = SignedNotice {
            signature: "zz".into(),
            ..signed.clone()
        };
        assert!(verify(&garbage, ca.ca_pem(), "west-id", "0ABC").is_err());
        // A peer revocation must list the certificate.
        let mut n = notice();
        n.revoked = Revoked::PeerRevoked {
            revoked_serials: vec!["FFFF".into()],
        };
        let s = sign(&n, key).unwrap();
        assert!(verify(&s, ca.ca_pem(), "west-id", "0ABC").is_err());
        n.revoked = Revoked::PeerRevoked {
            revoked_serials: vec!["0ABC".into()],
        };
        let s = sign(&n, key).unwrap();
        assert!(verify(&s, ca.ca_pem(), "west-id", "0ABC").is_ok());
    }

    #[test]
    fn peer_strings_are_made_printable() {
        assert_eq!(printable("west"), "west");
        assert_eq!(printable("a\nb"), "\"a\\nb\"");
        assert_eq!(printable(""), "\"\"");
    }
}
