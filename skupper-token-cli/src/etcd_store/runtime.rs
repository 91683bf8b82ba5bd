//! The etcd store's private tokio runtime.
//!
//! [`skupper_token::store::Store`] is synchronous: the core calls it from
//! blocking code, and `serve` calls the core inside `spawn_blocking`. The
//! etcd client is async. Each [`super::EtcdStore`] therefore owns a small
//! multi-threaded runtime with one worker thread (`etcd-store`) on which
//! the gRPC connection and every request run. A store call spawns its
//! request there and waits for the answer on a channel: it never calls
//! `block_on` on the caller's thread, so it works from any thread (it
//! does block the calling thread, as any store call does; from async code
//! call it in `spawn_blocking`, never on a runtime worker).
//!
//! The runtime is shut down without waiting when the store is dropped, so
//! dropping a store is safe anywhere, including inside another runtime.

use std::future::Future;
use std::io;

use tokio::runtime::{Builder, Runtime};

/// A one-worker runtime, shut down in the background on drop.
pub(super) struct PrivateRuntime {
    runtime: Option<Runtime>,
}

impl PrivateRuntime {
    /// Starts the runtime and its worker thread.
    pub(super) fn new() -> io::Result<PrivateRuntime> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .thread_name("etcd-store")
            .enable_all()
            .build()?;
        Ok(PrivateRuntime {
            runtime: Some(runtime),
        })
    }

    /// Runs `future` on the runtime and waits for its output. `None` when
    /// the future did not finish (it panicked, or the runtime stopped).
    pub(super) fn run<T, F>(&self, future: F) -> Option<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let runtime = self.runtime.as_ref()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().ok()
    }
}

impl PrivateRuntime {
    /// Runs `future` on the runtime in the background.
    pub(super) fn spawn<F>(&self, future: F) -> Option<tokio::task::JoinHandle<()>>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        Some(self.runtime.as_ref()?.spawn(future))
    }
}

impl Drop for PrivateRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so a store may be dropped inside async code.
            runtime.shutdown_background();
        }
    }
}
