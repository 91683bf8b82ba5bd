//! HTTP/1.1, as much of it as claim redemption needs, as pure functions.
//!
//! Nothing here does I/O: [`parse_request`] reads the bytes a connection has
//! received so far, [`handle`] turns a parsed request into a [`Response`]
//! through a caller-supplied redeem function, and [`parse_response`] reads a
//! claims server's answer. The server and client in the sibling modules feed
//! them bytes from TLS streams; tests and fuzzers can feed them anything.
//!
//! Every input is untrusted and bounded: the request head by
//! [`Limits::max_head_bytes`], the body by [`Limits::max_body_bytes`]. None
//! of these functions panics, whatever the bytes.

use std::fmt;

use skupper_token::claim::{RedeemError, RedeemRequest};
use skupper_token::token::CertToken;

/// The request header that names the redeeming site (its id, the issued
/// certificate's common name).
pub const SITE_NAME_HEADER: &str = "skupper-site-name";

/// The query parameter that carries the redeeming site's version.
pub const SITE_VERSION_PARAM: &str = "site-version";

/// Skupper's answer to a method other than POST (405).
pub const ONLY_POST: &str = "Only POST is supported";

/// Skupper's answer to a body that cannot be read (400).
pub const BODY_NOT_VALID: &str = "Request body not valid";

/// Size limits for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The request line and headers, with their line ends (default 16 KiB).
    pub max_head_bytes: usize,
    /// The body after transfer decoding (default 4 KiB; a claim password is
    /// 24 bytes).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 16 * 1024,
            max_body_bytes: 4 * 1024,
        }
    }
}

/// Chunk-size lines and trailers of a chunked body may add at most this many
/// bytes on the wire beyond twice the body limit.
const CHUNK_FRAMING_SLACK: usize = 1024;

impl Limits {
    /// The most bytes a request can take on the wire before
    /// [`parse_request`] gives an answer: a server never needs to buffer
    /// more than this.
    pub fn max_request_bytes(&self) -> usize {
        self.max_head_bytes
            .saturating_add(self.max_body_bytes.saturating_mul(2))
            .saturating_add(CHUNK_FRAMING_SLACK)
    }
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// A request's body.
#[derive(Clone, PartialEq, Eq)]
pub enum Body {
    /// The whole body (empty when the request has none).
    Complete(Vec<u8>),
    /// The body cannot be read: over the size limit, malformed chunked
    /// encoding, or the connection closed early. Answered with 400
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

/// A parsed HTTP/1.x request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent (methods are case-sensitive).
    pub method: String,
    /// The request target, as sent (`/claim?site-version=1.9.6`).
    pub target: String,
    /// The minor HTTP version (`HTTP/1.0` is 0, `HTTP/1.1` is 1).
    pub minor_version: u8,
    /// The header fields in order, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

impl Request {
    /// The first value of header `name` (case-insensitive), like Go's
    /// `Header.Get`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The path of the target, percent-encoded as sent: the absolute form
    /// (`https://host/path`) is reduced to its path.
    pub fn raw_path(&self) -> &str {
        let target = self.target.as_str();
        let without_query = target.split(['?', '#']).next().unwrap_or("");
        for scheme in ["http://", "https://"] {
            if without_query.len() >= scheme.len()
                && without_query[..scheme.len()].eq_ignore_ascii_case(scheme)
            {
                let rest = &without_query[scheme.len()..];
                return rest.find('/').map_or("/", |i| &rest[i..]);
            }
        }
        without_query
    }

    /// The raw query (after `?`, before any `#`), if any.
    pub fn raw_query(&self) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        Some(query.split('#').next().unwrap_or(""))
    }

