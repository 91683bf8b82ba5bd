//! Redeeming an AccessToken, the redeeming site's side, without I/O: the
//! request to send ([`GrantRequest`]) and what the answer means
//! ([`GrantResponse::interpret`]).
//!
//! An HTTP client sends a [`GrantRequest`] as it is, the way Skupper's
//! redeeming site does: `POST` to [`GrantRequest::url`] (https only), TLS
//! 1.3 at least, trusting only [`GrantRequest::ca_pem`] (the AccessToken's
//! `spec.ca`), the headers of [`GrantRequest::headers`], the code as the raw
//! body, [`REDEEM_TIMEOUT`] for the whole exchange, and no redirects (a 3xx
//! answer is a refusal like any other non-200).
//!
//! ```
//! use skupper_token::v2::{AccessToken, GrantRequest};
//!
//! let file = include_bytes!("../../tests/data/v2/v2-access-token.yaml");
//! let token = AccessToken::decode(file)?;
//! let request = GrantRequest::new(&token, "0f1e2d3c-site-uid")?;
//! assert_eq!(request.headers(), [("name", "grant1"), ("subject", "0f1e2d3c-site-uid")]);
//!
//! // What the HTTP client got back:
//! let answer = include_bytes!("../../tests/data/v2/v2-grant-response.yaml");
//! let links = request.response().interpret(200, answer)?;
//! assert_eq!(links.links[0].cost, 1); // the token's linkCost
//!
//! let refused = request.response().interpret(404, b"No such claim\n").unwrap_err();
//! assert_eq!(refused.to_string(), "Controller got failed response: 404 (Not Found) No such claim");
//! assert!(!refused.is_retryable());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use super::grant::{self, NameError};
use super::{AccessCode, AccessToken, LinkFile};
use crate::site_id::{self, SiteIdError};
use crate::token::{DecodeError, Endpoint};

/// The time a redemption may take, connection to last byte: 10 seconds, as
/// Skupper's `token redeem`.
pub const REDEEM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest part of a refusal's body kept in [`GrantRefused`], in
/// characters: Skupper's refusals are one short line.
pub const MAX_REFUSAL_BODY_CHARS: usize = 512;

/// The request that redeems an AccessToken.
#[derive(Clone, PartialEq, Eq)]
pub struct GrantRequest {
    /// Where to `POST` (`spec.url`): `https://<host>:<port>/<grant id>`.
    pub url: String,
    /// The grant server's host and port, from [`Self::url`].
    pub endpoint: Endpoint,
    /// The only CA to trust for [`Self::url`] (`spec.ca`, PEM).
    pub ca_pem: String,
    /// The `name` header: the AccessToken's name, which the grant server
    /// names the returned Secret and Links after.
    pub name: String,
    /// The `subject` header: the redeeming site's id, which becomes the
    /// issued certificate's common name.
    pub subject: String,
    /// The body: the code (`spec.code`).
    pub code: AccessCode,
    /// The AccessToken's `spec.linkCost`, applied to the Links returned.
    pub link_cost: u32,
}

impl fmt::Debug for GrantRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantRequest")
            .field("url", &self.url)
            .field("name", &self.name)
            .field("subject", &self.subject)
            .field("code", &self.code)
            .field("link_cost", &self.link_cost)
            .finish_non_exhaustive()
    }
}

/// Why an AccessToken cannot be redeemed by this site; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantRequestError {
    /// `spec.url` is not `https://<host>[:<port>]/<grant id>`.
    #[error("AccessToken {token:?} cannot be redeemed: {source}")]
    Url {
        /// The AccessToken's name.
        token: String,
        /// What is wrong with the URL.
        source: DecodeError,
    },
    /// The AccessToken's name cannot name a Secret and Links.
    #[error("AccessToken {token:?} cannot be redeemed: its name cannot name a Secret and Links: {source}")]
    Name {
        /// The AccessToken's name (shortened).
        token: String,
        /// What is wrong with it.
        source: NameError,
    },
    /// The redeeming site's id cannot name a certificate.
    #[error("AccessToken {token:?} cannot be redeemed by site {site_id:?}: its id cannot name a certificate: {source}")]
    SiteId {
        /// The AccessToken's name.
        token: String,
        /// The site id (shortened).
        site_id: String,
        /// What is wrong with it.
        source: SiteIdError,
    },
}

