//! The claims server as `serve` runs it (`runtime::claims::serve`), on a
//! tokio runtime of its own, for tests whose clients are blocking.
#![allow(dead_code, clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use skupper_token_cli::admission::Gate;
use skupper_token_cli::runtime::claims::{
    serve_with_gate, ClaimService, ClaimsEndpoint, EndpointOptions, ServerEvent, Shutdown,
};

/// A claims server on its own tokio runtime, as `serve` runs it.
pub struct Server {
    addr: SocketAddr,
    gate: Gate,
    stop: Shutdown,
    task: Option<tokio::task::JoinHandle<()>>,
    rt: tokio::runtime::Runtime,
}

impl Server {
    pub fn start(
        listener: TcpListener,
        service: Arc<dyn ClaimService>,
        options: EndpointOptions,
        on_event: impl Fn(&ServerEvent) + Send + Sync + 'static,
    ) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = {
            let _rt = rt.enter();
            tokio::net::TcpListener::from_std(listener).unwrap()
        };
        let gate = Gate::new(options.conn_limits());
        let (stop, watch) = Shutdown::new();
        let task = rt.spawn(serve_with_gate(
            listener,
            ClaimsEndpoint::new(service, options),
            gate.clone(),
            watch,
            Arc::new(on_event),
        ));
        Server {
            addr,
            gate,
            stop,
            task: Some(task),
            rt,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.gate.open()
    }

    /// Stops it and waits until `serve` has returned.
    pub fn shutdown(mut self) {
        self.stop.shutdown();
        if let Some(task) = self.task.take() {
            self.rt.block_on(task).unwrap();
        }
    }
}