    /// The first value of query parameter `name`, decoded (`+` is a space),
    /// like Go's `URL.Query().Get`. Pairs with bad escapes are skipped.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.raw_query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = unescape(k, true)?;
            if k.as_slice() != name.as_bytes() {
                return None;
            }
            Some(String::from_utf8_lossy(&unescape(v, true)?).into_owned())
        })
    }

    /// The claim name: the decoded path with every `/` removed, as Skupper
    /// does (`strings.Join(strings.Split(r.URL.Path, "/"), "")`). `None`
    /// when the path has a bad percent escape.
    pub fn claim_name(&self) -> Option<String> {
        let path = unescape(self.raw_path(), false)?;
        let name: Vec<u8> = path.into_iter().filter(|&b| b != b'/').collect();
        Some(String::from_utf8_lossy(&name).into_owned())
    }
}

/// Why a request could not be parsed (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// More bytes are needed. `head_complete` says whether the head has
    /// arrived and only body bytes are missing.
    Incomplete {
        /// Whether only body bytes are missing.
        head_complete: bool,
    },
    /// The request line and headers are longer than the limit (431).
    HeadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The request line or a header is malformed (400).
    BadHead {
        /// What is wrong (never echoes the input).
        reason: &'static str,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Incomplete {
                head_complete: false,
            } => f.write_str("the request head is not complete"),
            ParseError::Incomplete {
                head_complete: true,
            } => f.write_str("the request body is not complete"),
            ParseError::HeadTooLarge { limit } => {
                write!(f, "the request head is larger than {limit} bytes")
            }
            ParseError::BadHead { reason } => write!(f, "malformed request: {reason}"),
        }
    }
}

impl ParseError {
    /// The answer to send, or `None` for [`ParseError::Incomplete`] (read
    /// more, or see [`parse_request_at_eof`]).
    pub fn response(&self) -> Option<Response> {
        match self {
            ParseError::Incomplete { .. } => None,
            ParseError::HeadTooLarge { .. } => {
                Some(Response::text(431, "Request Header Fields Too Large"))
            }
            ParseError::BadHead { reason } => {
                Some(Response::text(400, format!("Bad Request: {reason}")))
            }
        }
    }
}

/// Parses the bytes a connection has received so far as one request.
///
/// Returns [`ParseError::Incomplete`] while more bytes are needed; a server
/// reads more (up to [`Limits::max_request_bytes`]) and calls it again. A
/// body over the limit, or malformed, gives a request with
/// [`Body::Invalid`] as soon as that is known, without waiting for the
/// rest. Bytes after the request (pipelining) are ignored.
pub fn parse_request(bytes: &[u8], limits: &Limits) -> Result<Request, ParseError> {
    parse(bytes, limits, false)
}

/// [`parse_request`] for a connection that has closed (or timed out): a
/// complete head with a short body gives [`Body::Invalid`]; a short head
/// gives [`ParseError::BadHead`].
pub fn parse_request_at_eof(bytes: &[u8], limits: &Limits) -> Result<Request, ParseError> {
    parse(bytes, limits, true)
}

fn parse(bytes: &[u8], limits: &Limits, eof: bool) -> Result<Request, ParseError> {
    // RFC 9112 2.2: ignore empty lines before the request line.
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    if start > limits.max_head_bytes {
        return Err(ParseError::HeadTooLarge {
            limit: limits.max_head_bytes,
        });
    }
    let head = split_head(&bytes[start..], limits.max_head_bytes - start).map_err(|_| {
        ParseError::HeadTooLarge {
            limit: limits.max_head_bytes,
        }
    })?;
    let Some((lines, head_end)) = head else {
        return if eof {
            Err(ParseError::BadHead {
                reason: "the connection closed before the request head ended",
            })
        } else {
            Err(ParseError::Incomplete {
                head_complete: false,
            })
        };
    };
    let head_end = start + head_end;
    let (request_line, header_lines) = lines.split_first().ok_or(ParseError::BadHead {
        reason: "no request line",
    })?;
    let (method, target, minor_version) = parse_request_line(request_line)?;
    let headers = parse_headers(header_lines)?;
    let framing = framing(&headers)?;
    let body = match read_body(&bytes[head_end..], framing, limits.max_body_bytes, eof) {
        BodyState::Complete(b) => Body::Complete(b),
        BodyState::Invalid(reason) => Body::Invalid { reason },
        BodyState::Incomplete => {
            return Err(ParseError::Incomplete {
                head_complete: true,
            })
        }
    };
    Ok(Request {
        method,
        target,
        minor_version,
        headers,
        body,
    })
}

