//! The `claim_request` target: bytes as HTTP requests to the claims
//! handler, against a fixed site with a few claims of known uses.
//!
//! Each request's bytes go to the claims server's own HTTP stack, as a
//! connection would bring them: hyper with the server's settings
//! (`runtime::claims::connection_builder`) serving
//! `runtime::claims::ClaimsEndpoint` (its `respond`: the body read under
//! the limits, the rules of `runtime::claims::answer`, the redemption on
//! the blocking pool) over `Site::redeem_claim`, on an in-memory pipe and a
//! current-thread runtime. Every answer on the wire must be a well-formed
//! HTTP/1.1 response (`parse_response` reads it, Content-Length exact) with
//! a status the server may send; no claim ever redeems more often than its
//! uses, an expired claim or one of an older CA generation never redeems,
//! every 200 carries the cert token of a redemption from this site for the
//! site that asked, and no refusal echoes a password.
//!
//! # Input
//!
//! `[config] ([op] [len: u16 LE] [payload: len bytes])*`, at most
//! [`MAX_REQUESTS`] requests against the same site (so uses run out); the
//! last payload takes what is left when the input is shorter than `len`.
//!
//! - `config` bit 0: small [`Limits`] (a 64-byte body; hyper reads at
//!   least 8 KiB of head) instead of the server's; bits 1-3: the pipe's
//!   size, so the most the server reads at once (0: 4 KiB, `k`:
//!   `2^(k-1)` bytes, but never less than a 64th of the request).
//! - `op` bits 0-2: the claim the template names ([`CLAIMS`] 0-5, 6: the
//!   payload is the claim name, 7: no template, the payload is the whole
//!   request); bits 3-6: which part of the client's request the payload
//!   replaces or extends ([`Field`]); bit 7: leave out the Host and
//!   `Skupper-Site-Name` headers.
//!
//! The site is reset (claims restored, issued records removed) before every
//! input, so each input runs against the same state.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use skupper_token::claim::{ClaimRecord, RedeemError, RedeemRequest};
use skupper_token::duration::GoDuration;
use skupper_token::pki::CertifiedKey;
use skupper_token::pki::{certificate_info, pem_to_der};
use skupper_token::random::SeededRandom;
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::store::{Cas, Key, MemoryStore, Record, RecordKind, Store, Versioned};
use skupper_token::token::{CertToken, Token};
use skupper_token::version::VERSION;
use skupper_token_cli::https::http;
use skupper_token_cli::https::response::{parse_response, ParsedResponse};
use skupper_token_cli::https::ClaimUrl;
use skupper_token_cli::runtime::claims::{
    connection_builder, ClaimService, ClaimsEndpoint, EndpointOptions, Limits, ResponseBody,
};
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::START;

/// Requests per input.
pub const MAX_REQUESTS: usize = 8;

/// The pipe is never smaller than this fraction of a request.
const MAX_READS: usize = 64;

/// The id of the site that redeems (the `Skupper-Site-Name` header).
pub const PEER_SITE_ID: &str = "6d2b4a43-7a57-4b8e-9d0e-3f2a1c5b9e10";

/// What a claim of the fixed site allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// This many redemptions before [`FixtureClaim::expires`].
    Uses(u32),
    /// Any number (uses 0, no expiry).
    Unlimited,
    /// None: expired at the time of the requests.
    Expired,
    /// None: made under the CA that `revoke_access` replaced (the record
    /// was put back after the revocation deleted it, as a crash between the
    /// two would leave it).
    OldGeneration,
}

/// The claims of the fixed site, in `op` order: (name, uses, expiry from
/// [`START`] in minutes, 0 for none).
pub const CLAIMS: [(&str, Allowed); 6] = [
    ("one", Allowed::Uses(1)),
    ("two", Allowed::Uses(2)),
    ("three", Allowed::Uses(3)),
    ("gone", Allowed::Expired),
    ("forever", Allowed::Unlimited),
    ("old", Allowed::OldGeneration),
];

/// One claim of the fixed site.
#[derive(Debug, Clone)]
pub struct FixtureClaim {
    /// The claim name.
    pub name: String,
    /// The password.
    pub password: String,
    /// What it allows.
    pub allowed: Allowed,
    /// The claim URL of its token.
    pub url: String,
}

