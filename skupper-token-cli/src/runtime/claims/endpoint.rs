//! [`ClaimsEndpoint`]: the claims HTTP service. A request in, a response
//! out: the body read under a size limit and a deadline, the rules of
//! [`super::answer`], the redemption on tokio's blocking pool.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, Bytes};
use http_body_util::{BodyExt as _, Full};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::answer::{self, Body};
use super::event::{self, ServerEvent};
use super::grant_answer::{self, Route};
use super::service::ClaimService;
use super::EndpointOptions;
use crate::admission::Admitted;

/// Where the server's events go.
pub(crate) type EventSink = Arc<dyn Fn(&ServerEvent) + Send + Sync>;

/// The claims HTTP service over a [`ClaimService`] (normally
/// [`super::SiteClaims`]). Cheap to clone.
///
/// It is a [`tower_service::Service`] and a [`hyper::service::Service`], so
/// a tokio application mounts it in its own hyper or axum server;
/// [`super::serve`] runs it with TLS, deadlines and connection caps, and
/// logs every answer.
pub struct ClaimsEndpoint {
    service: Arc<dyn ClaimService>,
    options: EndpointOptions,
    /// Set for the endpoint of one connection of [`super::serve`].
    connection: Option<Arc<Activity>>,
}

impl Clone for ClaimsEndpoint {
    fn clone(&self) -> Self {
        ClaimsEndpoint {
            service: self.service.clone(),
            options: self.options,
            connection: self.connection.clone(),
        }
    }
}

impl fmt::Debug for ClaimsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimsEndpoint")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The response body type.
pub type ResponseBody = Full<Bytes>;

/// A response before its body is wrapped for hyper.
type Response = http::Response<Bytes>;

/// How long, at most, the endpoint goes on reading a body it has refused
/// (over the limit), so that a client still sending reads the answer
/// instead of a reset.
const DRAIN_TIME: Duration = Duration::from_millis(500);
/// How many bytes of a refused body it reads, at most.
const DRAIN_BYTES: usize = 256 * 1024;

impl ClaimsEndpoint {
    /// The endpoint for `service`.
    pub fn new(service: Arc<dyn ClaimService>, options: EndpointOptions) -> ClaimsEndpoint {
        ClaimsEndpoint {
            service,
            options,
            connection: None,
        }
    }

    /// The service's options.
    pub fn options(&self) -> &EndpointOptions {
        &self.options
    }

    pub(crate) fn service(&self) -> &Arc<dyn ClaimService> {
        &self.service
    }

    /// This endpoint for one connection of the server: its requests settle
    /// the connection's admission ticket while they run, and are logged.
    pub(crate) fn for_connection(&self, activity: Arc<Activity>) -> ClaimsEndpoint {
        ClaimsEndpoint {
            connection: Some(activity),
            ..self.clone()
        }
    }

    /// Answers one request: reads the body (at most
    /// [`super::Limits::max_body_bytes`], within
    /// [`EndpointOptions::body_timeout`]), applies [`answer::redeem_request`],
    /// runs the redemption on tokio's blocking pool (a durable store write
    /// must not stall the runtime) and answers with [`answer::redeemed`].
    /// This is what hyper calls for every request, and what the
    /// `claim_request` fuzz target drives.
    pub async fn respond<B>(&self, request: http::Request<B>) -> http::Response<ResponseBody>
    where
        B: hyper::body::Body + Send,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        // While a request runs its connection is not closed to make room.
        let _running = match &self.connection {
            None => None,
            Some(activity) => match activity.begin() {
                Some(running) => Some(running),
                // Closed to make room already: the server drops it.
                None => {
                    return answer::text(503, "Service Unavailable: the connection was closed")
                        .map(Full::new)
                }
            },
        };
        let (parts, body) = request.into_parts();
        let body = read_body(body, &self.options).await;
        let grant = match grant_answer::route(&parts) {
            Route::Claim => false,
            Route::Grant => true,
            Route::GrantIfKnown(id) => {
                let service = self.service.clone();
                tokio::task::spawn_blocking(move || service.has_grant(&id))
                    .await
                    .unwrap_or(false)
            }
        };
        let (response, detail) = if grant {
            self.redeem_grant(&parts, body).await
        } else {
            self.redeem_claim(&parts, body).await
        };
        // Logged before it is sent, so the line is there when the client
        // has its answer.
        if let Some(activity) = &self.connection {
            let (site, id) = if grant {
                (
                    parts
                        .headers
                        .get(grant_answer::SUBJECT_HEADER)
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned()),
                    grant_answer::grant_id(&parts.uri),
                )
            } else {
                (answer::site_name(&parts), answer::claim_name(&parts.uri))
            };
            (activity.events)(&ServerEvent::Answered {
                peer: activity.peer,
                site,
                claim: id.filter(|c| !c.is_empty()),
                status: response.status().as_u16(),
                detail,
            });
        }
        response.map(Full::new)
    }

    /// A 1.x claim redemption: the response and the log's detail.
    async fn redeem_claim(&self, parts: &http::request::Parts, body: Body) -> (Response, String) {
        match answer::redeem_request(parts, body) {
            Err(response) => {
                let detail = String::from_utf8_lossy(response.body())
                    .trim_end()
                    .to_owned();
                (response, detail)
            }
            Ok(redeem) => {
                let service = self.service.clone();
                let redeemed = tokio::task::spawn_blocking(move || {
                    let result = service.redeem(&redeem);
                    (answer::redeemed(&result), event::outcome(&redeem, &result))
                })
                .await;
                redeemed.unwrap_or_else(|e| {
                    (
                        answer::text(500, "Internal error"),
                        format!("the redemption did not finish: {e}"),
                    )
                })
            }
        }
    }

    /// A 2.x grant redemption ([`grant_answer`]): the response and the
    /// log's detail.
    async fn redeem_grant(&self, parts: &http::request::Parts, body: Body) -> (Response, String) {
        match grant_answer::grant_request(parts, body) {
            Err(response) => {
                let detail = String::from_utf8_lossy(response.body())
                    .trim_end()
                    .to_owned();
                (response, detail)
            }
            Ok(redeem) => {
                let service = self.service.clone();
                let redeemed = tokio::task::spawn_blocking(move || {
                    let result = service.redeem_grant(&redeem);
                    (
                        grant_answer::grant_redeemed(&result),
                        event::grant_outcome(&redeem, &result),
                    )
                })
                .await;
                redeemed.unwrap_or_else(|e| {
                    (
                        answer::text(500, "Internal error"),
                        format!("the redemption did not finish: {e}"),
                    )
                })
            }
        }
    }
}

