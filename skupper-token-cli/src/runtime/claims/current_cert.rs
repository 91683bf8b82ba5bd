//! The claims server's certificate: whatever the site has now, asked for at
//! every TLS handshake, so a revoke-access applies to the next connection.
//!
//! The handshake runs on a tokio worker, and asking means reading the
//! store, which may be slow (etcd losing its leader) or failing (etcd
//! without a quorum). So once a certificate is known, the store is asked on
//! the blocking pool and waited for at most [`STORE_WAIT`]; a store that has
//! not answered by then, or that failed, gets the certificate last read
//! presented (the redemption that follows then meets the same store, and is
//! answered 503 without spending anything). While such a read is still
//! running, handshakes do not start another one.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::service::ClaimService;

/// How long a handshake waits for the store before presenting the
/// certificate last read.
pub(crate) const STORE_WAIT: Duration = Duration::from_millis(250);

/// A rustls certificate resolver over a [`ClaimService`]: asks it at every
/// handshake and reuses the parsed key while the certificate is the same.
pub(crate) struct CurrentCertificate {
    shared: Arc<Shared>,
    /// Told why, when there is no certificate to present.
    on_unavailable: Box<dyn Fn(String) + Send + Sync>,
}

/// What a read of the certificate on the blocking pool needs.
struct Shared {
    service: Arc<dyn ClaimService>,
    provider: Arc<CryptoProvider>,
    cache: Mutex<Option<(Vec<u8>, Arc<rustls::sign::CertifiedKey>)>>,
    /// A read is running (the store has not answered it yet).
    reading: AtomicBool,
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
            shared: Arc::new(Shared {
                service,
                provider,
                cache: Mutex::new(None),
                reading: AtomicBool::new(false),
            }),
            on_unavailable: Box::new(on_unavailable),
        }
    }

    fn load(&self) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
        let cached = lock(&self.shared.cache)
            .as_ref()
            .map(|(_, key)| key.clone());
        // Nothing to fall back on: wait for the store.
        let Some(cached) = cached else {
            return self.shared.read();
        };
        if self.shared.reading.swap(true, Ordering::AcqRel) {
            return Ok(cached);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let shared = self.shared.clone();
        let read = move || {
            let result = shared.read();
            shared.reading.store(false, Ordering::Release);
            let _ = tx.send(result);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(read)),
            Err(_) => drop(std::thread::spawn(read)),
        }
        match rx.recv_timeout(STORE_WAIT) {
            Ok(Ok(key)) => Ok(key),
            // Failed or slow: the certificate last read.
            Ok(Err(_)) | Err(_) => Ok(cached),
        }
    }
}

impl Shared {
    /// Asks the service (reads the store) and parses a new certificate.
    fn read(&self) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
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
