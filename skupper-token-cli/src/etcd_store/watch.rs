//! Watching a record: a callback each time it changes in etcd, whoever
//! changed it.
//!
//! The watch runs on the store's private runtime. When the watch breaks
//! (etcd unreachable, the member restarted) it is made again after a pause,
//! and once it is, the callback is called once too, since a change may have
//! been missed meanwhile. The callback runs on the store's runtime thread: it
//! must not block (hand the work to another runtime or thread).

use std::sync::Arc;
use std::time::Duration;

use skupper_token::store::{Key, StoreError};

use super::connection::Connection;
use super::runtime::PrivateRuntime;
use super::store::EtcdStore;

/// The pause before a broken watch is made again.
const REWATCH_PAUSE: Duration = Duration::from_millis(500);

/// A running watch; dropping it stops the watch.
pub struct EtcdWatch {
    task: Option<tokio::task::JoinHandle<()>>,
    // Keeps the runtime the watch runs on.
    _runtime: Arc<PrivateRuntime>,
}

impl std::fmt::Debug for EtcdWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdWatch").finish_non_exhaustive()
    }
}

impl Drop for EtcdWatch {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl EtcdStore {
    /// Calls `on_change` every time the record at `key` is written or
    /// deleted in etcd (by this process or any other), until the returned
    /// [`EtcdWatch`] is dropped. See the [module documentation](self).
    pub fn watch(
        &self,
        key: &Key,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Result<EtcdWatch, StoreError> {
        let etcd_key = self.checked_key(key)?;
        let connection = self.connection();
        let task = self.private_runtime().spawn(async move {
            let mut again = false;
            loop {
                watch_once(&connection, &etcd_key, &on_change, again).await;
                tokio::time::sleep(REWATCH_PAUSE).await;
                again = true;
            }
        });
        Ok(EtcdWatch {
            task,
            _runtime: self.private_runtime(),
        })
    }
}

/// Watches `key` until the watch breaks. `again`: an earlier watch broke,
/// so once this one is made `on_change` is called (a change may have been
/// missed); not while etcd cannot be reached.
async fn watch_once(
    connection: &Connection,
    key: &str,
    on_change: &(impl Fn() + Sync),
    again: bool,
) {
    let timeout = connection.options().request_timeout;
    let start = async {
        let mut client = connection.watch_client().await.ok()?;
        client.watch(key, None).await.ok()
    };
    // Made within a request's timeout; then it may stay quiet for ever
    // (the connection's keep-alive notices a dead peer).
    let Ok(Some(mut stream)) = tokio::time::timeout(timeout, start).await else {
        return;
    };
    if again {
        on_change();
    }
    while let Ok(Some(response)) = stream.message().await {
        if response.canceled() {
            return;
        }
        if !response.events().is_empty() {
            on_change();
        }
    }
}
