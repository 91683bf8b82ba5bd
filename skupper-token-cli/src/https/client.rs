//! How a claim redemption client talks to a claims server: the claim URL
//! ([`ClaimUrl`]), the client's options ([`ClientOptions`]), its TLS
//! configuration, and how an answer maps to a cert token or a refusal. The
//! client itself is [`crate::runtime::redeem::RedeemClient`], on hyper.
//!
//! It trusts only the CA certificate in the claim token (not the system's
//! roots), checks that the server's certificate is valid for the host name
//! or IP address in the token's URL, speaks only TLS 1.3, follows no
//! redirects, and gives every step a timeout.
//!
//! Retries: 5xx answers (busy, failing) and a server that cannot be
//! reached are tried again a few times with a short backoff
//! ([`ClientOptions::retry_delays`]); a refusal (400, 403 wrong password,
//! 404) is final, as the same request would be refused again
//! ([`skupper_token::transport::status_is_retryable`]; Skupper's own client
//! also retries 403, which only repeats a wrong password). Once the
//! request has been sent, an I/O failure is not retried here (the server
//! may have spent a use of the claim): it is reported, and the core marks
//! the link as worth retrying later.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::{CertificateError, ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use skupper_token::token::{CertToken, MAX_TOKEN_BYTES};
use skupper_token::transport::{status_is_retryable, TransportError};

use super::http::{self, SITE_VERSION_PARAM};
use super::tls_provider;

/// Timeouts, retries and limits of a claim redemption client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Time to open the TCP connection, per address (default 10 s).
    pub connect_timeout: Duration,
    /// Time for the TLS handshake, sending the request and reading the
    /// whole answer, per attempt (default 10 s).
    pub timeout: Duration,
    /// The waits before each retry; one attempt more than there are
    /// delays (default 200 ms, 400 ms: three attempts). Empty: no retries.
    pub retry_delays: Vec<Duration>,
    /// The largest answer accepted (default: a token's limit plus 16 KiB
    /// of headers).
    pub max_response_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            retry_delays: vec![Duration::from_millis(200), Duration::from_millis(400)],
            max_response_bytes: MAX_TOKEN_BYTES + MAX_RESPONSE_HEAD,
        }
    }
}

/// The largest response head accepted.
pub(crate) const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// At most this much of an error answer's body is kept.
/// A refusal's body is cut to this many characters in the error.
const MAX_ERROR_BODY_CHARS: usize = 2048;

/// A claim URL, split: `https://host[:port]/path[?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimUrl {
    /// The host name or IP address (an IPv6 address without brackets).
    pub host: String,
    /// The port (443 when the URL has none).
    pub port: u16,
    /// The path, as written (percent-encoded), starting with `/`.
    pub path: String,
    /// The query, as written, if any (without `?`).
    pub query: Option<String>,
}

impl fmt::Display for ClaimUrl {
    /// `host:port` (`[v6]:port`): the address, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl ClaimUrl {
    /// Reads a claim URL. Only `https` is accepted; user info, spaces,
    /// control and non-ASCII characters are refused (they would end up in
    /// the request line).
    pub fn parse(url: &str) -> Result<ClaimUrl, TransportError> {
        let bad = |why: &str| TransportError::Protocol {
            reason: format!("the claim URL {url:?} cannot be used: {why}"),
        };
        if !url.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err(bad(
                "it has spaces, control characters or non-ASCII characters",
            ));
        }
        // A fragment is never sent; `::http::Uri` (a request target) has none.
        let without_fragment = url.split('#').next().unwrap_or_default();
        let uri: ::http::Uri = without_fragment
            .parse()
            .map_err(|e: ::http::uri::InvalidUri| bad(&format!("it is not a URL ({e})")))?;
        if !uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"))
        {
            return Err(bad("it does not start with https://"));
        }
        let authority = uri.authority().ok_or_else(|| bad("it has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("it has user information before the host"));
        }
        let bracketed = authority.host();
        let host = bracketed
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(bracketed);
        if host.is_empty() {
            return Err(bad("it has no host"));
        }
        // Read from the text: `Authority::port` is `None` for a port out
        // of range, which must not mean 443.
        let port = match authority.as_str().strip_prefix(bracketed) {
            Some("") => 443,
            Some(p) => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
            None => return Err(bad("it has no host")),
        };
        Ok(ClaimUrl {
            host: host.to_owned(),
            port,
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
        })
    }

    /// The request target for redeeming as a site of `version`:
    /// `/path?[query&]site-version=<version>`.
    pub fn request_target(&self, version: &str) -> String {
        let version = format!("{SITE_VERSION_PARAM}={}", http::query_escape(version));
        match &self.query {
            Some(q) if !q.is_empty() => format!("{}?{q}&{version}", self.path),
            _ => format!("{}?{version}", self.path),
        }
    }
}

/// How one attempt failed, and whether another may help (the blocking and
/// the async client share it).
pub(crate) struct Failed {
    pub(crate) error: TransportError,
    pub(crate) retry: bool,
}