/// The fixed site and its claims, with the records to restore before every
/// input.
pub struct ClaimsFixture {
    /// The site (`west`, interior).
    pub site: Arc<Site<MemoryStore>>,
    /// The time of every request.
    pub now: OffsetDateTime,
    /// The claims, in [`CLAIMS`] order.
    pub claims: Vec<FixtureClaim>,
    /// The site's CA (current generation), PEM.
    pub ca_pem: String,
    template: Vec<(String, Versioned<Record>)>,
}

impl ClaimsFixture {
    /// Builds the site (deterministic: the same records on every run).
    pub fn new() -> ClaimsFixture {
        let mut rng = SeededRandom::new(0xc1a1);
        let site = Site::create(
            MemoryStore::new(),
            &SiteConfig::new("west").hosts(["claims.west.example"]),
            START,
            &mut rng,
        )
        .expect("site");
        let now = START + Duration::minutes(10);
        let make = |name: &str, uses: u32, expiry: GoDuration, rng: &mut SeededRandom| {
            site.create_claim_token(
                &TokenOptions::claim().name(name).uses(uses).expiry(expiry),
                START,
                rng,
            )
            .expect("claim token")
        };
        let hour = GoDuration::from_secs(3600);
        // "old" first, then a new CA: its record is voided by generation.
        let old = make("old", 5, hour, &mut rng);
        let old_record = site
            .store()
            .load(&Key::new(RecordKind::Claim, "old"))
            .expect("load")
            .expect("old claim")
            .record;
        site.revoke_access(START, &mut rng).expect("revoke access");
        let restored = site
            .store()
            .compare_and_swap(&Key::new(RecordKind::Claim, "old"), None, Some(old_record))
            .expect("restore the old claim");
        assert!(matches!(restored, Cas::Done(_)));

        let mut claims = Vec::new();
        for (name, allowed) in CLAIMS {
            let token = match allowed {
                Allowed::Uses(n) => make(name, n, hour, &mut rng),
                Allowed::Unlimited => make(name, 0, GoDuration::ZERO, &mut rng),
                // Expires exactly at `now`: expired.
                Allowed::Expired => make(name, 1, GoDuration::from_secs(600), &mut rng),
                Allowed::OldGeneration => old.clone(),
            };
            claims.push(FixtureClaim {
                name: token.name.clone(),
                password: token.password.expose().to_owned(),
                allowed,
                url: token.url.clone(),
            });
        }
        let ca_pem = site
            .record()
            .expect("record")
            .ca
            .expect("interior site")
            .cert_pem;
        let template = site.store().list(RecordKind::Claim).expect("list");
        assert!(
            site.store()
                .list(RecordKind::Issued)
                .expect("list")
                .is_empty(),
            "no certificate issued yet"
        );
        ClaimsFixture {
            site: Arc::new(site),
            now,
            claims,
            ca_pem,
            template,
        }
    }

    /// Puts the claims back as they were made and forgets issued
    /// certificates.
    fn reset(&self) {
        let store = self.site.store();
        for (name, v) in &self.template {
            let key = Key::new(RecordKind::Claim, name.clone());
            let current = store.load(&key).expect("load").expect("claims stay");
            if current.record != v.record {
                let done = store
                    .compare_and_swap(&key, Some(current.version), Some(v.record.clone()))
                    .expect("reset claim");
                assert!(matches!(done, Cas::Done(_)));
            }
        }
        // Certificates kept in the claim records went with them; those of
        // cert tokens, and those moved out of a claim record, are records of
        // their own.
        for kind in [RecordKind::Issued, RecordKind::ClaimIssued] {
            for (name, v) in store.list(kind).expect("list") {
                let done = store
                    .compare_and_swap(&Key::new(kind, name), Some(v.version), None)
                    .expect("forget issued");
                assert!(matches!(done, Cas::Done(_)));
            }
        }
    }

    fn claim_record(&self, name: &str) -> ClaimRecord {
        match self
            .site
            .store()
            .load(&Key::new(RecordKind::Claim, name))
            .expect("load")
        {
            Some(Versioned {
                record: Record::Claim(c),
                ..
            }) => c,
            other => panic!("claim {name}: {other:?}"),
        }
    }
}

