//! Claim redemption over real HTTPS: a real site "west" on a MemoryStore
//! serves its claims with the claims server `serve` runs
//! (`runtime::claims::serve`, hyper on tokio) on 127.0.0.1; clients are
//! the hyper [`RedeemClient`], raw rustls connections, `curl` and `openssl`.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skupper_token::claim::{RedeemError, RedeemRequest};
use skupper_token::link::LinkState;
use skupper_token::pki::{certificate_info, pem_to_der, CertifiedKey};
use skupper_token::site::{LinkOptions, Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::token::{CertToken, ClaimToken};
use skupper_token::transport::TransportError;
use skupper_token::version::VERSION;
use skupper_token_cli::https::response::{parse_response, ParsedResponse};
use skupper_token_cli::https::ClientOptions;
use skupper_token_cli::os_random::OsRandom;
use skupper_token_cli::runtime::claims::{ClaimService, EndpointOptions, ServerEvent, SiteClaims};
use skupper_token_cli::runtime::redeem::RedeemClient;
use time::OffsetDateTime;

mod claims_server;
use claims_server::Server;

type WestSite = Site<MemoryStore>;

/// The hyper redemption client ([`RedeemClient`]), called from these
/// synchronous tests on a runtime of its own.
#[derive(Debug, Clone, Default)]
struct Client(RedeemClient);

impl Client {
    fn new() -> Client {
        Client::default()
    }

    fn with_options(options: ClientOptions) -> Client {
        Client(RedeemClient::new(options))
    }

    /// Redeems with the client's retries.
    fn redeem_claim(
        &self,
        url: &str,
        ca_pem: &str,
        request: &RedeemRequest,
    ) -> Result<CertToken, TransportError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(self.0.redeem(url, ca_pem, request))
    }

    /// One attempt, no retries.
    fn redeem_once(
        &self,
        url: &str,
        ca_pem: &str,
        request: &RedeemRequest,
    ) -> Result<CertToken, TransportError> {
        Client::with_options(ClientOptions {
            retry_delays: Vec::new(),
            ..ClientOptions::default()
        })
        .redeem_claim(url, ca_pem, request)
    }
}

/// West: a site, its claims server on 127.0.0.1, a clock the test moves,
/// and every event the server logged.
struct West {
    site: Arc<WestSite>,
    clock: Arc<Mutex<OffsetDateTime>>,
    events: Arc<Mutex<Vec<ServerEvent>>>,
    server: Option<Server>,
}

impl West {
    fn start() -> West {
        West::start_with(EndpointOptions::default())
    }

    /// West's claims port is the server's real port, so its tokens carry a
    /// URL that works.
    fn start_with(options: EndpointOptions) -> West {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // A minute in the past, so the certificates are valid by any clock.
        let now = OffsetDateTime::now_utc() - time::Duration::minutes(1);
        let site = Arc::new(
            Site::create(
                MemoryStore::new(),
                &SiteConfig::new("west")
                    .hosts(["127.0.0.1"])
                    .ports(port, 55671, 45671),
                now,
                &mut OsRandom::new(),
            )
            .unwrap(),
        );
        let clock = Arc::new(Mutex::new(now));
        let service = {
            let clock = clock.clone();
            Arc::new(SiteClaims::with_clock(
                site.clone(),
                Arc::new(move || *clock.lock().unwrap()),
            ))
        };
        West::serve(site, clock, listener, service, options)
    }

    fn serve(
        site: Arc<WestSite>,
        clock: Arc<Mutex<OffsetDateTime>>,
        listener: TcpListener,
        service: Arc<dyn ClaimService>,
        options: EndpointOptions,
    ) -> West {
        let events = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let events = events.clone();
            Server::start(listener, service, options, move |e| {
                events.lock().unwrap().push(e.clone());
            })
        };
        West {
            site,
            clock,
            events,
            server: Some(server),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }

    fn now(&self) -> OffsetDateTime {
        *self.clock.lock().unwrap()
    }

    fn advance(&self, by: time::Duration) {
        *self.clock.lock().unwrap() += by;
    }

