//! The claim redemption rules of the HTTP layer, from request to status, as
//! pure functions: what Skupper 1.x's claims handler checks, in its order,
//! and what it answers. [`super::ClaimsEndpoint`] reads the request (hyper
//! parses it, the endpoint reads the body under its limits), asks
//! [`redeem_request`] what to do, runs the redemption, and answers with
//! [`redeemed`]; the `claim_request` fuzz target drives the same path.
//!
//! Nothing here does I/O or panics, whatever the request.

use std::fmt;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::request::Parts;
use http::{Response, StatusCode, Uri};
use skupper_token::claim::{RedeemError, RedeemRequest};
use skupper_token::token::CertToken;

use crate::https::http::{SITE_NAME_HEADER, SITE_VERSION_PARAM};

/// Skupper's answer to a method other than POST (405).
pub const ONLY_POST: &str = "Only POST is supported";

/// Skupper's answer to a body that cannot be read (400).
pub const BODY_NOT_VALID: &str = "Request body not valid";

/// The answer to a path with a bad percent escape (400).
pub const BAD_PATH: &str = "Bad Request: the request path has a bad percent escape";

/// A request's body, as the endpoint read it.
#[derive(Clone, PartialEq, Eq)]
pub enum Body {
    /// The whole body (empty when the request has none).
    Complete(Vec<u8>),
    /// The body cannot be read: over the size limit, malformed, too slow,
    /// or the connection closed early. Answered with 400
    /// [`BODY_NOT_VALID`], as Skupper does, but only after the method check.
    Invalid {
        /// Why, for the log (never the body's bytes).
        reason: String,
    },
}

impl fmt::Debug for Body {
    /// Shows the length only: the body is a claim password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Complete(b) => write!(f, "Complete(<{} bytes>)", b.len()),
            Body::Invalid { reason } => f.debug_struct("Invalid").field("reason", reason).finish(),
        }
    }
}

/// What a request asks for, in Skupper's order: a bad URL (400
/// [`BAD_PATH`]), a method other than POST (405 [`ONLY_POST`]), an
/// unreadable body (400 [`BODY_NOT_VALID`]) are answered here (`Err`);
/// otherwise the redemption to run (`Ok`), whose checks (version, site id,
/// claim, password, expiry, uses) are the core's.
///
/// The redeem request: the claim is the decoded path without slashes, the
/// password is the body, the site id is the `skupper-site-name` header (or,
/// as in Skupper, the claim name when the header is missing or empty), the
/// version is the `site-version` query parameter (empty when missing, which
/// the version check refuses).
// The answer is the error: boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
pub fn redeem_request(parts: &Parts, body: Body) -> Result<RedeemRequest, Response<Bytes>> {
    let Some(claim) = claim_name(&parts.uri) else {
        return Err(text(400, BAD_PATH));
    };
    if parts.method != http::Method::POST {
        let mut response = text(405, ONLY_POST);
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return Err(response);
    }
    let password = match body {
        Body::Complete(body) => body,
        Body::Invalid { .. } => return Err(text(400, BODY_NOT_VALID)),
    };
    let site_id = match site_name(parts) {
        Some(name) if !name.is_empty() => name,
        _ => claim.clone(),
    };
    Ok(RedeemRequest {
        claim,
        password,
        site_id,
        site_version: query_param(&parts.uri, SITE_VERSION_PARAM).unwrap_or_default(),
    })
}

/// The answer to a redemption: 200 with the cert token Secret as YAML, or
/// the error's status and body ([`RedeemError::http_status`],
/// [`RedeemError::http_body`]).
pub fn redeemed(result: &Result<CertToken, RedeemError>) -> Response<Bytes> {
    match result {
        Ok(token) => plain(StatusCode::OK, Bytes::from(token.encode())),
        Err(e) => text(e.http_status(), e.http_body()),
    }
}