impl Default for ClaimsFixture {
    fn default() -> Self {
        ClaimsFixture::new()
    }
}

/// The fixture, made once per process; locked for each input (tests run
/// in parallel).
pub fn fixture() -> &'static Mutex<ClaimsFixture> {
    static FIXTURE: OnceLock<Mutex<ClaimsFixture>> = OnceLock::new();
    FIXTURE.get_or_init(|| Mutex::new(ClaimsFixture::new()))
}

/// Which part of the client's request an `op`'s payload replaces or
/// extends (`op` bits 3-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The request as the client sends it, then the payload.
    Append = 0,
    /// The method.
    Method = 1,
    /// More path after the claim name (before the query).
    PathSuffix = 2,
    /// The whole query.
    Query = 3,
    /// The `site-version` value, as written in the query.
    SiteVersion = 4,
    /// The `Skupper-Site-Name` value.
    SiteName = 5,
    /// More header lines (each needs its own line end).
    ExtraHeaders = 6,
    /// The body (the password), with a Content-Length to match.
    Body = 7,
    /// The body chunked: payload bytes choose chunk sizes (low nibble,
    /// 0 ends), bit 7 adds a chunk extension; what is left of the payload
    /// follows as trailer lines.
    Chunked = 8,
    /// Every header line (the body stays the password).
    Headers = 9,
    /// The text after `HTTP/` in the request line.
    HttpVersion = 10,
    /// The Content-Length value.
    ContentLength = 11,
    /// The request cut where the first two payload bytes say (LE, modulo
    /// its length).
    Truncate = 12,
    /// Bare LF line ends, with the payload before the request line.
    BareLf = 13,
    /// An absolute-form target with the payload as the authority.
    Authority = 14,
    /// The request with bytes overwritten: payload pairs (offset, byte).
    Overwrite = 15,
}

impl Field {
    fn from_bits(bits: u8) -> Field {
        use Field::*;
        [
            Append,
            Method,
            PathSuffix,
            Query,
            SiteVersion,
            SiteName,
            ExtraHeaders,
            Body,
            Chunked,
            Headers,
            HttpVersion,
            ContentLength,
            Truncate,
            BareLf,
            Authority,
            Overwrite,
        ][(bits & 15) as usize]
    }
}

/// An `op` byte: template claim `claim` (0-7), `field`, and whether to
/// leave out the Host and `Skupper-Site-Name` headers.
pub fn op(claim: u8, field: Field, anonymous: bool) -> u8 {
    (claim & 7) | ((field as u8) << 3) | if anonymous { 0x80 } else { 0 }
}

/// The `op` claim value for "the payload is the whole request".
pub const RAW: u8 = 7;
/// The `op` claim value for "the payload is the claim name".
pub const PAYLOAD_NAME: u8 = 6;