    fn claim(&self, options: &TokenOptions) -> ClaimToken {
        self.site
            .create_claim_token(options, self.now(), &mut OsRandom::new())
            .unwrap()
    }

    fn ca_pem(&self) -> String {
        self.site.server_credentials().unwrap().unwrap().0
    }

    fn answered(&self) -> Vec<(u16, String)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Answered { status, detail, .. } => Some((*status, detail.clone())),
                _ => None,
            })
            .collect()
    }

    fn log_lines(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Waits (bounded) until an event matches.
    fn wait_for_event(&self, what: &str, matches: impl Fn(&ServerEvent) -> bool) {
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            if self.events.lock().unwrap().iter().any(&matches) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {what} event; events: {:#?}", self.log_lines());
    }
}

/// A client that retries quickly, so retry tests stay fast.
fn fast_client() -> Client {
    Client::with_options(ClientOptions {
        retry_delays: vec![Duration::from_millis(20), Duration::from_millis(40)],
        ..ClientOptions::default()
    })
}

fn request_for(token: &ClaimToken, site_id: &str) -> RedeemRequest {
    RedeemRequest {
        claim: token.name.clone(),
        password: token.password.expose().as_bytes().to_vec(),
        site_id: site_id.to_owned(),
        site_version: VERSION.to_owned(),
    }
}

fn common_name(cert: &CertToken) -> String {
    certificate_info(&pem_to_der(&cert.cert_pem).unwrap())
        .unwrap()
        .common_name
        .unwrap()
}

fn refused(result: Result<CertToken, TransportError>) -> (u16, String) {
    match result {
        Err(TransportError::Refused { status, body }) => (status, body),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A TLS 1.3 client connection to 127.0.0.1 that trusts only `ca_pem`.
fn tls_client(ca_pem: &str) -> rustls::ClientConnection {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(
            pem_to_der(ca_pem).unwrap(),
        ))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    rustls::ClientConnection::new(Arc::new(config), name).unwrap()
}

/// Sends `bytes` over TLS 1.3 (trusting `ca_pem`) and reads the answer.
fn raw_exchange(addr: SocketAddr, ca_pem: &str, bytes: &[u8]) -> ParsedResponse {
    let conn = tls_client(ca_pem);
    let socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, socket);
    // The server may answer (and close) before it has read everything.
    let _ = tls.write_all(bytes);
    let _ = tls.flush();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tls.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !answer.is_empty() => {
                break
            }
            Err(e) => panic!("reading the answer: {e} (after {} bytes)", answer.len()),
        }
    }
    parse_response(&answer, 16 * 1024, 1 << 20, true).unwrap()
}

fn body(r: &ParsedResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

// ---------------------------------------------------------------------------
// Redemption
// ---------------------------------------------------------------------------

#[test]
fn east_links_to_west_by_redeeming_a_claim_over_https() {
    let west = West::start();
    let token = west.claim(&TokenOptions::claim());
    assert!(token.url.starts_with(&format!("https://{}/", west.addr())));

    let east = Site::create(
        MemoryStore::new(),
        &SiteConfig::new("east"),
        west.now(),
        &mut OsRandom::new(),
    )
    .unwrap();
    let created = east
        .create_link(
            token.encode().as_bytes(),
            &LinkOptions::default(),
            west.now(),
            &mut OsRandom::new(),
        )
        .unwrap();
    let redemption = created.redemption.expect("a claim to redeem");
    let answer =
        Client::new().redeem_claim(&redemption.url, &redemption.ca_pem, &redemption.request);
    let link = east
        .handle_redemption(&redemption, answer, west.now())
        .unwrap();
    assert_eq!(*link.state(), LinkState::Connecting);
    let cert = link.cert_token().unwrap().expect("credentials");
    assert_eq!(common_name(&cert), east.id(), "CN = the redeeming site id");
    assert_eq!(cert.issuer_site_id, west.site.id());
    // West's own verifier accepts the issued certificate.
    let key = CertifiedKey::from_pem(&cert.cert_pem, cert.key_pem.expose()).unwrap();
    let peer = west
        .site
        .authenticate_peer(&[&key.cert_der], west.now())
        .unwrap();
    assert_eq!(peer.common_name, east.id());

    // One log line, naming the site and the claim, never the password.
    let lines = west.log_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains(&format!("claim {:?}", token.name)),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains(east.id()), "{}", lines[0]);
    assert!(
        lines[0].contains(": 200 redeemed: certificate serial "),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains(token.password.expose()));
}

