//! The gRPC connection to etcd, made on first use.
//!
//! Connecting (and, with a user, authenticating) happens inside the first
//! request's retries rather than in [`super::EtcdStore::open`], so a store
//! can be opened while etcd is down and starts working when it is back.
//! The client balances requests over every endpoint of the URL and
//! reconnects by itself; with a user, an expired auth token is renewed.

use etcd_client::{
    Certificate, Client, ConnectOptions, Identity, KvClient, TlsOptions, WatchClient,
};
use tokio::sync::Mutex;

use super::retry::{EtcdOptions, TryError};
use super::url::EtcdUrl;

/// The largest answer accepted from etcd: a page of listed records. etcd
/// itself refuses requests over 1.5 MiB by default, so a page of
/// [`super::store::LIST_PAGE`] records stays below this.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// A lazily made etcd client.
pub(super) struct Connection {
    url: EtcdUrl,
    options: EtcdOptions,
    tls: Option<TlsOptions>,
    client: Mutex<Option<(KvClient, WatchClient)>>,
}

impl Connection {
    /// Reads the TLS files now, so a missing file is reported at once.
    pub(super) fn new(url: EtcdUrl, options: EtcdOptions) -> Result<Connection, String> {
        let tls = match url.ca() {
            None => None,
            Some(ca) => {
                let read = |path: &std::path::Path, what: &str| {
                    std::fs::read(path)
                        .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
                };
                let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read(
                    ca,
                    "etcd CA certificate (ca=)",
                )?));
                if let Some((cert, key)) = url.client_cert() {
                    tls = tls.identity(Identity::from_pem(
                        read(cert, "etcd client certificate (cert=)")?,
                        read(key, "etcd client key (key=)")?,
                    ));
                }
                Some(tls)
            }
        };
        Ok(Connection {
            url,
            options,
            tls,
            client: Mutex::new(None),
        })
    }

    /// The store's URL.
    pub(super) fn url(&self) -> &EtcdUrl {
        &self.url
    }

    /// The store's timeouts and retries.
    pub(super) fn options(&self) -> EtcdOptions {
        self.options
    }

    /// The key-value client, connecting first if needed.
    pub(super) async fn client(&self) -> Result<KvClient, TryError> {
        Ok(self.clients().await?.0)
    }

    /// The watch client, connecting first if needed.
    pub(super) async fn watch_client(&self) -> Result<WatchClient, TryError> {
        Ok(self.clients().await?.1)
    }

    async fn clients(&self) -> Result<(KvClient, WatchClient), TryError> {
        let mut slot = self.client.lock().await;
        if let Some(clients) = &*slot {
            return Ok(clients.clone());
        }
        let mut options = ConnectOptions::new()
            .with_timeout(self.options.request_timeout)
            .with_connect_timeout(self.options.request_timeout)
            .with_keep_alive(
                std::time::Duration::from_secs(10),
                self.options.request_timeout,
            )
            .with_require_leader(true);
        if let Some((user, password)) = self.url.credentials() {
            options = options
                .with_user(user.clone(), password.clone())
                .with_auto_token_refresh(true);
        }
        if let Some(tls) = &self.tls {
            options = options.with_tls(tls.clone());
        }
        let client = Client::connect(self.url.endpoints(), Some(options))
            .await
            .map_err(TryError::from)?;
        let kv = client
            .kv_client()
            .max_decoding_message_size(MAX_ANSWER_BYTES);
        let clients = (kv, client.watch_client());
        *slot = Some(clients.clone());
        Ok(clients)
    }
}