/// Encodes an input: `config` and (op, payload) requests.
pub fn encode(config: u8, requests: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = vec![config];
    for (op, payload) in requests {
        out.push(*op);
        let len = u16::try_from(payload.len()).expect("payload under 64 KiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(payload);
    }
    out
}

/// Splits an input into its config byte and (op, payload) requests.
pub fn decode(data: &[u8]) -> (u8, Vec<(u8, &[u8])>) {
    let Some((&config, mut rest)) = data.split_first() else {
        return (0, Vec::new());
    };
    let mut requests = Vec::new();
    while let Some((&op, after)) = rest.split_first() {
        if requests.len() == MAX_REQUESTS {
            break;
        }
        let (len, after) = match after {
            [lo, hi, tail @ ..] => (u16::from_le_bytes([*lo, *hi]) as usize, tail),
            _ => (0, &[][..]),
        };
        let len = len.min(after.len());
        requests.push((op, &after[..len]));
        rest = &after[len..];
    }
    (config, requests)
}

/// The parts of a request, assembled in [`Parts::to_bytes`].
struct Parts {
    method: Vec<u8>,
    target: Vec<u8>,
    version: Vec<u8>,
    headers: Vec<Vec<u8>>,
    body: Vec<u8>,
    eol: &'static [u8],
    before: Vec<u8>,
    after: Vec<u8>,
}

impl Parts {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.before.clone();
        out.extend_from_slice(&self.method);
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.push(b' ');
        out.extend_from_slice(&self.version);
        out.extend_from_slice(self.eol);
        for h in &self.headers {
            out.extend_from_slice(h);
            out.extend_from_slice(self.eol);
        }
        out.extend_from_slice(self.eol);
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&self.after);
        out
    }
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The bytes of one request: the client's POST (`https::client`: request
/// target from the claim URL with `site-version`, Host, User-Agent,
/// `Skupper-Site-Name`, Content-Length, `Connection: close`, the password
/// as the body) for template claim `claim`, with `field` changed by
/// `payload`.
pub fn build_request(fx: &ClaimsFixture, op: u8, payload: &[u8]) -> Vec<u8> {
    let which = op & 7;
    if which == RAW {
        return payload.to_vec();
    }
    let field = Field::from_bits(op >> 3);
    let anonymous = op & 0x80 != 0;
    let (path, password, url) = if which == PAYLOAD_NAME {
        let c = &fx.claims[0];
        let url = ClaimUrl::parse(&c.url).expect("claim URL");
        (concat(&[b"/", payload]), c.password.clone(), url)
    } else {
        let c = &fx.claims[which as usize];
        let url = ClaimUrl::parse(&c.url).expect("claim URL");
        (url.path.clone().into_bytes(), c.password.clone(), url)
    };
    let version_query = format!("{}={}", http::SITE_VERSION_PARAM, VERSION);
    let mut p = Parts {
        method: b"POST".to_vec(),
        target: concat(&[&path, b"?", version_query.as_bytes()]),
        version: b"HTTP/1.1".to_vec(),
        headers: Vec::new(),
        body: password.clone().into_bytes(),
        eol: b"\r\n",
        before: Vec::new(),
        after: Vec::new(),
    };
    let mut site_name = PEER_SITE_ID.as_bytes().to_vec();
    let mut content_length: Option<Vec<u8>> = None;
    let mut chunked = false;
    match field {
        Field::Append => p.after = payload.to_vec(),
        Field::Method => p.method = payload.to_vec(),
        Field::PathSuffix => {
            p.target = concat(&[&path, payload, b"?", version_query.as_bytes()]);
        }
        Field::Query => p.target = concat(&[&path, b"?", payload]),
        Field::SiteVersion => {
            p.target = concat(&[
                &path,
                b"?",
                http::SITE_VERSION_PARAM.as_bytes(),
                b"=",
                payload,
            ]);
        }
        Field::SiteName => site_name = payload.to_vec(),
        Field::Body => p.body = payload.to_vec(),
        Field::Chunked => {
            chunked = true;
            p.body = chunk(password.as_bytes(), payload);
        }
        Field::HttpVersion => p.version = concat(&[b"HTTP/", payload]),
        Field::ContentLength => content_length = Some(payload.to_vec()),
        Field::BareLf => {
            p.eol = b"\n";
            p.before = payload.to_vec();
        }
        Field::Authority => {
            p.target = concat(&[b"https://", payload, &path, b"?", version_query.as_bytes()]);
        }
        Field::ExtraHeaders | Field::Headers | Field::Truncate | Field::Overwrite => {}
    }
    if !anonymous {
        p.headers.push(format!("Host: {url}").into_bytes());
    }
    p.headers
        .push(concat(&[b"User-Agent: skupper-token/", VERSION.as_bytes()]));
    if !anonymous {
        p.headers
            .push(concat(&[b"Skupper-Site-Name: ", site_name.as_slice()]));
    }
    if field == Field::ExtraHeaders {
        // The payload's own line ends separate its lines; the template's
        // line end closes the last one.
        let extra = payload
            .strip_suffix(b"\r\n")
            .or_else(|| payload.strip_suffix(b"\n"))
            .unwrap_or(payload);
        p.headers.push(extra.to_vec());
    }
    if chunked {
        p.headers.push(b"Transfer-Encoding: chunked".to_vec());
    } else {
        let value = content_length.unwrap_or_else(|| p.body.len().to_string().into_bytes());
        p.headers.push(concat(&[b"Content-Length: ", &value]));
    }
    p.headers.push(b"Connection: close".to_vec());
    if field == Field::Headers {
        p.headers = vec![payload.to_vec()];
    }
    let mut bytes = p.to_bytes();
    match field {
        Field::Truncate => {
            let at = match payload {
                [lo, hi, ..] => u16::from_le_bytes([*lo, *hi]) as usize,
                [lo] => *lo as usize,
                [] => 0,
            };
            bytes.truncate(at % bytes.len().max(1));
        }
        Field::Overwrite => {
            for pair in payload.chunks_exact(2) {
                let at = pair[0] as usize % bytes.len().max(1);
                if let Some(b) = bytes.get_mut(at) {
                    *b = pair[1];
                }
            }
        }
        _ => {}
    }
    bytes
}