/// A message head's lines (without line ends) and the offset of the first
/// byte after the head.
type Head<'a> = (Vec<&'a [u8]>, usize);

/// Splits the head into lines if the empty line that ends it is within
/// `max` bytes.
fn split_head(bytes: &[u8], max: usize) -> Result<Option<Head<'_>>, ParseError> {
    let window = &bytes[..bytes.len().min(max)];
    let mut lines = Vec::new();
    let mut pos = 0;
    while let Some(nl) = window[pos..].iter().position(|&b| b == b'\n') {
        let line = &window[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos += nl + 1;
        if line.is_empty() {
            return Ok(Some((lines, pos)));
        }
        lines.push(line);
    }
    if bytes.len() >= max {
        Err(ParseError::HeadTooLarge { limit: max })
    } else {
        Ok(None)
    }
}

fn parse_request_line(line: &[u8]) -> Result<(String, String, u8), ParseError> {
    let bad = |reason| ParseError::BadHead { reason };
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the request line is not METHOD TARGET VERSION"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(bad("the method is not a token"));
    }
    if target.is_empty() || !target.iter().all(|&b| (0x21..0x7f).contains(&b)) {
        return Err(bad(
            "the request target is empty or has characters that are not allowed",
        ));
    }
    let minor = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        _ => return Err(bad("only HTTP/1.0 and HTTP/1.1 are supported")),
    };
    // All checked ASCII above.
    Ok((
        String::from_utf8_lossy(method).into_owned(),
        String::from_utf8_lossy(target).into_owned(),
        minor,
    ))
}

fn parse_headers(lines: &[&[u8]]) -> Result<Vec<(String, String)>, ParseError> {
    let bad = |reason| ParseError::BadHead { reason };
    let mut headers = Vec::with_capacity(lines.len());
    for line in lines {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Err(bad("obsolete header line folding"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(bad("a header line has no colon"))?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(bad("a header name is not a token"));
        }
        let value = trim_ows(value);
        if !value
            .iter()
            .all(|&b| b == b'\t' || b == b' ' || (0x21..0x7f).contains(&b) || b >= 0x80)
        {
            return Err(bad("a header value has control characters"));
        }
        let value = std::str::from_utf8(value).map_err(|_| bad("a header value is not UTF-8"))?;
        headers.push((String::from_utf8_lossy(name).into_owned(), value.to_owned()));
    }
    Ok(headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    UntilEof,
}

/// Request framing (RFC 9112 6.3): chunked, or Content-Length, or no body.
fn framing(headers: &[(String, String)]) -> Result<Framing, ParseError> {
    match message_framing(headers)? {
        Framing::UntilEof => Ok(Framing::Empty),
        f => Ok(f),
    }
}

/// Message framing; a message with neither header is `UntilEof` (for a
/// request that means no body).
fn message_framing(headers: &[(String, String)]) -> Result<Framing, ParseError> {
    let bad = |reason| ParseError::BadHead { reason };
    let mut te = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    let mut lengths = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str());
    if let Some((_, coding)) = te.next() {
        if te.next().is_some() || !coding.eq_ignore_ascii_case("chunked") {
            return Err(bad("only Transfer-Encoding: chunked is supported"));
        }
        if lengths.next().is_some() {
            return Err(bad("both Transfer-Encoding and Content-Length"));
        }
        return Ok(Framing::Chunked);
    }
    let Some(first) = lengths.next() else {
        return Ok(Framing::UntilEof);
    };
    if lengths.any(|other| other != first) {
        return Err(bad("conflicting Content-Length headers"));
    }
    if first.is_empty() || first.len() > 19 || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("Content-Length is not a number"));
    }
    first
        .parse()
        .map(Framing::Length)
        .map_err(|_| bad("Content-Length is not a number"))
}

