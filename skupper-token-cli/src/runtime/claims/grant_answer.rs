//! Skupper 2.x grant redemptions on the claims endpoint, as pure functions:
//! which requests are grant redemptions ([`route`]), what Skupper's grant
//! server checks before the grant ([`grant_request`]), and what it answers
//! ([`grant_redeemed`]).
//!
//! # Routing: claim or grant
//!
//! Claim names and grant ids are both UUIDs, so the path alone cannot say
//! which a request is for. The headers can: Skupper 1.x clients always
//! send the `skupper-site-name` header and the `site-version` query
//! parameter, Skupper 2.x clients the `name` and `subject` headers and
//! neither of the 1.x ones. So a request is:
//!
//! 1. a claim redemption, exactly as before, when it has
//!    `skupper-site-name` or `site-version`;
//! 2. otherwise a grant redemption when it has `name` or `subject`;
//! 3. otherwise (none of the four) a grant redemption when the site has a
//!    grant of that id, and a claim redemption when it does not (so every
//!    1.x answer, the refusal of a missing version included, stays as it
//!    was).
//!
//! Nothing here does I/O or panics, whatever the request.

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::request::Parts;
use http::{Response, StatusCode, Uri};
use skupper_token::v2::grant_redeem::http_answer;
use skupper_token::v2::{GrantError, GrantRedemption, LinkFile};

use super::answer::{self, text, Body, BAD_PATH, BODY_NOT_VALID, ONLY_POST};
use crate::https::http::{SITE_NAME_HEADER, SITE_VERSION_PARAM};

/// The header a 2.x redeemer names its AccessToken with.
pub const NAME_HEADER: &str = "name";

/// The header a 2.x redeemer gives its site id in.
pub const SUBJECT_HEADER: &str = "subject";

/// What a request is for (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A 1.x claim redemption.
    Claim,
    /// A 2.x grant redemption.
    Grant,
    /// A grant redemption if the site has a grant of this id, else a claim
    /// redemption.
    GrantIfKnown(String),
}

/// Where a request goes: the rules of the [module documentation](self).
pub fn route(parts: &Parts) -> Route {
    let has = |name: &str| parts.headers.contains_key(name);
    if has(SITE_NAME_HEADER) || answer::query_param(&parts.uri, SITE_VERSION_PARAM).is_some() {
        return Route::Claim;
    }
    if has(NAME_HEADER) || has(SUBJECT_HEADER) {
        return Route::Grant;
    }
    match grant_id(&parts.uri) {
        Some(id) if !id.is_empty() => Route::GrantIfKnown(id),
        _ => Route::Claim,
    }
}

/// What a grant redemption request asks for, in Skupper's order: a bad URL
/// (400 [`BAD_PATH`]), a method other than POST (405 [`ONLY_POST`], with
/// `Allow: POST`), an unreadable body (400 [`BODY_NOT_VALID`]) are
/// answered here (`Err`); otherwise the redemption to run (`Ok`), whose
/// checks (grant, code, expiry, redemptions, names) are the core's
/// ([`skupper_token::site::Site::redeem_grant`]).
///
/// The grant id is the decoded path's last segment, the code the body, the
/// `name` and `subject` headers their first values (an empty one is none:
/// the server falls back as Skupper's does).
// The answer is the error: boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
pub fn grant_request(parts: &Parts, body: Body) -> Result<GrantRedemption, Response<Bytes>> {
    let Some(grant) = grant_id(&parts.uri) else {
        return Err(text(400, BAD_PATH));
    };
    if parts.method != http::Method::POST {
        let mut response = text(405, ONLY_POST);
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return Err(response);
    }
    let code = match body {
        Body::Complete(body) => body,
        Body::Invalid { .. } => return Err(text(400, BODY_NOT_VALID)),
    };
    Ok(GrantRedemption {
        grant,
        code,
        name: header(parts, NAME_HEADER),
        subject: header(parts, SUBJECT_HEADER),
    })
}

/// The answer to a grant redemption, as Skupper's grant server gives it:
/// 200 with the Secret and Link(s) YAML stream (`content-type: text/plain;
/// charset=utf-8`), or the error's status and body
/// ([`GrantError::http_status`], [`GrantError::http_body`]).
pub fn grant_redeemed(result: &Result<LinkFile, GrantError>) -> Response<Bytes> {
    let (status, body) = http_answer(result);
    if status != 200 {
        return text(status, body);
    }
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The grant id: the decoded path's last segment. `None` when the path has
/// a bad percent escape.
pub fn grant_id(uri: &Uri) -> Option<String> {
    let path = answer::unescape(uri.path(), false)?;
    let last = path.rsplit(|&b| b == b'/').next().unwrap_or_default();
    Some(String::from_utf8_lossy(last).into_owned())
}

/// The first value of header `name`, trimmed; `None` when missing or
/// empty.
fn header(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, target: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().method(method).uri(target);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn requests_are_routed_by_their_headers_then_by_the_grant_ids() {
        let both = [("skupper-site-name", "east"), ("name", "n")];
        assert_eq!(route(&parts("POST", "/c1", &both)), Route::Claim);
        assert_eq!(
            route(&parts("POST", "/c1?site-version=1.9.6", &[])),
            Route::Claim
        );
        assert_eq!(
            route(&parts("POST", "/g1", &[("subject", "east")])),
            Route::Grant
        );
        assert_eq!(route(&parts("POST", "/g1", &[("Name", "n")])), Route::Grant);
        assert_eq!(
            route(&parts("POST", "/g1", &[])),
            Route::GrantIfKnown("g1".into())
        );
        assert_eq!(route(&parts("POST", "/", &[])), Route::Claim);
        assert_eq!(route(&parts("POST", "/g%2", &[])), Route::Claim);
    }

    #[test]
    fn a_grant_request_becomes_its_redemption_after_skuppers_checks() {
        let p = parts("POST", "/ns/g1", &[("name", "west"), ("subject", " ")]);
        let r = grant_request(&p, Body::Complete(b"code".to_vec())).unwrap();
        assert_eq!(r.grant, "g1");
        assert_eq!(r.code, b"code");
        assert_eq!(r.name.as_deref(), Some("west"));
        assert_eq!(r.subject, None, "an empty header is no header");

        let invalid = || Body::Invalid {
            reason: "too big".into(),
        };
        let get = grant_request(&parts("GET", "/g1", &[]), invalid()).unwrap_err();
        assert_eq!(get.status(), 405);
        assert_eq!(get.body().as_ref(), b"Only POST is supported\n");
        assert_eq!(get.headers()[ALLOW], "POST");
        let bad = grant_request(&parts("POST", "/g1", &[]), invalid()).unwrap_err();
        assert_eq!(
            (bad.status().as_u16(), bad.body().as_ref()),
            (400, &b"Request body not valid\n"[..])
        );
    }

    #[test]
    fn refusals_answer_skuppers_statuses_and_bodies() {
        let r = grant_redeemed(&Err(GrantError::UsedUp {
            grant: "g".into(),
            name: "n".into(),
            allowed: 1,
        }));
        assert_eq!(
            (r.status().as_u16(), r.body().as_ref()),
            (404, &b"No such access granted\n"[..])
        );
        assert_eq!(r.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
        let r = grant_redeemed(&Err(GrantError::WrongCode {
            grant: "g".into(),
            name: "n".into(),
        }));
        assert_eq!(
            (r.status().as_u16(), r.body().as_ref()),
            (403, &b"Redemption of access token refused\n"[..])
        );
    }
}
