//! What the HTTPS claims client needs of HTTP/1.1, as pure functions: the
//! names Skupper's redemption request uses, [`query_escape`] for its query,
//! and [`parse_response`], which reads a claims server's answer from the
//! bytes received so far. The server side is hyper's
//! ([`crate::runtime::claims`]).
//!
//! Every input is untrusted and bounded; nothing here panics, whatever the
//! bytes.

use std::fmt;

/// The request header that names the redeeming site (its id, the issued
/// certificate's common name).
pub const SITE_NAME_HEADER: &str = "skupper-site-name";

/// The query parameter that carries the redeeming site's version.
pub const SITE_VERSION_PARAM: &str = "site-version";

/// Chunk-size lines and trailers of a chunked body may add at most this many
/// bytes on the wire beyond twice the body limit.
const CHUNK_FRAMING_SLACK: usize = 1024;

/// Why a message head cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HeadError {
    /// Longer than the limit.
    TooLarge,
    /// Malformed (never echoes the input).
    Bad(&'static str),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge => f.write_str("the head is too large"),
            HeadError::Bad(reason) => write!(f, "malformed response: {reason}"),
        }
    }
}

/// A message head's lines (without line ends) and the offset of the first
/// byte after the head.
type Head<'a> = (Vec<&'a [u8]>, usize);

/// Splits the head into lines if the empty line that ends it is within
/// `max` bytes.
fn split_head(bytes: &[u8], max: usize) -> Result<Option<Head<'_>>, HeadError> {
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
        Err(HeadError::TooLarge)
    } else {
        Ok(None)
    }
}

fn parse_headers(lines: &[&[u8]]) -> Result<Vec<(String, String)>, HeadError> {
    let bad = HeadError::Bad;
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

/// Message framing; a message with neither header is `UntilEof`.
fn message_framing(headers: &[(String, String)]) -> Result<Framing, HeadError> {
    let bad = HeadError::Bad;
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

    #[test]
    fn a_claims_answer_parses() {
        let bytes = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\nNo such claim\n";
        let parsed = parse_response(bytes, 16 * 1024, 1 << 20, false).unwrap();
        assert_eq!(parsed.status, 404);
        assert_eq!(parsed.body, b"No such claim\n");
        assert_eq!(
            parse_response(&bytes[..bytes.len() - 1], 16 * 1024, 1 << 20, false),
            Err(ResponseError::Incomplete)
        );
        assert!(
            !format!("{parsed:?}").contains("No such claim"),
            "Debug hides the body"
        );
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
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        ] {
            assert!(
                matches!(
                    parse_response(bad, 1024, 1024, true),
                    Err(ResponseError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
        let big = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n";
        assert!(matches!(
            parse_response(big, 1024, 1024, false),
            Err(ResponseError::Invalid { .. })
        ));
    }

    #[test]
    fn query_values_escape_like_go() {
        assert_eq!(query_escape("1.9.6 a/b"), "1.9.6+a%2Fb");
    }

    mod never_panics {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                let _ = parse_response(&bytes, 256, 64, false);
                let _ = parse_response(&bytes, 256, 64, true);
            }
        }
    }
}
