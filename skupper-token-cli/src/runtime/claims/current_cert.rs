//! The claims server's certificate: whatever the site has now, asked for at
//! every TLS handshake, so a revoke-access applies to the next connection.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::service::ClaimService;

/// A rustls certificate resolver over a [`ClaimService`]: asks it at every
/// handshake and reuses the parsed key while the certificate is the same.
pub(crate) struct CurrentCertificate {
    service: Arc<dyn ClaimService>,
    provider: Arc<CryptoProvider>,
    cache: Mutex<Option<(Vec<u8>, Arc<rustls::sign::CertifiedKey>)>>,
    /// Told why, when there is no certificate to present.
    on_unavailable: Box<dyn Fn(String) + Send + Sync>,
}

impl fmt::Debug for CurrentCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentCertificate").finish_non_exhaustive()
    }
}

impl CurrentCertificate {
    /// The resolver for `service`'s certificate.
    pub(crate) fn new(
        service: Arc<dyn ClaimService>,
        provider: Arc<CryptoProvider>,
        on_unavailable: impl Fn(String) + Send + Sync + 'static,
    ) -> CurrentCertificate {
        CurrentCertificate {
            service,
            provider,
            cache: Mutex::new(None),
            on_unavailable: Box::new(on_unavailable),
        }
    }

    fn load(&self) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
        let current = self.service.server_certificate()?;
        let mut cache = lock(&self.cache);
        if let Some((der, key)) = cache.as_ref() {
            if *der == current.cert_der {
                return Ok(key.clone());
            }
        }
        let key = rustls::sign::CertifiedKey::from_der(
            vec![CertificateDer::from(current.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(current.key.pkcs8_der().to_vec())),
            &self.provider,
        )
        .map_err(|e| format!("the site's server certificate or key cannot be used: {e}"))?;
        let key = Arc::new(key);
        *cache = Some((current.cert_der, key.clone()));
        Ok(key)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The cache is replaced in one statement: a panic cannot leave it half
    // written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        match self.load() {
            Ok(key) => Some(key),
            Err(reason) => {
                (self.on_unavailable)(reason);
                None
            }
        }
    }
}