enum BodyState {
    Complete(Vec<u8>),
    Incomplete,
    Invalid(String),
}

fn read_body(bytes: &[u8], framing: Framing, max: usize, eof: bool) -> BodyState {
    match framing {
        Framing::Empty => BodyState::Complete(Vec::new()),
        Framing::Length(n) => {
            if n > max as u64 {
                return BodyState::Invalid(format!(
                    "Content-Length {n} is over the {max}-byte limit"
                ));
            }
            let n = n as usize;
            if bytes.len() >= n {
                BodyState::Complete(bytes[..n].to_vec())
            } else if eof {
                BodyState::Invalid(format!(
                    "the connection closed after {} of {n} body bytes",
                    bytes.len()
                ))
            } else {
                BodyState::Incomplete
            }
        }
        Framing::UntilEof => {
            if bytes.len() > max {
                BodyState::Invalid(format!("the body is over the {max}-byte limit"))
            } else if eof {
                BodyState::Complete(bytes.to_vec())
            } else {
                BodyState::Incomplete
            }
        }
        Framing::Chunked => match dechunk(bytes, max) {
            Ok(Some(body)) => BodyState::Complete(body),
            Ok(None) if eof => {
                BodyState::Invalid("the connection closed inside the chunked body".into())
            }
            Ok(None) => BodyState::Incomplete,
            Err(reason) => BodyState::Invalid(reason),
        },
    }
}

/// Decodes a chunked body: `Ok(None)` while incomplete.
fn dechunk(bytes: &[u8], max: usize) -> Result<Option<Vec<u8>>, String> {
    let wire_max = max.saturating_mul(2).saturating_add(CHUNK_FRAMING_SLACK);
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        if pos > wire_max {
            return Err("the chunked encoding is too long for the body it carries".into());
        }
        let Some(line) = next_line(bytes, pos) else {
            return check_incomplete(bytes.len() - pos, wire_max);
        };
        let (text, next) = line;
        let size_text = text.split(|&b| b == b';').next().unwrap_or(b"");
        let size_text = trim_ows(size_text);
        if size_text.is_empty()
            || size_text.len() > 16
            || !size_text.iter().all(u8::is_ascii_hexdigit)
        {
            return Err("a chunk size is not a hex number".into());
        }
        let size = size_text
            .iter()
            .try_fold(0usize, |acc, &b| {
                let d = (b as char).to_digit(16)? as usize;
                acc.checked_mul(16)?.checked_add(d)
            })
            .ok_or("a chunk size is too large")?;
        pos = next;
        if size == 0 {
            // Trailer fields, then the empty line.
            loop {
                if pos > wire_max {
                    return Err("the chunked trailer is too long".into());
                }
                let Some((trailer, next)) = next_line(bytes, pos) else {
                    return check_incomplete(bytes.len() - pos, wire_max);
                };
                pos = next;
                if trailer.is_empty() {
                    return Ok(Some(body));
                }
            }
        }
        if body.len().saturating_add(size) > max {
            return Err(format!("the chunked body is over the {max}-byte limit"));
        }
        let end = pos.saturating_add(size);
        if bytes.len() < end {
            return Ok(None);
        }
        body.extend_from_slice(&bytes[pos..end]);
        pos = end;
        match bytes.get(pos..) {
            Some([b'\r', b'\n', ..]) => pos += 2,
            Some([b'\n', ..]) => pos += 1,
            Some([] | [b'\r']) => return Ok(None),
            _ => return Err("a chunk is not followed by a line end".into()),
        }
    }
}

fn check_incomplete(pending: usize, wire_max: usize) -> Result<Option<Vec<u8>>, String> {
    if pending > wire_max {
        Err("a chunk line is too long".into())
    } else {
        Ok(None)
    }
}