/// `body` in chunks whose sizes the bytes of `plan` choose (see
/// [`Field::Chunked`]).
fn chunk(body: &[u8], plan: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut plan = plan.iter();
    while !rest.is_empty() {
        let step = plan.next().copied().unwrap_or(0x08);
        let size = ((step & 0x0f) as usize).min(rest.len());
        if size == 0 {
            break;
        }
        out.extend_from_slice(format!("{size:x}").as_bytes());
        if step & 0x80 != 0 {
            out.extend_from_slice(b";ext=1");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&rest[..size]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[size..];
    }
    out.extend_from_slice(b"0\r\n");
    let trailer: Vec<u8> = plan.copied().collect();
    if !trailer.is_empty() {
        out.extend_from_slice(&trailer);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The fixed site as the server's [`ClaimService`]: `Site::redeem_claim` at
/// the fixture's time with a seeded random source, every redemption
/// recorded for the checks.
struct Recorded {
    site: Arc<Site<MemoryStore>>,
    now: OffsetDateTime,
    seed: AtomicU64,
    redeemed: Mutex<Vec<(RedeemRequest, Result<CertToken, RedeemError>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClaimService for Recorded {
    fn server_certificate(&self) -> Result<CertifiedKey, String> {
        Err("not used: the pipe has no TLS".into())
    }

    fn redeem(&self, request: &RedeemRequest) -> Result<CertToken, RedeemError> {
        let mut rng = SeededRandom::new(self.seed.fetch_add(1, Ordering::Relaxed));
        let result = self.site.redeem_claim(request, self.now, &mut rng);
        lock(&self.redeemed).push((request.clone(), result.clone()));
        result
    }
}

/// The runtime the server runs on: one thread, as a connection's task
/// would see it (redemptions go to its blocking pool).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// The endpoint as the connection sees it, noting for each request it is
/// given, in order, whether it is a HEAD (answered with a Content-Length
/// and no body).
#[derive(Clone)]
struct NotingHeads {
    endpoint: ClaimsEndpoint,
    heads: Arc<Mutex<Vec<bool>>>,
}

type Answer = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<hyper::Response<ResponseBody>, std::convert::Infallible>,
            > + Send,
    >,
>;

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for NotingHeads {
    type Response = hyper::Response<ResponseBody>;
    type Error = std::convert::Infallible;
    type Future = Answer;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Answer {
        lock(&self.heads).push(request.method() == hyper::Method::HEAD);
        Box::pin(hyper::service::Service::call(&self.endpoint, request))
    }
}

/// Serves one connection that brings `bytes` then closes its sending side,
/// through a pipe of `pipe` bytes; returns everything the server sent, and
/// for each request the server read whether it was a HEAD.
pub fn serve_bytes(endpoint: &ClaimsEndpoint, bytes: &[u8], pipe: usize) -> (Vec<u8>, Vec<bool>) {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let service = NotingHeads {
        endpoint: endpoint.clone(),
        heads: heads.clone(),
    };
    let wire = serve_with(service, bytes, pipe);
    let heads = std::mem::take(&mut *lock(&heads));
    (wire, heads)
}

fn serve_with(service: NotingHeads, bytes: &[u8], pipe: usize) -> Vec<u8> {
    let pipe = pipe.max(bytes.len().div_ceil(MAX_READS)).max(1);
    runtime().block_on(async {
        let (client, server) = tokio::io::duplex(pipe);
        let builder = connection_builder(service.endpoint.options());
        let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(server), service);
        let (mut from_server, mut to_server) = tokio::io::split(client);
        let send = async {
            let _ = to_server.write_all(bytes).await;
            let _ = to_server.shutdown().await;
        };
        let receive = async {
            let mut out = Vec::new();
            let _ = from_server.read_to_end(&mut out).await;
            out
        };
        let everything = async {
            let (_, (), out) = tokio::join!(connection, send, receive);
            out
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), everything)
            .await
            .expect("the server neither answered nor closed the connection")
    })
}

/// Splits what the server sent into its final responses (interim 1xx ones
/// are skipped), checking that each is well formed: a status line and head
/// `parse_response` reads, and a body of exactly its Content-Length; the
/// answer to the request `heads` says was a HEAD has the Content-Length
/// and no body.
pub fn responses(mut wire: &[u8], heads: &[bool]) -> Vec<ParsedResponse> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let head_end = wire
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| i + 4)
            .unwrap_or_else(|| panic!("a response head does not end: {wire:?}"));
        // An interim answer (100 Continue to `Expect`) has no body.
        if wire.starts_with(b"HTTP/1.1 1") {
            wire = &wire[head_end..];
            continue;
        }
        if heads.get(out.len()).copied().unwrap_or(false) {
            let parsed = head_only(&wire[..head_end]);
            assert!(
                parsed.header("content-length").is_some(),
                "a HEAD answer without a Content-Length: {wire:?}"
            );
            wire = &wire[head_end..];
            out.push(parsed);
            continue;
        }
        let parsed = parse_response(wire, 16 * 1024, 1 << 20, false)
            .unwrap_or_else(|e| panic!("the response does not parse: {e:?}"));
        let length = parsed
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse::<usize>().expect("a Content-Length"))
            .expect("every answer has a Content-Length");
        assert_eq!(length, parsed.body.len());
        wire = &wire[head_end + length..];
        out.push(parsed);
    }
    out
}

