//! Reads one HTTP/1.x answer from the raw bytes of a connection: for the
//! tests and the `claim_request` fuzz target, which send hand-made requests
//! to the claims endpoint and must check exactly what came back on the
//! wire. The redemption client itself reads answers through hyper
//! ([`crate::runtime::redeem`]).
//!
//! The head is parsed by `httparse` (the parser hyper uses), and so are
//! chunk sizes; this module adds only the body framing rules of RFC 9112
//! section 6.3 and the limits. Every input is untrusted and bounded;
//! nothing here panics, whatever the bytes.

use std::fmt;

/// At most this many header fields in a response head.
const MAX_HEADERS: usize = 64;

/// Chunk-size lines and trailers of a chunked body may add at most this many
/// bytes on the wire beyond twice the body limit.
const CHUNK_FRAMING_SLACK: usize = 1024;

/// A claims server's answer, parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedResponse {
    /// The status code.
    pub status: u16,
    /// The header fields (values that are not UTF-8 are replaced lossily).
    pub headers: Vec<(String, String)>,
    /// The body, transfer-decoded.
    pub body: Vec<u8>,
}

impl ParsedResponse {
    /// The value of the first header field named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// More bytes are needed.
    #[error("the response is not complete yet")]
    Incomplete,
    /// The response is not HTTP/1.x or breaks a limit.
    #[error("the response cannot be read: {reason}")]
    Invalid {
        /// What is wrong (never echoes the input).
        reason: String,
    },
}

fn invalid(reason: impl Into<String>) -> ResponseError {
    ResponseError::Invalid {
        reason: reason.into(),
    }
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
    /// Until the connection closes.
    UntilEof,
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
    let mut rest = bytes;
    loop {
        let (status, headers, head_len) = parse_head(rest, max_head_bytes, eof)?;
        let after = &rest[head_len..];
        if (100..200).contains(&status) && status != 101 {
            rest = after;
            continue;
        }
        let framing = match status {
            101 | 204 | 304 => Framing::Empty,
            _ => framing(&headers)?,
        };
        let body = read_body(after, framing, max_body_bytes, eof)?;
        return Ok(ParsedResponse {
            status,
            headers,
            body,
        });
    }
}

type Head = (u16, Vec<(String, String)>, usize);

/// The status, header fields and length of the head at the start of
/// `bytes`.
fn parse_head(bytes: &[u8], max: usize, eof: bool) -> Result<Head, ResponseError> {
    let window = &bytes[..bytes.len().min(max)];
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(window) {
        Ok(httparse::Status::Complete(len)) => {
            let status = response.code.unwrap_or_default();
            let headers = response
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            Ok((status, headers, len))
        }
        Ok(httparse::Status::Partial) if bytes.len() >= max => Err(invalid(format!(
            "the response head is larger than {max} bytes"
        ))),
        Ok(httparse::Status::Partial) if eof => {
            Err(invalid("the connection closed inside the response head"))
        }
        Ok(httparse::Status::Partial) => Err(ResponseError::Incomplete),
        Err(httparse::Error::Version | httparse::Error::Status) => Err(invalid(
            "the answer is not HTTP/1.x (is this a claims server, and is it HTTPS?)",
        )),
        Err(httparse::Error::TooManyHeaders) => Err(invalid(format!(
            "the response head has more than {MAX_HEADERS} header fields"
        ))),
        Err(e) => Err(invalid(format!("malformed response head: {e}"))),
    }
}

/// The body framing the header fields announce; neither header means the
/// body runs until the connection closes.
fn framing(headers: &[(String, String)]) -> Result<Framing, ResponseError> {
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let mut codings = named("transfer-encoding");
    let mut lengths = named("content-length");
    if let Some(coding) = codings.next() {
        if codings.next().is_some() || !coding.eq_ignore_ascii_case("chunked") {
            return Err(invalid("only Transfer-Encoding: chunked is supported"));
        }
        if lengths.next().is_some() {
            return Err(invalid("both Transfer-Encoding and Content-Length"));
        }
        return Ok(Framing::Chunked);
    }
    let Some(first) = lengths.next() else {
        return Ok(Framing::UntilEof);
    };
    if lengths.any(|other| other != first) {
        return Err(invalid("conflicting Content-Length headers"));
    }
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("Content-Length is not a number"));
    }
    first
        .parse()
        .map(Framing::Length)
        .map_err(|_| invalid("Content-Length is not a number"))
}

fn read_body(
    bytes: &[u8],
    framing: Framing,
    max: usize,
    eof: bool,
) -> Result<Vec<u8>, ResponseError> {
    match framing {
        Framing::Empty => Ok(Vec::new()),
        Framing::Length(n) if n > max as u64 => Err(invalid(format!(
            "Content-Length {n} is over the {max}-byte limit"
        ))),
        Framing::Length(n) => match bytes.get(..n as usize) {
            Some(body) => Ok(body.to_vec()),
            None if eof => Err(invalid(format!(
                "the connection closed after {} of {n} body bytes",
                bytes.len()
            ))),
            None => Err(ResponseError::Incomplete),
        },
        Framing::UntilEof if bytes.len() > max => {
            Err(invalid(format!("the body is over the {max}-byte limit")))
        }
        Framing::UntilEof if eof => Ok(bytes.to_vec()),
        Framing::UntilEof => Err(ResponseError::Incomplete),
        Framing::Chunked => match dechunk(bytes, max)? {
            Some(body) => Ok(body),
            None if eof => Err(invalid("the connection closed inside the chunked body")),
            None => Err(ResponseError::Incomplete),
        },
    }
}