#[test]
fn a_two_use_claim_is_redeemed_twice_then_refused_with_the_reason() {
    let west = West::start();
    let token = west.claim(&TokenOptions::claim().uses(2));
    let client = fast_client();
    for site in ["site-a", "site-b"] {
        let cert = client
            .redeem_claim(&token.url, &token.ca_pem, &request_for(&token, site))
            .unwrap();
        assert_eq!(common_name(&cert), site);
    }
    let (status, body) =
        refused(client.redeem_claim(&token.url, &token.ca_pem, &request_for(&token, "site-c")));
    assert_eq!(status, 404);
    assert_eq!(body, "No such claim: no uses left (2 uses allowed)\n");
    assert_eq!(west.answered().len(), 3, "404 is final: not retried");
}

#[test]
fn a_wrong_password_is_refused_with_403_and_not_retried() {
    let west = West::start();
    let token = west.claim(&TokenOptions::claim());
    let mut request = request_for(&token, "east");
    request.password = b"not-the-password".to_vec();
    let result = fast_client().redeem_claim(&token.url, &token.ca_pem, &request);
    assert!(
        matches!(&result, Err(e) if !e.is_retryable()),
        "a wrong password is final: {result:?}"
    );
    let (status, body) = refused(result);
    assert_eq!((status, body.as_str()), (403, "Claim refused\n"));
    assert_eq!(
        west.answered().iter().filter(|(s, _)| *s == 403).count(),
        1,
        "403 is not retried: one POST"
    );
    // The claim was not spent.
    let cert = fast_client()
        .redeem_claim(&token.url, &token.ca_pem, &request_for(&token, "east"))
        .unwrap();
    assert_eq!(common_name(&cert), "east");
    for line in west.log_lines() {
        assert!(!line.contains("not-the-password") && !line.contains(token.password.expose()));
    }
}

#[test]
fn an_expired_claim_is_404_saying_when_it_expired() {
    let west = West::start();
    let token = west.claim(&TokenOptions::claim());
    west.advance(time::Duration::minutes(16));
    let (status, body) = refused(fast_client().redeem_claim(
        &token.url,
        &token.ca_pem,
        &request_for(&token, "east"),
    ));
    assert_eq!(status, 404);
    assert!(body.starts_with("No such claim: expired at "), "{body}");
    assert_eq!(west.answered().len(), 1);
}

#[test]
fn an_old_site_version_is_400_and_final() {
    let west = West::start();
    let token = west.claim(&TokenOptions::claim());
    let mut request = request_for(&token, "east");
    request.site_version = "0.7.0".into();
    let (status, body) = refused(fast_client().redeem_claim(&token.url, &token.ca_pem, &request));
    assert_eq!(
        (status, body.as_str()),
        (400, "minimum version required 0.8.0\n")
    );
    assert_eq!(west.answered().len(), 1);
}

#[test]
fn an_unknown_claim_is_404() {
    let west = West::start();
    let token = west.claim(&TokenOptions::claim());
    let url = format!("https://{}/no-such-claim", west.addr());
    let (status, body) =
        refused(fast_client().redeem_claim(&url, &token.ca_pem, &request_for(&token, "east")));
    assert_eq!((status, body.as_str()), (404, "No such claim\n"));
}

// ---------------------------------------------------------------------------
// HTTP edges
// ---------------------------------------------------------------------------

#[test]
fn get_is_405_only_post_is_supported() {
    let west = West::start();
    let r = raw_exchange(
        west.addr(),
        &west.ca_pem(),
        b"GET /anything HTTP/1.1\r\nHost: west\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        (r.status, body(&r).as_str()),
        (405, "Only POST is supported\n")
    );
}