/// The head of an answer to a HEAD request, which has no body.
fn head_only(head: &[u8]) -> ParsedResponse {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        other => panic!("a HEAD answer's head does not parse ({other:?}): {head:?}"),
    }
    ParsedResponse {
        status: response.code.expect("a parsed status line has a code"),
        headers: response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
    }
}

/// What a client sends first on a prior-knowledge HTTP/2 connection.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The statuses the claims server may answer with (hyper itself answers
/// 400, 414 and 431 to what it cannot parse).
const STATUSES: [u16; 7] = [200, 400, 403, 404, 405, 414, 431];

/// Runs one input against the fixed site and checks every answer; returns
/// the statuses answered, in order.
pub fn check_requests(data: &[u8]) -> Vec<u16> {
    let fx = fixture().lock().unwrap_or_else(PoisonError::into_inner);
    fx.reset();
    let (config, requests) = decode(data);
    let limits = if config & 1 != 0 {
        Limits {
            max_head_bytes: 256,
            max_body_bytes: 64,
        }
    } else {
        Limits::default()
    };
    let pipe = match (config >> 1) & 7 {
        0 => 4096,
        k => 1 << (k - 1),
    };
    let service = Arc::new(Recorded {
        site: fx.site.clone(),
        now: fx.now,
        seed: AtomicU64::new(1),
        redeemed: Mutex::new(Vec::new()),
    });
    let endpoint = ClaimsEndpoint::new(
        service.clone(),
        EndpointOptions {
            limits,
            ..EndpointOptions::default()
        },
    );
    let mut successes: BTreeMap<String, u32> = BTreeMap::new();
    let mut statuses = Vec::new();
    for (op, payload) in &requests {
        let bytes = build_request(&fx, *op, payload);
        let (wire, heads) = serve_bytes(&endpoint, &bytes, pipe);
        if bytes.starts_with(H2_PREFACE) {
            // Prior-knowledge HTTP/2, which the server speaks (as Skupper's
            // Go server does): its answer is HTTP/2 frames, not the
            // HTTP/1.1 responses this target reads. It must begin with the
            // server's SETTINGS frame; a redemption made through it still
            // counts below.
            assert!(
                wire.len() >= 9 && wire[3] == 4,
                "an HTTP/2 connection does not start with SETTINGS: {wire:?}"
            );
            for (request, result) in lock(&service.redeemed).drain(..) {
                if result.is_ok() {
                    *successes.entry(request.claim.clone()).or_default() += 1;
                }
            }
            continue;
        }
        let answers = responses(&wire, &heads);
        let redeemed = std::mem::take(&mut *lock(&service.redeemed));
        let mut tokens = redeemed
            .iter()
            .filter_map(|(request, result)| match result {
                Ok(token) => Some((request, token)),
                Err(_) => None,
            });
        for response in &answers {
            assert!(
                STATUSES.contains(&response.status),
                "unexpected status {}",
                response.status
            );
            statuses.push(response.status);
            for c in &fx.claims {
                assert!(
                    response.status == 200
                        || response
                            .body
                            .windows(c.password.len())
                            .all(|w| w != c.password.as_bytes()),
                    "a refusal echoes a password"
                );
            }
            if response.status == 200 {
                let (request, token) = tokens.next().expect("200 without a redemption");
                let n = successes.entry(request.claim.clone()).or_default();
                *n += 1;
                check_success(&fx, request, token, *n, response);
            }
        }
        assert!(tokens.next().is_none(), "a redemption without its 200");
        for (request, result) in &redeemed {
            let Err(e) = result else { continue };
            assert!(
                !matches!(
                    e,
                    RedeemError::Store { .. }
                        | RedeemError::Issue { .. }
                        | RedeemError::Conflict { .. }
                ),
                "a request made the site fail: {e}"
            );
            if let RedeemError::WrongPassword { .. } = e {
                if let Some(c) = fx.claims.iter().find(|c| c.name == request.claim) {
                    assert_ne!(request.password, c.password.as_bytes());
                }
            }
        }
    }
    // The stored counters agree with what was answered.
    for c in &fx.claims {
        let record = fx.claim_record(&c.name);
        let made = *successes.get(&c.name).unwrap_or(&0);
        let before = match fx.template.iter().find(|(n, _)| *n == c.name) {
            Some((
                _,
                Versioned {
                    record: Record::Claim(r),
                    ..
                },
            )) => r.clone(),
            other => panic!("template for {}: {other:?}", c.name),
        };
        assert_eq!(
            record.claims_made,
            before.claims_made + made,
            "claim {}: claims_made does not count the 200s",
            c.name
        );
        if let Allowed::Uses(n) = c.allowed {
            assert_eq!(record.uses_remaining, Some(n - made), "claim {}", c.name);
        }
    }
    assert_eq!(
        fx.site.issued().expect("issued").len(),
        successes.values().sum::<u32>() as usize,
        "one issued record per 200"
    );
    statuses
}