/// The line starting at `pos` (without its line end) and the offset after
/// it, if the line end has arrived.
fn next_line(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = bytes.get(pos..)?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let line = &rest[..nl];
    Some((line.strip_suffix(b"\r").unwrap_or(line), pos + nl + 1))
}

/// Percent-decodes `s` (`+` is a space when `plus` is set); `None` on a bad
/// escape.
fn unescape(s: &str, plus: bool) -> Option<Vec<u8>> {
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

/// Percent-encodes `s` for a query value, like Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// An HTTP response to send. Always `Connection: close`.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Extra header fields (Content-Type, Content-Length and Connection are
    /// added by [`Response::to_bytes`]).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl fmt::Debug for Response {
    /// Shows the status and body length: a 200 body holds a private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

impl Response {
    /// A plain-text answer like Go's `http.Error`: the text and a newline
    /// (unless it already ends with one).
    pub fn text(status: u16, text: impl Into<String>) -> Response {
        let mut body = text.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Response {
            status,
            headers: vec![("X-Content-Type-Options", "nosniff".to_owned())],
            body: body.into_bytes(),
        }
    }

    /// The body as text (lossy), for logs and tests.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The response on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160 + self.body.len());
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
                self.status,
                reason_phrase(self.status),
                self.body.len()
            )
            .as_bytes(),
        );
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The reason phrase for the statuses this server sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Answers one request the way Skupper 1.x's claims handler does, in its
/// order: a bad URL (400), a method other than POST (405
/// [`ONLY_POST`]), an unreadable body (400 [`BODY_NOT_VALID`]); then
/// `redeem` decides (version check, claim, password, expiry, uses), and
/// its error gives the status and body ([`RedeemError::http_status`],
/// [`RedeemError::http_body`]). Success is 200 with the cert token Secret
/// as YAML.
///
/// The redeem request: the claim is the decoded path without slashes, the
/// password is the body, the site id is the `skupper-site-name` header (or,
/// as in Skupper, the claim name when the header is missing or empty), the
/// version is the `site-version` query parameter (empty when missing, which
/// the version check refuses).
pub fn handle<F>(request: &Request, redeem: F) -> Response
where
    F: FnOnce(&RedeemRequest) -> Result<CertToken, RedeemError>,
{
    let Some(claim) = request.claim_name() else {
        return Response::text(
            400,
            "Bad Request: the request path has a bad percent escape",
        );
    };
    if request.method != "POST" {
        let mut response = Response::text(405, ONLY_POST);
        response.headers.push(("Allow", "POST".to_owned()));
        return response;
    }
    let password = match &request.body {
        Body::Complete(body) => body.clone(),
        Body::Invalid { .. } => return Response::text(400, BODY_NOT_VALID),
    };
    let site_id = match request.header(SITE_NAME_HEADER) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => claim.clone(),
    };
    let redeem_request = RedeemRequest {
        claim,
        password,
        site_id,
        site_version: request.query_param(SITE_VERSION_PARAM).unwrap_or_default(),
    };
    match redeem(&redeem_request) {
        Ok(token) => Response {
            status: 200,
            headers: Vec::new(),
            body: token.encode().into_bytes(),
        },
        Err(e) => Response::text(e.http_status(), e.http_body()),
    }
}

// ---------------------------------------------------------------------------
// Responses, client side
// ---------------------------------------------------------------------------

/// A claims server's answer, parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedResponse {
    /// The status code.
    pub status: u16,
    /// The header fields.
    pub headers: Vec<(String, String)>,
    /// The body, transfer-decoded.
    pub body: Vec<u8>,
}

impl fmt::Debug for ParsedResponse {
    /// Shows the body length only: a 200 body holds a private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// More bytes are needed.
    Incomplete,
    /// The response is not HTTP/1.x or breaks a limit.
    Invalid {
        /// What is wrong.
        reason: String,
    },
}