/// A plain-text answer like Go's `http.Error`: the text and a newline
/// (unless it already ends with one), `nosniff`.
pub fn text(status: u16, text: impl Into<String>) -> Response<Bytes> {
    let mut body = text.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = plain(status, Bytes::from(body));
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn plain(status: StatusCode, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The `skupper-site-name` header as sent (its first value, like Go's
/// `Header.Get`), if any.
pub fn site_name(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(SITE_NAME_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
}

/// The claim name: the decoded path with every `/` removed, as Skupper
/// does (`strings.Join(strings.Split(r.URL.Path, "/"), "")`). `None` when
/// the path has a bad percent escape.
pub fn claim_name(uri: &Uri) -> Option<String> {
    let path = unescape(uri.path(), false)?;
    let name: Vec<u8> = path.into_iter().filter(|&b| b != b'/').collect();
    Some(String::from_utf8_lossy(&name).into_owned())
}

/// The first value of query parameter `name`, decoded (`+` is a space),
/// like Go's `URL.Query().Get`. Pairs with bad escapes are skipped.
pub fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = unescape(k, true)?;
        if k.as_slice() != name.as_bytes() {
            return None;
        }
        Some(String::from_utf8_lossy(&unescape(v, true)?).into_owned())
    })
}

/// Percent-decodes `s` (`+` is a space when `plus` is set); `None` on a bad
/// escape.
pub(super) fn unescape(s: &str, plus: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, target: &str, site: Option<&str>) -> Parts {
        let mut builder = http::Request::builder().method(method).uri(target);
        if let Some(site) = site {
            builder = builder.header("Skupper-Site-Name", site);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn body_text(r: &Response<Bytes>) -> String {
        String::from_utf8_lossy(r.body()).into_owned()
    }

    fn refused(parts: &Parts, body: Body) -> (u16, String) {
        let r = redeem_request(parts, body).expect_err("answered without redeeming");
        (r.status().as_u16(), body_text(&r))
    }

    #[test]
    fn a_skupper_request_becomes_its_redeem_request() {
        let p = parts("POST", "/c1?site-version=1.9.6", Some("east-id"));
        let r = redeem_request(&p, Body::Complete(b"secret".to_vec())).unwrap();
        assert_eq!(r.claim, "c1");
        assert_eq!(r.password, b"secret");
        assert_eq!(r.site_id, "east-id");
        assert_eq!(r.site_version, "1.9.6");
        // No header: the claim name is the subject, as in Skupper; no
        // version: empty (the core refuses it).
        let r = redeem_request(&parts("POST", "/c2", None), Body::Complete(Vec::new())).unwrap();
        assert_eq!((r.site_id.as_str(), r.site_version.as_str()), ("c2", ""));
        let r = redeem_request(&parts("POST", "/c3", Some("")), Body::Complete(Vec::new()));
        assert_eq!(r.unwrap().site_id, "c3", "an empty header is no header");
    }

    #[test]
    fn the_checks_come_in_skupper_order() {
        let invalid = || Body::Invalid {
            reason: "too big".into(),
        };
        let get = parts("GET", "/c", None);
        assert_eq!(
            refused(&get, invalid()),
            (405, "Only POST is supported\n".into()),
            "the method before the body"
        );
        let r = redeem_request(&get, invalid()).unwrap_err();
        assert_eq!(r.headers()[ALLOW], "POST");
        assert_eq!(
            refused(&parts("POST", "/c", None), invalid()),
            (400, "Request body not valid\n".into())
        );
        assert_eq!(
            refused(&parts("GET", "/c%2", None), invalid()),
            (400, format!("{BAD_PATH}\n")),
            "the URL before the method"
        );
        let r = redeem_request(&get, invalid()).unwrap_err();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
    }

    #[test]
    fn paths_and_queries_decode_like_go() {
        let uri: Uri = "https://west:8081/a%2Fb/c?x=1&site-version=v1.9.6+rc%21&site-version=2"
            .parse()
            .unwrap();
        assert_eq!(claim_name(&uri).as_deref(), Some("abc"));
        assert_eq!(
            query_param(&uri, "site-version").as_deref(),
            Some("v1.9.6 rc!")
        );
        assert_eq!(query_param(&uri, "missing"), None);
        let bad: Uri = "/c%zz?site-version=%zz&site-version=1".parse().unwrap();
        assert_eq!(claim_name(&bad), None);
        assert_eq!(query_param(&bad, "site-version").as_deref(), Some("1"));
    }

    #[test]
    fn a_redemption_answers_with_the_errors_status_and_body() {
        let r = redeemed(&Err(RedeemError::WrongPassword { claim: "c".into() }));
        assert_eq!(
            (r.status().as_u16(), body_text(&r)),
            (403, "Claim refused\n".into())
        );
        let r = redeemed(&Err(RedeemError::Conflict {
            claim: "c".into(),
            attempts: 16,
        }));
        assert_eq!(
            (r.status().as_u16(), body_text(&r)),
            (503, "Internal error\n".into())
        );
        assert!(!format!("{:?}", Body::Complete(b"secret".to_vec())).contains("secret"));
    }
}
