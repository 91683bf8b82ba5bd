//! Timeouts and retries of etcd requests.
//!
//! Every request has a timeout ([`EtcdOptions::request_timeout`]). A
//! request that fails in a way that can pass (etcd unreachable, no leader,
//! the leader changed, a timeout) is tried again, with a growing pause,
//! until [`EtcdOptions::retry_for`] has passed since the first try; then
//! the store answers [`StoreError::Unavailable`] naming the endpoints and
//! the last cause. A refusal (wrong password, permission denied, a request
//! too large) is not retried.
//!
//! A request that timed out or lost its connection may still have been
//! applied (etcd can commit a write and report an error, for example when
//! the leader is lost). The operation is told it is being retried, so a
//! compare-and-swap first reads the record back to find out (see
//! [`super::store`]).

use std::future::Future;
use std::time::{Duration, Instant};

use etcd_client::KvClient;
use skupper_token::store::StoreError;

use super::connection::Connection;

/// Timeouts and retries of an [`super::EtcdStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdOptions {
    /// How long one request (or connecting) may take.
    pub request_timeout: Duration,
    /// How long to keep trying a request that fails in a way that can pass
    /// (counted from the first try; a try started before then runs to its
    /// timeout).
    pub retry_for: Duration,
}

impl Default for EtcdOptions {
    /// 2 s per request, retried for 5 s: a request sent while the leader
    /// is lost can hang until its timeout (writes stall 1 to 2 s), so the
    /// timeout is shorter than the retry period and the next try reaches
    /// the new leader; an unreachable etcd is reported within about 7 s.
    fn default() -> EtcdOptions {
        EtcdOptions {
            request_timeout: Duration::from_secs(2),
            retry_for: Duration::from_secs(5),
        }
    }
}

impl EtcdOptions {
    /// These options with another request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> EtcdOptions {
        self.request_timeout = timeout;
        self
    }

    /// These options with another retry period.
    pub fn retry_for(mut self, period: Duration) -> EtcdOptions {
        self.retry_for = period;
        self
    }
}

/// Why one try failed.
#[derive(Debug)]
pub(super) enum TryError {
    /// It may pass: try again.
    Transient(String),
    /// etcd refused (or the store is misconfigured): do not retry.
    Refused(String),
}

impl From<etcd_client::Error> for TryError {
    fn from(e: etcd_client::Error) -> TryError {
        use etcd_client::Error as E;
        use tonic::Code;
        match &e {
            E::GRpcStatus(status) => {
                let text = format!("{} ({:?})", status.message(), status.code());
                match status.code() {
                    Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Unknown
                    | Code::Aborted
                    | Code::Cancelled
                    | Code::Internal
                    | Code::ResourceExhausted => TryError::Transient(text),
                    _ => TryError::Refused(format!("etcd refused the request: {text}")),
                }
            }
            E::TransportError(_) | E::IoError(_) => TryError::Transient(error_chain(&e)),
            _ => TryError::Refused(error_chain(&e)),
        }
    }
}

/// `e` and its causes, joined with `: `.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// Runs `attempt` (with a client from `connection`) until it succeeds,
/// fails for good, or `options.retry_for` has passed; `attempt` is told
/// whether an earlier try failed. `what` describes the operation and the
/// store (endpoints) for the error.
pub(super) async fn with_retries<T, F, Fut>(
    connection: &Connection,
    what: impl Fn() -> String,
    mut attempt: F,
) -> Result<T, StoreError>
where
    F: FnMut(KvClient, bool) -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let options = connection.options();
    let start = Instant::now();
    let mut pause = Duration::from_millis(50);
    let mut tries = 0u32;
    loop {
        tries += 1;
        let retrying = tries > 1;
        let once = async {
            let kv = connection.client().await?;
            attempt(kv, retrying).await.map_err(TryError::from)
        };
        let outcome = match tokio::time::timeout(options.request_timeout, once).await {
            Ok(outcome) => outcome,
            Err(_) => Err(TryError::Transient(format!(
                "no answer within {:?}",
                options.request_timeout
            ))),
        };
        match outcome {
            Ok(value) => return Ok(value),
            Err(TryError::Refused(reason)) => {
                return Err(StoreError::Unavailable {
                    reason: format!("{}: {reason}", what()),
                })
            }
            Err(TryError::Transient(reason)) => {
                let elapsed = start.elapsed();
                if elapsed + pause >= options.retry_for {
                    return Err(StoreError::Unavailable {
                        reason: format!(
                            "{}: etcd did not answer ({tries} tries in {:.1} s): {reason}",
                            what(),
                            elapsed.as_secs_f64()
                        ),
                    });
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(800));
            }
        }
    }
}