#[test]
fn an_oversized_body_is_400_and_an_oversized_head_431() {
    let west = West::start();
    let token = west.claim(&TokenOptions::claim());
    let big = vec![b'x'; 64 * 1024];
    let mut request = format!(
        "POST /{}?site-version=1.9.6 HTTP/1.1\r\nHost: west\r\nContent-Length: {}\r\n\r\n",
        token.name,
        big.len()
    )
    .into_bytes();
    request.extend_from_slice(&big);
    let r = raw_exchange(west.addr(), &west.ca_pem(), &request);
    assert_eq!(
        (r.status, body(&r).as_str()),
        (400, "Request body not valid\n")
    );

    let mut head = b"POST /x HTTP/1.1\r\n".to_vec();
    while head.len() < 20 * 1024 {
        head.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let r = raw_exchange(west.addr(), &west.ca_pem(), &head);
    assert_eq!(r.status, 431);

    // The claim is untouched.
    fast_client()
        .redeem_claim(&token.url, &token.ca_pem, &request_for(&token, "east"))
        .unwrap();
}

/// What hyper cannot parse it answers itself (400, or 431 for a head over
/// the limit), and the log says so like any refused request.
#[test]
fn a_malformed_request_is_400_and_logged() {
    let west = West::start();
    let r = raw_exchange(
        west.addr(),
        &west.ca_pem(),
        b"POST /c HTTP/1.1\r\nBad Name: x\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    west.wait_for_event("malformed request", |e| {
        matches!(e, ServerEvent::Answered { status: 400, claim: None, detail, .. } if detail.starts_with("malformed request: "))
    });
    let line = west
        .log_lines()
        .into_iter()
        .find(|l| l.contains("malformed request"))
        .unwrap();
    assert!(line.starts_with("request from 127.0.0.1:"), "{line}");
    let cause = west.events.lock().unwrap()[0].cause();
    assert_eq!(cause.as_deref(), Some("claims: refused request (400)"));
}

#[test]
fn a_chunked_request_is_understood() {
    let west = West::start();
    let token = west.claim(&TokenOptions::claim());
    let pw = token.password.expose();
    let request = format!(
        "POST /{}?site-version=1.9.6 HTTP/1.1\r\nHost: west\r\nskupper-site-name: chunky\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        token.name,
        4,
        &pw[..4],
        pw.len() - 4,
        &pw[4..]
    );
    let r = raw_exchange(west.addr(), &west.ca_pem(), request.as_bytes());
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(common_name(&CertToken::decode(&r.body).unwrap()), "chunky");
}

// ---------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------

#[test]
fn garbage_and_slow_clients_do_not_block_a_redemption() {
    let west = West::start();
    let token = west.claim(&TokenOptions::claim());

    // Garbage that is not TLS.
    let mut garbage = TcpStream::connect(west.addr()).unwrap();
    garbage
        .write_all(b"\x16\x03\x01\x00\x05hello, this is not a ClientHello\r\n\r\n")
        .unwrap();
    // Connections that say nothing at all.
    let silent: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(west.addr()).unwrap())
        .collect();
    // A slowloris: a real TLS client dripping its head one byte at a time.
    let drip = {
        let (addr, ca) = (west.addr(), west.ca_pem());
        std::thread::spawn(move || {
            let conn = tls_client(&ca);
            let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
            let started = Instant::now();
            for b in b"POST /slow HTTP/1.1\r\nHost: west\r\nX-Slow: "
                .iter()
                .cycle()
            {
                if tls.write_all(&[*b]).and_then(|()| tls.flush()).is_err() {
                    break;
                }
                if started.elapsed() > Duration::from_secs(15) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            started.elapsed()
        })
    };
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    let cert = Client::new()
        .redeem_claim(&token.url, &token.ca_pem, &request_for(&token, "east"))
        .unwrap();
    assert_eq!(common_name(&cert), "east");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the good redemption took {:?} (the slow clients hold their connections for 2 s)",
        started.elapsed()
    );

    // The slow client is cut off by the head deadline even though it never
    // stops sending.
    let dripped_for = drip.join().unwrap();
    assert!(
        dripped_for < Duration::from_secs(8),
        "the slowloris was served for {dripped_for:?}"
    );
    west.wait_for_event("dropped garbage", |e| {
        matches!(e, ServerEvent::Dropped { reason, .. } if reason.contains("TLS handshake failed"))
    });
    west.wait_for_event("dropped slowloris", |e| {
        matches!(e, ServerEvent::Dropped { reason, .. } if reason.contains("no complete request"))
    });
    drop((garbage, silent));
}