/// A 200: allowed for this claim, and a cert token from this site for the
/// site that asked.
fn check_success(
    fx: &ClaimsFixture,
    request: &RedeemRequest,
    token: &CertToken,
    count: u32,
    response: &ParsedResponse,
) {
    let claim = fx
        .claims
        .iter()
        .find(|c| c.name == request.claim)
        .unwrap_or_else(|| panic!("a claim that does not exist redeemed: {:?}", request.claim));
    assert_eq!(
        request.password,
        claim.password.as_bytes(),
        "wrong password"
    );
    match claim.allowed {
        Allowed::Uses(n) => assert!(
            count <= n,
            "claim {} redeemed {count} > {n} times",
            claim.name
        ),
        Allowed::Unlimited => {}
        Allowed::Expired => panic!("expired claim {} redeemed", claim.name),
        Allowed::OldGeneration => panic!("claim {} of the revoked CA redeemed", claim.name),
    }
    let decoded = match Token::decode(&response.body) {
        Ok(Token::Cert(t)) => t,
        other => panic!("a 200 body is not a cert token: {other:?}"),
    };
    assert_eq!(&decoded, token);
    assert_eq!(decoded.issuer_site_id, fx.site.id());
    assert_eq!(decoded.ca_pem, fx.ca_pem);
    let der = pem_to_der(&decoded.cert_pem).expect("certificate PEM");
    let info = certificate_info(&der).expect("certificate");
    assert_eq!(info.common_name.as_deref(), Some(request.site_id.as_str()));
    let peer = fx
        .site
        .authenticate_peer(&[&der], fx.now)
        .unwrap_or_else(|e| panic!("the site does not accept its own certificate: {e}"));
    assert_eq!(peer.serial_hex, info.serial_hex);
}