/// Parses the bytes received so far as one HTTP/1.x response to a POST.
/// `eof` says the connection has closed (a body without Content-Length or
/// chunking runs until then). Interim 1xx responses are skipped.
pub fn parse_response(
    bytes: &[u8],
    max_head_bytes: usize,
    max_body_bytes: usize,
    eof: bool,
) -> Result<ParsedResponse, ResponseError> {
    let invalid = |reason: &str| ResponseError::Invalid {
        reason: reason.to_owned(),
    };
    let mut rest = bytes;
    loop {
        let head = match split_head(rest, max_head_bytes) {
            Ok(Some(head)) => head,
            Ok(None) if eof => {
                return Err(invalid("the connection closed inside the response head"))
            }
            Ok(None) => return Err(ResponseError::Incomplete),
            Err(_) => {
                return Err(invalid(&format!(
                    "the response head is larger than {max_head_bytes} bytes"
                )))
            }
        };
        let (lines, head_end) = head;
        let (status_line, header_lines) = lines
            .split_first()
            .ok_or_else(|| invalid("no status line"))?;
        let status = parse_status_line(status_line).ok_or_else(|| {
            invalid("the answer is not HTTP/1.x (is this a claims server, and is it HTTPS?)")
        })?;
        let headers = parse_headers(header_lines).map_err(|e| invalid(&e.to_string()))?;
        let after = &rest[head_end..];
        if (100..200).contains(&status) && status != 101 {
            rest = after;
            continue;
        }
        let framing = match status {
            101 | 204 | 304 => Framing::Empty,
            _ => message_framing(&headers).map_err(|e| invalid(&e.to_string()))?,
        };
        return match read_body(after, framing, max_body_bytes, eof) {
            BodyState::Complete(body) => Ok(ParsedResponse {
                status,
                headers,
                body,
            }),
            BodyState::Incomplete => Err(ResponseError::Incomplete),
            BodyState::Invalid(reason) => Err(ResponseError::Invalid { reason }),
        };
    }
}