/// A TLS 1.3 client trusting `ca_pem`, its handshake done, that then says
/// nothing.
fn silent_tls(
    addr: SocketAddr,
    ca_pem: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut conn = tls_client(ca_pem);
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    while conn.is_handshaking() {
        if conn.complete_io(&mut socket).is_err() {
            break;
        }
    }
    rustls::StreamOwned::new(conn, socket)
}

/// Whether the server has closed `socket` (reads end), waiting at most 15 s.
fn closed_by_server(socket: &mut TcpStream) -> bool {
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    matches!(socket.read(&mut [0u8; 64]), Ok(0) | Err(_))
}

/// Slow and idle connections from 127.0.0.1, the honest client's own
/// address, far more than the caps: each new one closes the oldest that has
/// not sent its request head, the rest are closed by the short deadlines,
/// and the honest redemption goes through at once.
#[test]
fn slow_connections_from_the_same_address_do_not_shut_out_an_honest_redemption() {
    let west = West::start_with(EndpointOptions {
        max_connections: 8,
        max_pending_per_address: 4,
        handshake_timeout: Duration::from_secs(1),
        head_timeout: Duration::from_secs(1),
        ..EndpointOptions::default()
    });
    let token = west.claim(&TokenOptions::claim());
    let idle: Vec<TcpStream> = (0..30)
        .map(|_| TcpStream::connect(west.addr()).unwrap())
        .collect();
    let silent: Vec<_> = (0..5)
        .map(|_| silent_tls(west.addr(), &west.ca_pem()))
        .collect();
    let server = west.server.as_ref().unwrap();
    assert!(
        server.open_connections() <= 8,
        "{} open",
        server.open_connections()
    );

    // The default client: three attempts at most.
    let cert = Client::new()
        .redeem_claim(&token.url, &token.ca_pem, &request_for(&token, "east"))
        .unwrap();
    assert_eq!(common_name(&cert), "east");
    assert_eq!(west.answered().len(), 1);

    // Every slow connection is closed by the server, to make room or by its
    // deadline, without an answer.
    for mut socket in idle {
        assert!(
            closed_by_server(&mut socket),
            "an idle connection stayed open"
        );
    }
    for mut tls in silent {
        assert!(
            closed_by_server(&mut tls.sock),
            "a silent TLS connection stayed open"
        );
    }
    let until = Instant::now() + Duration::from_secs(15);
    let dropped = || {
        west.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, ServerEvent::Dropped { .. }))
            .count()
    };
    while dropped() < 35 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(dropped(), 35, "{:#?}", west.log_lines());
    let lines = west.log_lines();
    assert!(
        lines.iter().any(|l| l.contains(
            "closed to make room for a newer connection: 4 connections from the same address had not finished their handshake or request"
        )),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("no complete request head within 1s of the handshake")),
        "{lines:#?}"
    );
    while server.open_connections() > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.open_connections(), 0);
}

/// A claim service that holds every redemption until released.
struct Held {
    site: Arc<WestSite>,
    release: Mutex<bool>,
    released: std::sync::Condvar,
    waiting: AtomicUsize,
}

