//! Claim redemption on hyper: the async client a linking site uses to
//! exchange a claim token for a cert token, or a Skupper 2.x AccessToken
//! for a Link file ([`RedeemClient::redeem_grant`]).
//!
//! The client of the core's [`skupper_token::link_ops::Redemption`]: TLS 1.3
//! only, trusting only the CA in the token, the host name checked, no
//! redirects, a timeout for every step; only an unreachable server and 5xx
//! answers are tried again ([`skupper_token::transport::status_is_retryable`]),
//! and once the request may have reached the server an I/O failure is not
//! retried (the server may have spent a use).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use skupper_token::claim::RedeemRequest;
use skupper_token::token::CertToken;
use skupper_token::transport::TransportError;
use skupper_token::v2::GrantRequest;
use tokio::net::TcpStream;

use crate::https::client::{
    after_attempts, answer, client_config, explain_handshake, Failed, MAX_RESPONSE_HEAD,
};
use crate::https::http::SITE_NAME_HEADER;
use crate::https::{ClaimUrl, ClientOptions};
use crate::runtime::claims::grant_answer::{
    NAME_HEADER as GRANT_NAME_HEADER, SUBJECT_HEADER as GRANT_SUBJECT_HEADER,
};

/// Redeems claims over HTTPS, asynchronously. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RedeemClient {
    options: ClientOptions,
}

impl RedeemClient {
    /// A client with these timeouts, retries and limits.
    pub fn new(options: ClientOptions) -> RedeemClient {
        RedeemClient { options }
    }

    /// Redeems the claim at `url` (`https://host:port/<claim>`), trusting
    /// only `ca_pem`, with the retries of [`ClientOptions::retry_delays`].
    pub async fn redeem(
        &self,
        url: &str,
        ca_pem: &str,
        request: &RedeemRequest,
    ) -> Result<CertToken, TransportError> {
        let url = ClaimUrl::parse(url)?;
        let config = client_config(ca_pem)?;
        let mut delays = self.options.retry_delays.iter();
        let mut attempts = 1u32;
        loop {
            match self.attempt(&url, &config, request).await {
                Ok(token) => return Ok(token),
                Err(Failed { error, retry }) => match delays.next() {
                    Some(delay) if retry => {
                        tokio::time::sleep(*delay).await;
                        attempts += 1;
                    }
                    _ => return Err(after_attempts(error, attempts)),
                },
            }
        }
    }