/// Reads a request body: all of it, or why not.
async fn read_body<B>(body: B, options: &EndpointOptions) -> Body
where
    B: hyper::body::Body,
    B::Error: std::error::Error,
{
    let limit = options.limits.max_body_bytes;
    let deadline = Instant::now() + options.body_timeout;
    let mut body = std::pin::pin!(body);
    let declared = body.size_hint().lower();
    let over = |n: u64| {
        if n > limit as u64 {
            Some(format!(
                "the body of {n} bytes is over the {limit}-byte limit"
            ))
        } else {
            None
        }
    };
    let mut data = Vec::new();
    let refused = match over(declared) {
        Some(reason) => reason,
        None => loop {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    return Body::Invalid {
                        reason: format!(
                            "the body did not arrive within {}",
                            crate::links::fmt_duration(options.body_timeout)
                        ),
                    }
                }
                Ok(None) => return Body::Complete(data),
                Ok(Some(Err(e))) => {
                    return Body::Invalid {
                        reason: format!("the body could not be read: {e}"),
                    }
                }
                Ok(Some(Ok(frame))) => {
                    let Ok(mut chunk) = frame.into_data() else {
                        continue; // trailers
                    };
                    let total = data.len() + chunk.remaining();
                    if let Some(reason) = over(total as u64) {
                        break reason;
                    }
                    while chunk.has_remaining() {
                        let piece = chunk.chunk();
                        data.extend_from_slice(piece);
                        let n = piece.len();
                        chunk.advance(n);
                    }
                }
            }
        },
    };
    // Read on a little, so that a client still sending reads the answer.
    let until = deadline.min(Instant::now() + DRAIN_TIME);
    let mut drained = 0usize;
    while drained < DRAIN_BYTES {
        match tokio::time::timeout_at(until, body.frame()).await {
            Ok(Some(Ok(frame))) => drained += frame.data_ref().map_or(0, |d| d.remaining()),
            _ => break,
        }
    }
    Body::Invalid { reason: refused }
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, Infallible>> + Send>>;

impl<B> tower_service::Service<http::Request<B>> for ClaimsEndpoint
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> ResponseFuture {
        let endpoint = self.clone();
        Box::pin(async move { Ok(endpoint.respond(request).await) })
    }
}

impl<B> hyper::service::Service<http::Request<B>> for ClaimsEndpoint
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: http::Request<B>) -> ResponseFuture {
        let endpoint = self.clone();
        Box::pin(async move { Ok(endpoint.respond(request).await) })
    }
}

/// What one connection of the server is doing: requests running, since
/// when it has been idle, its admission ticket and where its events go.
/// Shared by the connection's task (which closes it when idle too long or
/// evicted) and its endpoint (which marks requests).
pub(crate) struct Activity {
    pub(crate) peer: SocketAddr,
    pub(crate) admitted: Admitted,
    pub(crate) events: EventSink,
    state: Mutex<ActivityState>,
    changed: Notify,
}

#[derive(Debug, Clone, Copy)]
struct ActivityState {
    running: usize,
    idle_since: Instant,
    requests: u64,
}

impl Activity {
    /// A connection idle since `now` (its handshake just finished).
    pub(crate) fn new(
        peer: SocketAddr,
        admitted: Admitted,
        events: EventSink,
        now: Instant,
    ) -> Activity {
        Activity {
            peer,
            admitted,
            events,
            state: Mutex::new(ActivityState {
                running: 0,
                idle_since: now,
                requests: 0,
            }),
            changed: Notify::new(),
        }
    }

    /// A request starts: the connection settles (`None` when it was closed
    /// to make room already).
    fn begin(self: &Arc<Self>) -> Option<Running> {
        let mut state = lock(&self.state);
        if state.running == 0 && !self.admitted.settle() {
            return None;
        }
        state.running += 1;
        state.requests += 1;
        drop(state);
        self.changed.notify_one();
        Some(Running(self.clone()))
    }

    /// When the connection has been idle for `timeout`: `None` while a
    /// request runs.
    pub(crate) fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        let state = lock(&self.state);
        (state.running == 0).then(|| state.idle_since + timeout)
    }

    /// Requests started on this connection.
    pub(crate) fn requests(&self) -> u64 {
        lock(&self.state).requests
    }

    /// Completes when a request starts or ends.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// A running request; dropping it (answered, or abandoned) ends it.
struct Running(Arc<Activity>);

impl Drop for Running {
    fn drop(&mut self) {
        let activity = &self.0;
        let mut state = lock(&activity.state);
        state.running -= 1;
        if state.running == 0 {
            let now = Instant::now();
            state.idle_since = now;
            // Waiting for its next request, the connection is pending again.
            activity.admitted.unsettle(now.into_std());
        }
        drop(state);
        activity.changed.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state is changed in single statements: a panic cannot leave it
    // half-changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