impl ClaimService for Held {
    fn server_certificate(&self) -> Result<CertifiedKey, String> {
        Ok(self.site.server_credentials().unwrap().unwrap().1)
    }
    fn redeem(&self, request: &RedeemRequest) -> Result<CertToken, RedeemError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut release = self.release.lock().unwrap();
        while !*release {
            release = self.released.wait(release).unwrap();
        }
        Err(RedeemError::NoSuchClaim {
            claim: request.claim.clone(),
        })
    }
}

/// When every open connection is being answered, nothing can make room:
/// a new connection is closed at once, and the client, which retries a
/// closed connection, gets through once there is room.
#[test]
fn a_server_full_of_answers_refuses_new_connections_at_once() {
    let base = West::start();
    let service = Arc::new(Held {
        site: base.site.clone(),
        release: Mutex::new(false),
        released: std::sync::Condvar::new(),
        waiting: AtomicUsize::new(0),
    });
    let west = West::serve(
        base.site.clone(),
        base.clock.clone(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
        service.clone(),
        EndpointOptions {
            max_connections: 2,
            ..EndpointOptions::default()
        },
    );
    let token = base.claim(&TokenOptions::claim());
    let url = format!("https://{}/{}", west.addr(), token.name);
    let held: Vec<_> = (0..2)
        .map(|i| {
            let (url, ca) = (url.clone(), token.ca_pem.clone());
            let request = request_for(&token, &format!("site-{i}"));
            std::thread::spawn(move || Client::new().redeem_once(&url, &ca, &request))
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(15);
    while service.waiting.load(Ordering::SeqCst) < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(service.waiting.load(Ordering::SeqCst), 2);

    let mut third = TcpStream::connect(west.addr()).unwrap();
    assert!(closed_by_server(&mut third), "closed without a byte");
    west.wait_for_event("busy", |e| {
        matches!(
            e,
            ServerEvent::Busy {
                full: skupper_token_cli::admission::Full::Server { limit: 2 },
                ..
            }
        )
    });
    assert!(west
        .log_lines()
        .iter()
        .any(|l| l.contains("refused: 2 connections were open")));

    // A client that meets the full server retries, and gets through once
    // the held answers are sent.
    let releaser = {
        let service = service.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            *service.release.lock().unwrap() = true;
            service.released.notify_all();
        })
    };
    let client = Client::with_options(ClientOptions {
        retry_delays: vec![Duration::from_millis(300), Duration::from_millis(600)],
        ..ClientOptions::default()
    });
    let (status, _) =
        refused(client.redeem_claim(&url, &token.ca_pem, &request_for(&token, "east")));
    assert_eq!(status, 404, "answered by the held service");
    releaser.join().unwrap();
    for h in held {
        assert!(matches!(
            h.join().unwrap(),
            Err(TransportError::Refused { status: 404, .. })
        ));
    }
}

#[test]
fn shutdown_is_prompt_with_idle_clients_connected() {
    let mut west = West::start();
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(west.addr()).unwrap())
        .collect();
    let until = Instant::now() + Duration::from_secs(5);
    while west.server.as_ref().unwrap().open_connections() < 3 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let addr = west.addr();
    let started = Instant::now();
    west.server.take().unwrap().shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "nothing listens after shutdown"
    );
    drop(idle);
}

// ---------------------------------------------------------------------------
// Trust
// ---------------------------------------------------------------------------

#[test]
fn after_revoke_access_the_old_ca_is_refused_and_the_new_certificate_is_served() {
    let west = West::start();
    let old = west.claim(&TokenOptions::claim().uses(0));
    fast_client()
        .redeem_claim(&old.url, &old.ca_pem, &request_for(&old, "east"))
        .unwrap();

    west.site
        .revoke_access(west.now(), &mut OsRandom::new())
        .unwrap();

    // Same server, no restart: the next handshake presents the new
    // certificate, which the old CA does not vouch for.
    match fast_client().redeem_claim(&old.url, &old.ca_pem, &request_for(&old, "east")) {
        Err(TransportError::Handshake { reason }) => {
            assert!(reason.contains("not from the CA in the token"), "{reason}");
            assert!(reason.contains(&west.addr().to_string()), "{reason}");
        }
        other => panic!("expected a handshake failure, got {other:?}"),
    }
    // A new token (new CA) works.
    let new = west.claim(&TokenOptions::claim());
    assert_ne!(new.ca_pem, old.ca_pem);
    let cert = fast_client()
        .redeem_claim(&new.url, &new.ca_pem, &request_for(&new, "east"))
        .unwrap();
    assert_eq!(cert.ca_pem, new.ca_pem);
    // The old claim is gone even for a client that trusts the new CA.
    let (status, _) =
        refused(fast_client().redeem_claim(&old.url, &new.ca_pem, &request_for(&old, "east")));
    assert_eq!(status, 404);
}