    /// Redeems a Skupper 2.x AccessToken: `POST`s its code to
    /// `request.url` with the `name` and `subject` headers, trusting only
    /// `request.ca_pem`, and returns the grant server's status and body
    /// as they came, for
    /// [`skupper_token::site::Site::handle_grant_redemption`] (which reads
    /// a 200's Link file and Skupper's refusals). The same TLS 1.3 and
    /// limits as a claim; only a server that could not be reached is tried
    /// again, never once the request may have reached it. As Skupper's
    /// client, the whole redemption (every attempt) has one
    /// [`ClientOptions::timeout`]: a server that accepts and never answers
    /// is given up after it, not once per attempt.
    pub async fn redeem_grant(
        &self,
        request: &GrantRequest,
    ) -> Result<(u16, Vec<u8>), TransportError> {
        let url = ClaimUrl::parse(&request.url)?;
        let config = client_config(&request.ca_pem)?;
        let header = |name: &'static str, value: &str, what: &str| {
            http::HeaderValue::from_str(value)
                .map(|v| (name, v))
                .map_err(|_| TransportError::Protocol {
                    reason: format!("the {what} cannot be sent in an HTTP header"),
                })
        };
        let headers = [
            header(GRANT_NAME_HEADER, &request.name, "AccessToken's name")?,
            header(GRANT_SUBJECT_HEADER, &request.subject, "site's id")?,
        ];
        let target = match &url.query {
            Some(q) if !q.is_empty() => format!("{}?{q}", url.path),
            _ => url.path.clone(),
        };
        let body = Bytes::from(request.body().to_vec());
        let mut delays = self.options.retry_delays.iter();
        let mut attempts = 1u32;
        let attempts_made = async {
            loop {
                match self
                    .post(&url, &config, &target, &headers, body.clone())
                    .await
                {
                    Ok((status, body)) => return Ok((status, body.to_vec())),
                    Err(Failed { error, retry }) => match delays.next() {
                        Some(delay) if retry => {
                            tokio::time::sleep(*delay).await;
                            attempts += 1;
                        }
                        _ => return Err(after_attempts(error, attempts)),
                    },
                }
            }
        };
        let timeout = self.options.timeout;
        tokio::time::timeout(timeout, attempts_made)
            .await
            .unwrap_or_else(|_| {
                Err(TransportError::Unreachable {
                    reason: format!("no answer from {url} within {timeout:?}"),
                })
            })
    }

    async fn attempt(
        &self,
        url: &ClaimUrl,
        config: &Arc<rustls::ClientConfig>,
        request: &RedeemRequest,
    ) -> Result<CertToken, Failed> {
        let site_name = http::HeaderValue::from_str(&request.site_id).map_err(|_| {
            Failed::final_(TransportError::Protocol {
                reason: "this site's id cannot be sent in an HTTP header".into(),
            })
        })?;
        let (status, body) = self
            .post(
                url,
                config,
                &url.request_target(&request.site_version),
                &[(SITE_NAME_HEADER, site_name)],
                Bytes::from(request.password.clone()),
            )
            .await?;
        answer(url, status, &body)
    }

    /// One `POST` of `body` to `target` on `url`'s server with `headers`,
    /// over TLS with `config`: the status and the body (at most
    /// [`ClientOptions::max_response_bytes`]), within
    /// [`ClientOptions::timeout`] for the handshake and for the exchange.
    async fn post(
        &self,
        url: &ClaimUrl,
        config: &Arc<rustls::ClientConfig>,
        target: &str,
        headers: &[(&'static str, http::HeaderValue)],
        body: Bytes,
    ) -> Result<(u16, Bytes), Failed> {
        let server_name = ServerName::try_from(url.host.clone()).map_err(|_| {
            Failed::final_(TransportError::Protocol {
                reason: format!(
                    "the claim URL's host {:?} is not a valid host name or IP address",
                    url.host
                ),
            })
        })?;
        let tcp = self.connect(url).await?;
        let timeout = self.options.timeout;
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let tls = match tokio::time::timeout(timeout, connector.connect(server_name, tcp)).await {
            Err(_) => {
                return Err(Failed::retry(TransportError::Unreachable {
                    reason: format!(
                        "the TLS handshake with {url} did not finish within {timeout:?}"
                    ),
                }))
            }
            Ok(Err(e)) => {
                return Err(
                    match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                        Some(tls) => Failed::final_(TransportError::Handshake {
                            reason: explain_handshake(url, tls),
                        }),
                        None => Failed::retry(TransportError::Unreachable {
                            reason: format!("the TLS handshake with {url} failed: {e}"),
                        }),
                    },
                )
            }
            Ok(Ok(tls)) => tls,
        };

        // From here on the request may reach the server: no retry on I/O.
        let lost = |what: &str, e: &dyn std::fmt::Display| {
            Failed::final_(TransportError::Unreachable {
                reason: format!("{what} {url} failed: {e}"),
            })
        };
        let exchange = async {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| lost("talking to", &e))?;
            tokio::spawn(connection);
            let mut message = http::Request::post(target)
                .header(http::header::HOST, url.to_string())
                .header(
                    http::header::USER_AGENT,
                    concat!("skupper-token/", env!("CARGO_PKG_VERSION")),
                );
            for (name, value) in headers {
                message = message.header(*name, value.clone());
            }
            let message = message.body(Full::new(body)).map_err(|e| {
                Failed::final_(TransportError::Protocol {
                    reason: format!("cannot build the request for {url}: {e}"),
                })
            })?;
            let response = sender
                .send_request(message)
                .await
                .map_err(|e| lost("sending the request to", &e))?;
            let status = response.status().as_u16();
            let max_body = self
                .options
                .max_response_bytes
                .saturating_sub(MAX_RESPONSE_HEAD)
                .max(1);
            let body = Limited::new(response.into_body(), max_body)
                .collect()
                .await
                .map_err(|e| {
                    Failed::final_(TransportError::Protocol {
                        reason: format!("the answer from {url} could not be read: {e}"),
                    })
                })?
                .to_bytes();
            Ok::<(u16, Bytes), Failed>((status, body))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failed::final_(TransportError::Unreachable {
                reason: format!("no answer from {url} within {timeout:?}"),
            })),
        }
    }

    async fn connect(&self, url: &ClaimUrl) -> Result<TcpStream, Failed> {
        let unreachable = |reason: String| Failed::retry(TransportError::Unreachable { reason });
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((url.host.as_str(), url.port))
            .await
            .map_err(|e| unreachable(format!("cannot resolve {}: {e}", url.host)))?
            .collect();
        if addrs.is_empty() {
            return Err(unreachable(format!("{} has no addresses", url.host)));
        }
        let limit: Duration = self.options.connect_timeout;
        let mut errors = Vec::new();
        for addr in &addrs {
            match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
                Ok(Ok(socket)) => {
                    let _ = socket.set_nodelay(true);
                    return Ok(socket);
                }
                Ok(Err(e)) => errors.push(format!("cannot connect to {addr}: {e}")),
                Err(_) => errors.push(format!(
                    "cannot connect to {addr}: timed out after {limit:?}"
                )),
            }
        }
        Err(unreachable(errors.join("; ")))
    }
}