impl Failed {
    /// Another attempt cannot help.
    pub(crate) fn final_(error: TransportError) -> Failed {
        Failed {
            error,
            retry: false,
        }
    }

    /// Another attempt may help.
    pub(crate) fn retry(error: TransportError) -> Failed {
        Failed { error, retry: true }
    }
}

/// A claims server's answer, `status` and `body`: the cert token of a 200,
/// or the refusal with its reason (cut to [`MAX_ERROR_BODY_CHARS`]), retried
/// only for 5xx.
pub(crate) fn answer(url: &ClaimUrl, status: u16, body: &[u8]) -> Result<CertToken, Failed> {
    if status == 200 {
        return CertToken::decode(body).map_err(|e| {
            Failed::final_(TransportError::Protocol {
                reason: format!(
                    "the claims server at {url} answered 200 but not with a cert token: {e}"
                ),
            })
        });
    }
    let mut body = String::from_utf8_lossy(body).into_owned();
    if body.chars().count() > MAX_ERROR_BODY_CHARS {
        body = body.chars().take(MAX_ERROR_BODY_CHARS).collect();
        body.push_str("...\n");
    }
    Err(Failed {
        retry: status_is_retryable(status),
        error: TransportError::Refused { status, body },
    })
}

/// The error to report after `attempts` attempts: an unreachable server
/// says how many were made.
pub(crate) fn after_attempts(error: TransportError, attempts: u32) -> TransportError {
    match error {
        TransportError::Unreachable { reason } if attempts > 1 => TransportError::Unreachable {
            reason: format!("{reason} ({attempts} attempts)"),
        },
        other => other,
    }
}

/// A TLS client configuration that trusts only the certificates in
/// `ca_pem` (the token's `ca.crt`), TLS 1.3 only, no client certificate.
pub(crate) fn client_config(ca_pem: &str) -> Result<Arc<ClientConfig>, TransportError> {
    let bad_ca = |why: String| TransportError::Handshake {
        reason: format!("the token's CA certificate (ca.crt) cannot be used: {why}"),
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| bad_ca(format!("it is not valid PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad_ca(format!("it is not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad_ca("it holds no CERTIFICATE block".into()));
    }
    let mut config = ClientConfig::builder_with_provider(tls_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TransportError::Handshake {
            reason: format!("cannot set up TLS: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Says what a failed handshake means for someone holding a claim token.
pub(crate) fn explain_handshake(url: &ClaimUrl, e: &rustls::Error) -> String {
    let why = match e {
        // Every Skupper site CA is named `skupper-site-ca`: a certificate
        // from another site's CA finds the token's CA by name and then fails
        // its signature check.
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!(
            "the server's certificate is not from the CA in the token ({e}): the site may have revoked access since the token was made (ask for a new token), or {url} is not the site that issued it"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's certificate is not valid for {:?}: the token's URL names a host the site's certificate does not list ({e})",
            url.host
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => format!("the server's certificate has expired ({e})"),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => format!("the server's certificate is not valid yet: check the clocks ({e})"),
        rustls::Error::InvalidCertificate(other) => {
            format!("the server's certificate was refused: {other:?}")
        }
        rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)
        | rustls::Error::PeerIncompatible(_) => format!(
            "the server does not speak TLS 1.3, which redemption requires ({e})"
        ),
        rustls::Error::AlertReceived(alert) => {
            format!("the server refused the handshake (alert {alert:?})")
        }
        other => other.to_string(),
    };
    format!("TLS handshake with {url} failed: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_urls_parse() {
        let u = ClaimUrl::parse("https://127.0.0.1:8081/c1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8081, "/c1")
        );
        assert_eq!(u.request_target("1.9.6"), "/c1?site-version=1.9.6");
        assert_eq!(u.to_string(), "127.0.0.1:8081");
        let u = ClaimUrl::parse("HTTPS://[::1]:9/a?x=1#frag").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(u.request_target("v 2"), "/a?x=1&site-version=v+2");
        assert_eq!(u.to_string(), "[::1]:9");
        let u = ClaimUrl::parse("https://west.example").unwrap();
        assert_eq!((u.port, u.path.as_str()), (443, "/"));
    }

    #[test]
    fn bad_claim_urls_are_refused_with_the_reason() {
        for (url, why) in [
            ("http://h:1/c", "https://"),
            ("https://u@h:1/c", "user information"),
            ("https://h:0/c", "port"),
            ("https://h:99999/c", "port"),
            ("https://:1/c", "no host"),
            ("https://h:1/c d", "spaces"),
            ("https://h:1/c\r\nX: y", "control"),
            ("https://[::1/c", "not a URL"),
        ] {
            let e = ClaimUrl::parse(url).unwrap_err();
            assert!(
                matches!(&e, TransportError::Protocol { reason } if reason.contains(why)),
                "{url}: {e:?}"
            );
        }
    }

    #[test]
    fn a_ca_that_is_not_pem_is_a_handshake_error() {
        for pem in [
            "",
            "not pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            assert!(
                matches!(client_config(pem), Err(TransportError::Handshake { .. })),
                "{pem:?}"
            );
        }
    }
}