#[test]
fn a_client_trusting_another_ca_fails_the_handshake() {
    let west = West::start();
    let token = west.claim(&TokenOptions::claim());
    let other = Site::create(
        MemoryStore::new(),
        &SiteConfig::new("north"),
        west.now(),
        &mut OsRandom::new(),
    )
    .unwrap();
    let other_ca = other.server_credentials().unwrap().unwrap().0;
    let result = fast_client().redeem_claim(&token.url, &other_ca, &request_for(&token, "east"));
    assert!(
        matches!(&result, Err(TransportError::Handshake { reason }) if reason.contains("not from the CA in the token")),
        "{result:?}"
    );
    assert!(west.answered().is_empty(), "no request reached the handler");
    west.wait_for_event("handshake failure", |e| {
        matches!(e, ServerEvent::Dropped { reason, .. } if reason.contains("the client refused this site's certificate"))
    });
}

#[test]
fn the_host_name_in_the_url_is_checked() {
    let west = West::start();
    let token = west.claim(&TokenOptions::claim());
    // West's certificate is for 127.0.0.1 only.
    let url = token.url.replace("127.0.0.1", "localhost");
    let result = fast_client().redeem_claim(&url, &token.ca_pem, &request_for(&token, "east"));
    match result {
        Err(TransportError::Handshake { reason }) => {
            assert!(reason.contains("not valid for \"localhost\""), "{reason}")
        }
        // `localhost` may not resolve to 127.0.0.1 on every machine.
        Err(TransportError::Unreachable { .. }) => {}
        other => panic!("expected a handshake failure, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Failures the client reports
// ---------------------------------------------------------------------------

#[test]
fn an_unreachable_server_is_named_and_retried() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let west = West::start();
    let token = west.claim(&TokenOptions::claim());
    let url = format!("https://127.0.0.1:{port}/{}", token.name);
    let started = Instant::now();
    match fast_client().redeem_claim(&url, &token.ca_pem, &request_for(&token, "east")) {
        Err(TransportError::Unreachable { reason }) => {
            assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
            assert!(reason.contains("(3 attempts)"), "{reason}");
            assert!(reason.to_lowercase().contains("refused"), "{reason}");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(60), "backed off");
}

/// A service with west's certificate whose redemptions fail with `error`,
/// counting calls.
struct Failing {
    site: Arc<WestSite>,
    error: RedeemError,
    calls: AtomicUsize,
}

impl ClaimService for Failing {
    fn server_certificate(&self) -> Result<CertifiedKey, String> {
        Ok(self.site.server_credentials().unwrap().unwrap().1)
    }
    fn redeem(&self, _request: &RedeemRequest) -> Result<CertToken, RedeemError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(self.error.clone())
    }
}

#[test]
fn a_503_is_retried_then_reported() {
    let base = West::start();
    let token = base.claim(&TokenOptions::claim());
    let service = Arc::new(Failing {
        site: base.site.clone(),
        error: RedeemError::Conflict {
            claim: token.name.clone(),
            attempts: 16,
        },
        calls: AtomicUsize::new(0),
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let west = West::serve(
        base.site.clone(),
        base.clock.clone(),
        listener,
        service.clone(),
        EndpointOptions::default(),
    );
    let url = format!("https://{}/{}", west.addr(), token.name);
    let (status, body) =
        refused(fast_client().redeem_claim(&url, &token.ca_pem, &request_for(&token, "east")));
    assert_eq!((status, body.as_str()), (503, "Internal error\n"));
    assert_eq!(service.calls.load(Ordering::SeqCst), 3);
}

#[test]
fn a_200_that_is_not_a_cert_token_is_a_protocol_error() {
    let west = West::start();
    let token = west.claim(&TokenOptions::claim());
    // A TLS server with west's certificate that answers nonsense.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server_key = west.site.server_credentials().unwrap().unwrap().1;
    let fake = std::thread::spawn(move || {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls_pki_types::CertificateDer::from(
                server_key.cert_der.clone(),
            )],
            rustls_pki_types::PrivateKeyDer::Pkcs8(server_key.key.pkcs8_der().to_vec().into()),
        )
        .unwrap();
        let (socket, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, socket);
        let mut buf = [0u8; 4096];
        let _ = tls.read(&mut buf);
        let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n");
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    let url = format!("https://{addr}/{}", token.name);
    let result = Client::new().redeem_once(&url, &token.ca_pem, &request_for(&token, "east"));
    fake.join().unwrap();
    match result {
        Err(TransportError::Protocol { reason }) => {
            assert!(
                reason.contains("answered 200 but not with a cert token"),
                "{reason}"
            )
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Other clients
// ---------------------------------------------------------------------------

/// Whether `tool` can run. Missing tools skip their test with a note,
/// unless `SKUPPER_TOKEN_REQUIRE_TOOLS` is set (as in CI): then they fail.
fn have(tool: &str) -> bool {
    let runs = |arg: &str| {
        Command::new(tool)
            .arg(arg)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let found = runs("--version") || runs("version");
    assert!(
        found || std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
        "`{tool}` is not on PATH but SKUPPER_TOKEN_REQUIRE_TOOLS is set: install {tool}"
    );
    found
}

#[test]
#[allow(clippy::print_stdout)] // the skip note
fn curl_redeems_a_claim() {
    if !have("curl") {
        println!("SKIPPED: curl is not installed (apt-get install -y curl)");
        return;
    }
    let west = West::start();
    let token = west.claim(&TokenOptions::claim());
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    let pw = dir.path().join("pw");
    std::fs::write(&ca, &token.ca_pem).unwrap();
    std::fs::write(&pw, token.password.expose()).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(&ca)
        .args(["-X", "POST", "--data-binary"])
        .arg(format!("@{}", pw.display()))
        .arg(format!("{}?site-version=1.9.6", token.url))
        .args(["-H", "skupper-site-name: curl-site", "-w", "\n%{http_code}"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = stdout.rsplit_once('\n').unwrap();
    assert_eq!(code, "200", "{stdout}");
    let cert = CertToken::decode(body.as_bytes()).unwrap();
    assert_eq!(common_name(&cert), "curl-site");
    assert_eq!(cert.issuer_site_id, west.site.id());

    // The same claim again: 404 with the reason, as curl shows it.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(&ca)
        .args(["--data-binary"])
        .arg(format!("@{}", pw.display()))
        .arg(format!("{}?site-version=1.9.6", token.url))
        .args(["-w", "%{http_code}"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "No such claim: no uses left (1 use allowed)\n404"
    );
}

#[test]
#[allow(clippy::print_stdout)] // the skip note
fn openssl_cannot_connect_with_tls_1_2_but_can_with_1_3() {
    if !have("openssl") {
        println!("SKIPPED: openssl is not installed");
        return;
    }
    let west = West::start();
    let s_client = |version: &str| {
        Command::new("openssl")
            .args(["s_client", "-connect", &west.addr().to_string(), version])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let tls12 = s_client("-tls1_2");
    assert!(
        !tls12.status.success(),
        "TLS 1.2 was accepted: {}",
        String::from_utf8_lossy(&tls12.stdout)
    );
    let tls13 = s_client("-tls1_3");
    let text = String::from_utf8_lossy(&tls13.stdout);
    assert!(tls13.status.success(), "TLS 1.3 failed: {text}");
    assert!(text.contains("TLSv1.3"), "{text}");
}