/// Decodes a chunked body: `Ok(None)` while incomplete.
fn dechunk(bytes: &[u8], max: usize) -> Result<Option<Vec<u8>>, ResponseError> {
    let wire_max = max.saturating_mul(2).saturating_add(CHUNK_FRAMING_SLACK);
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        if pos > wire_max {
            return Err(invalid(
                "the chunked encoding is too long for the body it carries",
            ));
        }
        let window = &bytes[pos..bytes.len().min(pos + CHUNK_FRAMING_SLACK)];
        let (line_len, size) = match httparse::parse_chunk_size(window) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) if window.len() >= CHUNK_FRAMING_SLACK => {
                return Err(invalid("a chunk-size line is too long"))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::InvalidChunkSize) => {
                return Err(invalid("a chunk size is not a hex number"))
            }
        };
        pos += line_len;
        if size == 0 {
            return trailer(bytes, pos, wire_max).map(|done| done.then_some(body));
        }
        if (body.len() as u64).saturating_add(size) > max as u64 {
            return Err(invalid(format!(
                "the chunked body is over the {max}-byte limit"
            )));
        }
        let end = pos + size as usize;
        let Some(chunk) = bytes.get(pos..end) else {
            return Ok(None);
        };
        body.extend_from_slice(chunk);
        pos = end;
        match bytes.get(pos..) {
            Some([b'\r', b'\n', ..]) => pos += 2,
            Some([] | [b'\r']) => return Ok(None),
            _ => return Err(invalid("a chunk is not followed by CRLF")),
        }
    }
}

/// Whether the trailer section starting at `pos` (fields, then an empty
/// line) has fully arrived.
fn trailer(bytes: &[u8], mut pos: usize, wire_max: usize) -> Result<bool, ResponseError> {
    loop {
        if pos > wire_max {
            return Err(invalid("the chunked trailer is too long"));
        }
        let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            return Ok(false);
        };
        let line = &bytes[pos..pos + nl];
        pos += nl + 1;
        if line.is_empty() || line == b"\r" {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(r: Result<ParsedResponse, ResponseError>) -> String {
        match r {
            Err(ResponseError::Invalid { reason }) => reason,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_claims_answer_parses() {
        let bytes = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\nNo such claim\n";
        let parsed = parse_response(bytes, 16 * 1024, 1 << 20, false).unwrap();
        assert_eq!(parsed.status, 404);
        assert_eq!(parsed.body, b"No such claim\n");
        assert_eq!(
            parsed.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
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
    fn chunked_interim_and_until_close_responses_parse() {
        let chunked = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n2;x=y\r\nef\r\n0\r\nTrailer: t\r\n\r\n";
        let r = parse_response(chunked, 1024, 1024, false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abcdef"[..]));
        assert_eq!(
            parse_response(&chunked[..chunked.len() - 2], 1024, 1024, false),
            Err(ResponseError::Incomplete)
        );
        let close = b"HTTP/1.0 200 OK\r\n\r\nbody";
        assert_eq!(
            parse_response(close, 1024, 1024, false),
            Err(ResponseError::Incomplete)
        );
        assert_eq!(
            parse_response(close, 1024, 1024, true).unwrap().body,
            b"body"
        );
    }

    #[test]
    fn broken_answers_say_what_is_wrong() {
        assert_eq!(
            reason(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", 1024, 1024, true)),
            "the answer is not HTTP/1.x (is this a claims server, and is it HTTPS?)"
        );
        assert_eq!(
            reason(parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                1024,
                1024,
                true
            )),
            "conflicting Content-Length headers"
        );
        assert_eq!(
            reason(parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                1024,
                1024,
                true
            )),
            "only Transfer-Encoding: chunked is supported"
        );
        assert_eq!(
            reason(parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
                1024,
                1024,
                false
            )),
            "Content-Length 5000 is over the 1024-byte limit"
        );
        assert_eq!(
            reason(parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab",
                1024,
                1024,
                true
            )),
            "the connection closed after 2 of 4 body bytes"
        );
        assert_eq!(
            reason(parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                1024,
                1024,
                false
            )),
            "a chunk size is not a hex number"
        );
        let long_head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "a".repeat(2000));
        assert_eq!(
            reason(parse_response(long_head.as_bytes(), 1024, 1024, false)),
            "the response head is larger than 1024 bytes"
        );
        assert!(reason(parse_response(
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            1024,
            1024,
            true
        ))
        .starts_with("malformed response head"));
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

            #[test]
            fn on_a_valid_head_then_arbitrary_body(body in proptest::collection::vec(any::<u8>(), 0..600)) {
                let mut bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                bytes.extend_from_slice(&body);
                let _ = parse_response(&bytes, 256, 64, false);
                let _ = parse_response(&bytes, 256, 64, true);
            }
        }
    }
}