fn parse_status_line(line: &[u8]) -> Option<u16> {
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn parse_ok(bytes: &[u8]) -> Request {
        parse_request(bytes, &limits()).expect("parses")
    }

    const GOOD: &[u8] = b"POST /c1?site-version=1.9.6 HTTP/1.1\r\nHost: x\r\nSkupper-Site-Name: east-id\r\nContent-Length: 6\r\n\r\nsecret";

    #[test]
    fn a_skupper_request_parses() {
        let r = parse_ok(GOOD);
        assert_eq!(r.method, "POST");
        assert_eq!(r.claim_name().as_deref(), Some("c1"));
        assert_eq!(r.header("skupper-site-name"), Some("east-id"));
        assert_eq!(r.query_param("site-version").as_deref(), Some("1.9.6"));
        assert_eq!(r.body, Body::Complete(b"secret".to_vec()));
        assert!(!format!("{r:?}").contains("secret"), "Debug hides the body");
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for n in 0..GOOD.len() {
            assert!(
                matches!(
                    parse_request(&GOOD[..n], &limits()),
                    Err(ParseError::Incomplete { .. })
                ),
                "prefix {n}"
            );
        }
        assert!(matches!(
            parse_request(&GOOD[..GOOD.len() - 1], &limits()),
            Err(ParseError::Incomplete {
                head_complete: true
            })
        ));
        let r = parse_request_at_eof(&GOOD[..GOOD.len() - 1], &limits()).unwrap();
        assert!(matches!(r.body, Body::Invalid { .. }));
        assert!(matches!(
            parse_request_at_eof(&GOOD[..10], &limits()),
            Err(ParseError::BadHead { .. })
        ));
    }

    #[test]
    fn bare_line_feeds_and_leading_blank_lines_are_accepted() {
        let r = parse_ok(b"\r\n\nPOST /a/b HTTP/1.0\nContent-Length: 2\n\nab");
        assert_eq!(r.minor_version, 0);
        assert_eq!(r.claim_name().as_deref(), Some("ab"));
        assert_eq!(r.body, Body::Complete(b"ab".to_vec()));
    }

    #[test]
    fn no_length_means_no_body() {
        let r = parse_ok(b"POST /c HTTP/1.1\r\nHost: x\r\n\r\nignored");
        assert_eq!(r.body, Body::Complete(Vec::new()));
    }

    #[test]
    fn chunked_bodies_decode() {
        let r = parse_ok(
            b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n",
        );
        assert_eq!(r.body, Body::Complete(b"abcde".to_vec()));
        let head = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for bad in [&b"zz\r\n"[..], b"3\r\nabcX", b"fffffffffffffffff\r\n"] {
            let r = parse_ok(&[head.as_slice(), bad].concat());
            assert!(matches!(r.body, Body::Invalid { .. }), "{bad:?}");
        }
        let big = format!("{:x}\r\n", 5000);
        let r = parse_ok(&[head.as_slice(), big.as_bytes()].concat());
        assert!(matches!(r.body, Body::Invalid { .. }));
    }

    #[test]
    fn oversized_bodies_are_invalid_without_waiting_for_them() {
        let r = parse_ok(b"POST /c HTTP/1.1\r\nContent-Length: 4097\r\n\r\n");
        match r.body {
            Body::Invalid { reason } => assert!(reason.contains("4097"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oversized_heads_are_refused() {
        let mut req = b"POST /c HTTP/1.1\r\n".to_vec();
        while req.len() <= 16 * 1024 {
            req.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(
            parse_request(&req, &limits()),
            Err(ParseError::HeadTooLarge { limit: 16 * 1024 })
        );
        let blank = vec![b'\n'; 20_000];
        assert!(matches!(
            parse_request(&blank, &limits()),
            Err(ParseError::HeadTooLarge { .. })
        ));
    }

    #[test]
    fn malformed_heads_are_refused() {
        for bad in [
            &b"POST  /c HTTP/1.1\r\n\r\n"[..],
            b"POST /c HTTP/2.0\r\n\r\n",
            b"POST /c\r\n\r\n",
            b"PO(ST /c HTTP/1.1\r\n\r\n",
            b"POST /c HTTP/1.1\r\nNo-Colon\r\n\r\n",
            b"POST /c HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"POST /c HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"POST /c HTTP/1.1\r\nA: b\x00c\r\n\r\n",
            b"POST /c HTTP/1.1\r\nA: \xff\r\n\r\n",
            b"POST /c HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST /c HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST /c HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST /c HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
        ] {
            let e = parse_request(bad, &limits()).unwrap_err();
            assert!(matches!(e, ParseError::BadHead { .. }), "{bad:?}: {e:?}");
            assert_eq!(e.response().unwrap().status, 400);
        }
    }

    #[test]
    fn targets_and_queries_decode_like_go() {
        let r = parse_ok(
            b"POST https://west:8081/a%2Fb/c?x=1&site-version=v1.9.6+rc%21&site-version=2 HTTP/1.1\r\n\r\n",
        );
        assert_eq!(r.raw_path(), "/a%2Fb/c");
        assert_eq!(r.claim_name().as_deref(), Some("abc"));
        assert_eq!(r.query_param("site-version").as_deref(), Some("v1.9.6 rc!"));
        assert_eq!(r.query_param("missing"), None);
        let r = parse_ok(b"POST /c%zz HTTP/1.1\r\n\r\n");
        assert_eq!(r.claim_name(), None);
        assert_eq!(query_escape("1.9.6 a/b"), "1.9.6+a%2Fb");
    }

    #[test]
    fn handle_follows_skupper_order() {
        let never =
            |_: &RedeemRequest| -> Result<CertToken, RedeemError> { panic!("must not redeem") };
        let get = parse_ok(b"GET /c HTTP/1.1\r\nContent-Length: 99999\r\n\r\n");
        let r = handle(&get, never);
        assert_eq!(
            (r.status, r.body_text().as_str()),
            (405, "Only POST is supported\n")
        );
        let big = parse_ok(b"POST /c HTTP/1.1\r\nContent-Length: 99999\r\n\r\n");
        let r = handle(&big, never);
        assert_eq!(
            (r.status, r.body_text().as_str()),
            (400, "Request body not valid\n")
        );
        let bad = parse_ok(b"POST /c%2 HTTP/1.1\r\n\r\n");
        assert_eq!(handle(&bad, never).status, 400);
    }

    #[test]
    fn handle_builds_the_redeem_request() {
        let mut seen = None;
        let r = handle(&parse_ok(GOOD), |req| {
            seen = Some(req.clone());
            Err(RedeemError::WrongPassword {
                claim: req.claim.clone(),
            })
        });
        assert_eq!((r.status, r.body_text().as_str()), (403, "Claim refused\n"));
        let seen = seen.unwrap();
        assert_eq!(seen.claim, "c1");
        assert_eq!(seen.password, b"secret");
        assert_eq!(seen.site_id, "east-id");
        assert_eq!(seen.site_version, "1.9.6");

        // No header: the claim name is the subject, as in Skupper; no
        // version: empty (the core refuses it).
        let mut seen = None;
        handle(&parse_ok(b"POST /c2 HTTP/1.1\r\n\r\n"), |req| {
            seen = Some(req.clone());
            Err(RedeemError::NoSuchClaim {
                claim: req.claim.clone(),
            })
        });
        let seen = seen.unwrap();
        assert_eq!(
            (seen.site_id.as_str(), seen.site_version.as_str()),
            ("c2", "")
        );
    }

    #[test]
    fn responses_round_trip() {
        let r = Response::text(404, "No such claim");
        let bytes = r.to_bytes();
        assert!(bytes.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
        let parsed = parse_response(&bytes, 16 * 1024, 1 << 20, false).unwrap();
        assert_eq!(parsed.status, 404);
        assert_eq!(parsed.body, b"No such claim\n");
    }

    #[test]
    fn chunked_and_until_close_responses_parse() {
        let chunked = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n";
        let r = parse_response(chunked, 1024, 1024, false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abcd"[..]));
        let close = b"HTTP/1.0 200 OK\r\n\r\nbody";
        assert_eq!(
            parse_response(close, 1024, 1024, false),
            Err(ResponseError::Incomplete)
        );
        assert_eq!(
            parse_response(close, 1024, 1024, true).unwrap().body,
            b"body"
        );
        for bad in [&b"SSH-2.0-OpenSSH\r\n\r\n"[..], b"HTTP/1.1 2000 OK\r\n\r\n"] {
            assert!(matches!(
                parse_response(bad, 1024, 1024, true),
                Err(ResponseError::Invalid { .. })
            ));
        }
    }

    mod never_panics {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                let small = Limits { max_head_bytes: 256, max_body_bytes: 64 };
                for limits in [small, Limits::default()] {
                    for r in [parse_request(&bytes, &limits), parse_request_at_eof(&bytes, &limits)].into_iter().flatten() {
                        let _ = handle(&r, |req| Err(RedeemError::NoSuchClaim { claim: req.claim.clone() }));
                    }
                }
                let _ = parse_response(&bytes, 256, 64, false);
                let _ = parse_response(&bytes, 256, 64, true);
            }

            #[test]
            fn on_mutated_requests(
                cut in 0usize..200,
                flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..4),
            ) {
                let mut bytes = GOOD.to_vec();
                for (i, b) in flips {
                    if let Some(x) = bytes.get_mut(i) {
                        *x = b;
                    }
                }
                bytes.truncate(cut);
                let limits = Limits::default();
                for r in [parse_request(&bytes, &limits), parse_request_at_eof(&bytes, &limits)].into_iter().flatten() {
                    let _ = handle(&r, |req| Err(RedeemError::NoSuchClaim { claim: req.claim.clone() }));
                }
            }
        }
    }
}
