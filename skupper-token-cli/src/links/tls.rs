//! The TLS side of links: the listener's configuration (the site's server
//! certificate, client certificates checked by the core), the dialer's
//! (trust only the token's CA, present the token's certificate), and what
//! TLS failures mean in words.

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::Resumption;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName,
    RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject as _;
use skupper_token::pki::{pem_to_der, AuthError, PeerCertificate, PrivateKey};
use skupper_token::token::CertToken;
use skupper_token::transport::TransportError;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer as _;

use super::{lock, SiteOps};

/// The rustls provider: `ring`, as everywhere in this crate.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds listener configurations. One configuration per connection: it
/// carries the site's server certificate and CA as they are when the
/// connection arrives (so a revoke-access takes effect for the very next
/// handshake), and the verifier records why a certificate was refused.
pub(crate) struct ServerTls {
    provider: Arc<CryptoProvider>,
    /// The parsed server key, reused while the certificate is the same.
    key_cache: Mutex<Option<(Vec<u8>, Arc<rustls::sign::CertifiedKey>)>>,
    /// The CA subject (root hint), reused while the CA is the same.
    hint_cache: Mutex<Option<(String, Vec<DistinguishedName>)>>,
}

impl ServerTls {
    pub fn new(provider: Arc<CryptoProvider>) -> ServerTls {
        ServerTls {
            provider,
            key_cache: Mutex::new(None),
            hint_cache: Mutex::new(None),
        }
    }

    /// A configuration for one incoming connection, and its verifier (to
    /// read the verdict after the handshake).
    pub fn config(
        &self,
        site: &Arc<dyn SiteOps>,
    ) -> Result<(Arc<ServerConfig>, Arc<PeerAuth>), String> {
        let (ca_pem, server) = site
            .server_credentials()
            .map_err(|e| format!("cannot read the site's server certificate: {e}"))?
            .ok_or("this is an edge site: it has no CA and accepts no links")?;
        let key = {
            let mut cache = lock(&self.key_cache);
            match cache.as_ref() {
                Some((der, key)) if *der == server.cert_der => key.clone(),
                _ => {
                    let key = rustls::sign::CertifiedKey::from_der(
                        vec![CertificateDer::from(server.cert_der.clone())],
                        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                            server.key.pkcs8_der().to_vec(),
                        )),
                        &self.provider,
                    )
                    .map_err(|e| {
                        format!("the site's server certificate or key cannot be used: {e}")
                    })?;
                    let key = Arc::new(key);
                    *cache = Some((server.cert_der.clone(), key.clone()));
                    key
                }
            }
        };
        let hints = {
            let mut cache = lock(&self.hint_cache);
            match cache.as_ref() {
                Some((pem, hints)) if *pem == ca_pem => hints.clone(),
                _ => {
                    let hints = ca_subject(&ca_pem).map(|s| vec![s]).unwrap_or_default();
                    *cache = Some((ca_pem.clone(), hints.clone()));
                    hints
                }
            }
        };
        let auth = Arc::new(PeerAuth {
            site: site.clone(),
            hints,
            algorithms: self.provider.signature_verification_algorithms,
            verdict: Mutex::new(None),
        });
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_client_cert_verifier(auth.clone())
            .with_cert_resolver(Arc::new(FixedCert(key)));
        // Every connection authenticates with its certificate: nothing to
        // resume.
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        Ok((Arc::new(config), auth))
    }
}

/// The DER subject of the first certificate in `ca_pem`.
fn ca_subject(ca_pem: &str) -> Option<DistinguishedName> {
    let der = pem_to_der(ca_pem).ok()?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).ok()?;
    Some(DistinguishedName::from(cert.subject().as_raw().to_vec()))
}

#[derive(Debug)]
struct FixedCert(Arc<rustls::sign::CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The listener's client certificate check: the core decides
/// ([`skupper_token::site::Site::authenticate_peer`]: current CA,
/// validity, clientAuth, not revoked); rustls (ring) checks the handshake
/// signature. The verdict is kept for the log.
pub(crate) struct PeerAuth {
    site: Arc<dyn SiteOps>,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
    verdict: Mutex<Option<Result<PeerCertificate, AuthError>>>,
}

impl fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerAuth").finish_non_exhaustive()
    }
}

