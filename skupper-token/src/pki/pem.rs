//! PEM and DER: PEM blocks written and found, a certificate's DER parsed,
//! and serials and fingerprints in hex as OpenSSL prints them.

use base64::Engine as _;
use p256::elliptic_curve::zeroize::Zeroizing;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use super::error::PkiError;

/// `der` as a PEM block labelled `label`, 64 base64 characters a line.
pub(super) fn pem_encode(label: &str, der: &[u8]) -> String {
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
pub(super) fn pem_find<'a>(
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

/// Parses one DER certificate, refusing trailing data.
pub(super) fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
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

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// `bytes` as uppercase hex, with `sep` between bytes if given.
pub(super) fn hex_upper(bytes: &[u8], sep: Option<char>) -> String {
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
pub(super) fn serial_hex(raw: &[u8]) -> String {
    let mut raw = raw;
    while raw.len() > 1 && raw[0] == 0 {
        raw = &raw[1..];
    }
    hex_upper(raw, None)
}

/// SHA-256 fingerprint as uppercase hex with colons, like
/// `openssl x509 -fingerprint -sha256`.
pub(super) fn fingerprint(der: &[u8]) -> String {
    hex_upper(
        ring::digest::digest(&ring::digest::SHA256, der).as_ref(),
        Some(':'),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