impl GrantRequest {
    /// The request that redeems `token` for the site whose id is
    /// `site_id`. Checks, before anything is sent, what the grant server
    /// would refuse: the URL ([`AccessToken::endpoint`]), the token's name
    /// ([`grant::check_name`]) and the site id ([`site_id::check`]).
    pub fn new(token: &AccessToken, site_id: &str) -> Result<GrantRequest, GrantRequestError> {
        let shortened = || super::shorten(&token.name).into_owned();
        let endpoint = token.endpoint().map_err(|source| GrantRequestError::Url {
            token: shortened(),
            source,
        })?;
        grant::check_name(&token.name).map_err(|source| GrantRequestError::Name {
            token: shortened(),
            source,
        })?;
        site_id::check(site_id).map_err(|source| GrantRequestError::SiteId {
            token: shortened(),
            site_id: super::shorten(site_id).into_owned(),
            source,
        })?;
        Ok(GrantRequest {
            url: token.url.clone(),
            endpoint,
            ca_pem: token.ca_pem.clone(),
            name: token.name.clone(),
            subject: site_id.to_owned(),
            code: token.code.clone(),
            link_cost: token.link_cost,
        })
    }

    /// The method: `POST`.
    pub fn method(&self) -> &'static str {
        "POST"
    }

    /// The headers to send, as Skupper sends them: `name`, then `subject`.
    pub fn headers(&self) -> [(&'static str, &str); 2] {
        [("name", &self.name), ("subject", &self.subject)]
    }

    /// The body: the code, raw (no content type).
    pub fn body(&self) -> &[u8] {
        self.code.expose().as_bytes()
    }

    /// How to read the answer.
    pub fn response(&self) -> GrantResponse {
        GrantResponse {
            link_cost: self.link_cost,
        }
    }
}

/// How to read a grant server's answer to a [`GrantRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantResponse {
    /// The AccessToken's `spec.linkCost`: over 0 it replaces the cost of
    /// every Link returned ([`LinkFile::apply_link_cost`]).
    pub link_cost: u32,
}

impl GrantResponse {
    /// The Links and Secret of a 200 answer (a YAML stream: the Secret, then
    /// the Links, read with [`LinkFile::decode`]) with the token's link cost
    /// applied; any other status is a refusal ([`GrantRefused::Refused`]),
    /// and a 200 body that is not a Link file is
    /// [`GrantRefused::Undecodable`].
    pub fn interpret(&self, status: u16, body: &[u8]) -> Result<LinkFile, GrantRefused> {
        if status != 200 {
            return Err(GrantRefused::refused(status, body));
        }
        let mut links =
            LinkFile::decode(body).map_err(|source| GrantRefused::Undecodable { source })?;
        links.apply_link_cost(self.link_cost);
        Ok(links)
    }
}

/// Why a grant server did not give Links for an AccessToken. The message is
/// the one a Skupper site records in the AccessToken's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantRefused {
    /// The server answered with a status other than 200.
    #[error("Controller got failed response: {status} ({}) {body}", status_text(*status))]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The body, as text (invalid UTF-8 replaced), trimmed of white
        /// space as Skupper does, and cut to [`MAX_REFUSAL_BODY_CHARS`].
        body: String,
    },
    /// The server answered 200 with something that is not Links and a
    /// Secret.
    #[error("Controller could not decode response")]
    Undecodable {
        /// What is wrong with the body.
        source: DecodeError,
    },
}

impl GrantRefused {
    fn refused(status: u16, body: &[u8]) -> GrantRefused {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let body = match text.char_indices().nth(MAX_REFUSAL_BODY_CHARS) {
            None => text.to_owned(),
            Some((at, _)) => format!("{}...", &text[..at]),
        };
        GrantRefused::Refused { status, body }
    }

    /// The HTTP status, for a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            GrantRefused::Refused { status, .. } => Some(*status),
            GrantRefused::Undecodable { .. } => None,
        }
    }

    /// Whether trying again later can succeed: for a 5xx answer (the server
    /// is busy or failing). A 4xx refusal, a redirect and an answer that
    /// cannot be read are final.
    pub fn is_retryable(&self) -> bool {
        self.status()
            .is_some_and(crate::transport::status_is_retryable)
    }
}

/// The text of an HTTP status as Go's `http.StatusText` gives it (which is
/// what Skupper's message shows); empty for a status Go does not know.
pub fn status_text(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Entity",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}