impl PeerAuth {
    /// Why the client's certificate was refused, if it was.
    pub fn refusal(&self) -> Option<AuthError> {
        match lock(&self.verdict).as_ref() {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }
}

/// The TLS certificate error (and so the alert the client gets) for a
/// refusal.
fn certificate_error(e: &AuthError) -> CertificateError {
    match e {
        AuthError::UnknownIssuer { .. } => CertificateError::UnknownIssuer,
        AuthError::BadSignature { .. } => CertificateError::BadSignature,
        AuthError::Expired { .. } | AuthError::CaNotValid { .. } => CertificateError::Expired,
        AuthError::NotYetValid { .. } => CertificateError::NotValidYet,
        AuthError::Revoked { .. } => CertificateError::Revoked,
        AuthError::NotClientAuth { .. } | AuthError::IsCa { .. } => {
            CertificateError::InvalidPurpose
        }
        AuthError::Malformed { .. } | AuthError::EmptyChain => CertificateError::BadEncoding,
        _ => CertificateError::ApplicationVerificationFailure,
    }
}

impl ClientCertVerifier for PeerAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let chain: Vec<&[u8]> = std::iter::once(end_entity.as_ref())
            .chain(intermediates.iter().map(|c| c.as_ref()))
            .collect();
        let now = i64::try_from(now.as_secs())
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or_else(OffsetDateTime::now_utc);
        // The check reads the site record from the store, and rustls asks
        // for it from inside the handshake that a tokio worker polls.
        let verdict = off_the_worker(|| self.site.authenticate_peer(&chain, now));
        let result = match &verdict {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(e) => Err(rustls::Error::InvalidCertificate(certificate_error(e))),
        };
        *lock(&self.verdict) = Some(verdict);
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Runs `f` (a store read) from synchronous code that a tokio worker is
/// polling: on a multi-thread runtime the worker hands its other tasks to
/// another thread meanwhile ([`tokio::task::block_in_place`]), so a slow
/// disk holds up no other connection; elsewhere `f` just runs.
fn off_the_worker<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The dialer's configuration for a link: trusts only the CA in the token,
/// presents the token's certificate and key, TLS 1.3, no resumption (every
/// connection shows its certificate).
pub(crate) fn client_config(
    provider: Arc<CryptoProvider>,
    token: &CertToken,
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(token.ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("the token's CA certificate is not valid PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the token's CA certificate cannot be used: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the token has no CA certificate".into());
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(token.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the token's certificate is not valid PEM: {e}"))?;
    if chain.is_empty() {
        return Err("the token has no certificate".into());
    }
    let key = PrivateKey::from_pem(token.key_pem.expose())
        .map_err(|e| format!("the token's private key cannot be used: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("the token's certificate and key cannot be used: {e}"))?;
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The name to check the server's certificate against: the endpoint host,
/// as an IP address when it is one.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned())
        .map_err(|_| format!("the link's host {host:?} is not a valid host name or IP address"))
}

/// Whether an alert from the listener means it refused this side's
/// certificate.
fn is_certificate_alert(alert: &AlertDescription) -> bool {
    use AlertDescription as A;
    matches!(
        alert,
        A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::CertificateRequired
            | A::DecryptError
    )
}

/// A TLS failure on the dialing side, for the core's link reason
/// ([`Dial::failure_reason`](skupper_token::link_ops::Dial::failure_reason)):
/// [`TransportError::Rejected`] (`certificate rejected by the remote site:
/// ...`) when the listener refused this link's certificate,
/// [`TransportError::Handshake`] (`TLS handshake failed: ...`) otherwise.
pub(crate) fn explain_client_error(e: &rustls::Error, addr: &str) -> TransportError {
    use AlertDescription as A;
    if let rustls::Error::AlertReceived(alert) = e {
        if is_certificate_alert(alert) {
            let why = match alert {
                A::UnknownCA => "it does not accept the CA that issued this link's certificate (it may have revoked access since the token was made, or the token is from another site): get a new token",
                A::CertificateRevoked => "this link's certificate has been revoked: get a new token",
                A::CertificateExpired => "this link's certificate has expired or is not valid yet: check the clocks of both sites, or get a new token",
                A::DecryptError => "this link's certificate does not verify against its CA (altered, or from another CA with the same name): get a new token",
                A::CertificateRequired => "it requires a client certificate and none was sent",
                A::UnsupportedCertificate => "this link's certificate is not allowed for client authentication",
                _ => "it refused this link's certificate",
            };
            return TransportError::Rejected {
                reason: format!("{why} ({addr}, TLS alert {})", alert_name(alert)),
            };
        }
    }
    let why = match e {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!(
            "the remote site's certificate is not from the CA in this link's token ({e}): the site may have been re-created or changed its CA, or {addr} is not the site that issued the token"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the remote site's certificate is not valid for the host in this link's token ({e})"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => format!(
            "the remote site's certificate is expired or not valid yet: check the clocks ({e})"
        ),
        rustls::Error::AlertReceived(A::ProtocolVersion) | rustls::Error::PeerIncompatible(_) => {
            format!("the remote side does not speak TLS 1.3 ({e})")
        }
        rustls::Error::AlertReceived(alert) => {
            format!(
                "the remote side ended the handshake (TLS alert {})",
                alert_name(alert)
            )
        }
        rustls::Error::InvalidMessage(_) => {
            format!("{addr} does not answer as a TLS server ({e})")
        }
        other => other.to_string(),
    };
    TransportError::Handshake {
        reason: format!("{why} (with {addr})"),
    }
}

/// A TLS failure on the listening side, for the log.
pub(crate) fn explain_server_error(e: &rustls::Error) -> String {
    use AlertDescription as A;
    match e {
        rustls::Error::AlertReceived(
            A::BadCertificate | A::UnknownCA | A::DecryptError | A::CertificateUnknown,
        ) => format!(
            "{e} (the dialing site refused this site's certificate: its token may be from before a revoke-access, or from another site)"
        ),
        rustls::Error::PeerIncompatible(_) | rustls::Error::AlertReceived(A::ProtocolVersion) => {
            format!("{e} (the dialing side does not offer TLS 1.3)")
        }
        rustls::Error::NoCertificatesPresented => {
            "no client certificate was presented: a linking site must present the certificate from its token".into()
        }
        other => other.to_string(),
    }
}

fn alert_name(alert: &AlertDescription) -> String {
    use AlertDescription as A;
    match alert {
        A::UnknownCA => "unknown_ca".into(),
        A::BadCertificate => "bad_certificate".into(),
        A::CertificateRevoked => "certificate_revoked".into(),
        A::CertificateExpired => "certificate_expired".into(),
        A::CertificateUnknown => "certificate_unknown".into(),
        A::CertificateRequired => "certificate_required".into(),
        A::UnsupportedCertificate => "unsupported_certificate".into(),
        A::AccessDenied => "access_denied".into(),
        A::DecryptError => "decrypt_error".into(),
        A::HandshakeFailure => "handshake_failure".into(),
        A::ProtocolVersion => "protocol_version".into(),
        other => format!("{other:?}"),
    }
}
