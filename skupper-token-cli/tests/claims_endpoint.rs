//! The claims endpoint on hyper, over real TLS on 127.0.0.1: `curl` redeems
//! over HTTP/1.1 and HTTP/2, this crate's client redeems while slow and
//! idle connections hold the port, the per-address cap closes the oldest
//! connection that is not answering (an idle keep-alive one too), an
//! HTTP/2 connection that sends no request is closed by the head deadline,
//! and a redemption that blocks does not stall the runtime.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr
)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skupper_token::claim::{RedeemError, RedeemRequest};
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::token::{ClaimToken, Token};
use skupper_token_cli::os_random::OsRandom;
use skupper_token_cli::runtime::claims::{
    serve, ClaimService, ClaimsEndpoint, EndpointOptions, ServerEvent, Shutdown, SiteClaims,
};
use skupper_token_cli::runtime::redeem::RedeemClient;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};

struct West {
    site: Arc<Site<MemoryStore>>,
    addr: SocketAddr,
    stop: Shutdown,
    events: Arc<Mutex<Vec<ServerEvent>>>,
    server: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
}

async fn west(options: EndpointOptions) -> West {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let now = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let site = Arc::new(
        Site::create(
            MemoryStore::new(),
            &SiteConfig::new("west")
                .hosts(["127.0.0.1"])
                .ports(addr.port(), 55671, 45671),
            now,
            &mut OsRandom::new(),
        )
        .unwrap(),
    );
    let endpoint = ClaimsEndpoint::new(Arc::new(SiteClaims::new(site.clone())), options);
    let (stop, watch) = Shutdown::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let events = events.clone();
        Arc::new(move |e: &ServerEvent| events.lock().unwrap().push(e.clone()))
    };
    let server = tokio::spawn(serve(listener, endpoint, watch, sink));
    West {
        site,
        addr,
        stop,
        events,
        server,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl West {
    fn claim(&self, uses: u32) -> ClaimToken {
        let token = self
            .site
            .create_token(
                &TokenOptions::claim().uses(uses),
                OffsetDateTime::now_utc(),
                &mut OsRandom::new(),
            )
            .unwrap();
        match token {
            Token::Claim(c) => c,
            Token::Cert(_) => panic!("a claim token"),
        }
    }

    /// Redeems with curl; returns (HTTP version, status, body).
    fn curl(&self, claim: &ClaimToken, http: &str) -> (String, u16, String) {
        let ca = self.dir.path().join("ca.crt");
        std::fs::write(&ca, &claim.ca_pem).unwrap();
        let password = self.dir.path().join("password");
        std::fs::File::create(&password)
            .unwrap()
            .write_all(claim.password.expose().as_bytes())
            .unwrap();
        let out = Command::new("curl")
            .args(["-sS", http, "--cacert"])
            .arg(&ca)
            .args([
                "-H",
                "skupper-site-name: 5d3c8f0e-1a2b-4c3d-9e8f-0a1b2c3d4e5f",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", password.display()))
            .args(["-w", "\n%{http_version} %{http_code}"])
            .arg(format!("{}?site-version=1.9.6", claim.url))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, last) = text.rsplit_once('\n').expect("curl's -w line");
        let (version, status) = last.split_once(' ').unwrap();
        (version.to_owned(), status.parse().unwrap(), body.to_owned())
    }
}

fn have_curl() -> bool {
    let ok = Command::new("curl").arg("--version").output().is_ok();
    if !ok {
        assert!(
            std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
            "curl is required"
        );
        eprintln!("skipped: curl not installed");
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_redeems_over_http1_and_http2() {
    if !have_curl() {
        return;
    }
    let west = west(EndpointOptions::default()).await;
    let claim = west.claim(2);
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let (got, status, body) = {
            let west = &west;
            let claim = claim.clone();
            tokio::task::block_in_place(|| west.curl(&claim, flag))
        };
        assert_eq!((got.as_str(), status), (version, 200), "{body}");
        let token = Token::decode(body.as_bytes()).expect("a cert token");
        assert_eq!(token.issuer_site_id(), west.site.id());
    }
    // Two uses: the third is refused with Skupper's status and our reason.
    let (_, status, body) = tokio::task::block_in_place(|| west.curl(&claim, "--http2"));
    assert_eq!(status, 404);
    assert!(body.starts_with("No such claim"), "{body}");
    west.stop.shutdown();
    west.server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_keep_out_an_honest_one() {
    let options = EndpointOptions {
        handshake_timeout: Duration::from_millis(500),
        head_timeout: Duration::from_millis(500),
        max_connections: 1000,
        max_pending_per_address: 1000,
        ..EndpointOptions::default()
    };
    let west = west(options).await;
    // 100 connections that never finish a TLS handshake.
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(west.addr).await.unwrap());
    }
    let claim = west.claim(1);
    let site_id = "5d3c8f0e-1a2b-4c3d-9e8f-0a1b2c3d4e5f".to_owned();
    let redeemed = RedeemClient::default()
        .redeem(&claim.url, &claim.ca_pem, &request_for(&claim, &site_id))
        .await;
    assert!(redeemed.is_ok(), "{redeemed:?}");
    // The idle ones are cut off after the handshake deadline.
    for mut s in idle {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("closed by the server")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    let events = west.events.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| matches!(
            e,
            ServerEvent::Dropped { reason, .. } if reason == "the TLS handshake did not finish within 500ms"
        )),
        "{events:#?}"
    );
    west.stop.shutdown();
    west.server.await.unwrap();
}

/// One redemption through the hyper client, from a thread outside any
/// runtime (it runs one of its own).
fn redeem_blocking(
    url: &str,
    ca_pem: &str,
    request: &RedeemRequest,
) -> Result<skupper_token::token::CertToken, skupper_token::transport::TransportError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(RedeemClient::default().redeem(url, ca_pem, request))
}

fn request_for(claim: &ClaimToken, site_id: &str) -> RedeemRequest {
    RedeemRequest {
        claim: claim.name.clone(),
        password: claim.password.expose().as_bytes().to_vec(),
        site_id: site_id.to_owned(),
        site_version: "1.9.6".into(),
    }
}

/// Reads until the server closes `socket` (bounded): whether it did.
async fn closed_by_server(socket: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Whether `socket` is still open: nothing to read, and not closed.
async fn still_open(socket: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    tokio::time::timeout(Duration::from_millis(300), socket.read(&mut buf))
        .await
        .is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_per_address_cap_the_oldest_pending_connection_makes_room() {
    let options = EndpointOptions {
        max_pending_per_address: 3,
        handshake_timeout: Duration::from_secs(30),
        ..EndpointOptions::default()
    };
    let west = west(options).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(west.addr).await.unwrap());
        // Accepted in this order.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut newest = TcpStream::connect(west.addr).await.unwrap();
    assert!(
        closed_by_server(&mut held[0]).await,
        "the oldest is closed to make room"
    );
    for socket in held.iter_mut().skip(1) {
        assert!(still_open(socket).await, "the others stay open");
    }
    assert!(still_open(&mut newest).await, "the new one is served");
    let events = west.events.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| matches!(
            e,
            ServerEvent::Dropped { reason, .. } if reason == "closed to make room for a newer connection: 3 connections from the same address had not finished their handshake or request"
        )),
        "{events:#?}"
    );
    west.stop.shutdown();
    west.server.await.unwrap();
}

/// A rustls client connection to west, trusting its CA, over `alpn`.
async fn tls_to(west: &West, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let ca = west.site.server_credentials().unwrap().unwrap().0;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(
            skupper_token::pki::pem_to_der(&ca).unwrap(),
        ))
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tcp = TcpStream::connect(west.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// An HTTP/1.1 keep-alive connection waiting for its next request is
/// pending again: it makes room for new connections like one that never
/// sent a request, and is closed by the head deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_makes_room_and_times_out() {
    use tokio::io::AsyncWriteExt as _;
    let options = EndpointOptions {
        max_pending_per_address: 2,
        handshake_timeout: Duration::from_secs(30),
        head_timeout: Duration::from_secs(30),
        ..EndpointOptions::default()
    };
    let west = west(options).await;
    let ask = b"GET /c HTTP/1.1\r\nHost: west\r\n\r\n";
    let mut kept = tls_to(&west, b"http/1.1").await;
    kept.write_all(ask).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = kept.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    assert!(
        !answer.contains("connection: close"),
        "kept alive: {answer}"
    );
    // Two new connections from the same address: the idle keep-alive one
    // is the oldest pending, and goes.
    let _first = TcpStream::connect(west.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _second = TcpStream::connect(west.addr).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), kept.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the idle keep-alive connection was closed");
    let events = west.events.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| matches!(
            e,
            ServerEvent::Dropped { reason, .. } if reason.starts_with("closed to make room for a newer connection: 2 connections")
        )),
        "{events:#?}"
    );
    west.stop.shutdown();
    west.server.await.unwrap();

    // And alone, it is closed once idle for the head deadline, quietly:
    // it had its answer.
    let west = west_with_head_timeout(Duration::from_millis(300)).await;
    let mut kept = tls_to(&west, b"http/1.1").await;
    kept.write_all(ask).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), kept.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "closed after the head deadline");
    assert!(String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 405 "));
    let events = west.events.lock().unwrap().clone();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ServerEvent::Dropped { .. })),
        "{events:#?}"
    );
    west.stop.shutdown();
    west.server.await.unwrap();
}

async fn west_with_head_timeout(head_timeout: Duration) -> West {
    west(EndpointOptions {
        head_timeout,
        ..EndpointOptions::default()
    })
    .await
}

/// HTTP/2 has no request head to time out in hyper: the server's own
/// deadline closes a connection that opens and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_without_a_request_is_closed_by_the_head_deadline() {
    let west = west_with_head_timeout(Duration::from_millis(300)).await;
    let tls = tls_to(&west, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (_sender, conn) =
        hyper::client::conn::http2::handshake::<_, _, http_body_util::Full<bytes::Bytes>>(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the server closed the HTTP/2 connection");
    let events = west.events.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| matches!(
            e,
            ServerEvent::Dropped { reason, .. } if reason == "no complete request head within 300ms of the handshake"
        )),
        "{events:#?}"
    );
    west.stop.shutdown();
    west.server.await.unwrap();
}

/// A claim service whose first redemption blocks its thread until
/// released; the others are refused at once.
struct Blocking {
    site: Arc<Site<MemoryStore>>,
    state: std::sync::Mutex<(usize, bool)>,
    changed: std::sync::Condvar,
}

impl ClaimService for Blocking {
    fn server_certificate(&self) -> Result<skupper_token::pki::CertifiedKey, String> {
        Ok(self.site.server_credentials().unwrap().unwrap().1)
    }
    fn redeem(
        &self,
        request: &RedeemRequest,
    ) -> Result<skupper_token::token::CertToken, RedeemError> {
        let mut state = self.state.lock().unwrap();
        state.0 += 1;
        self.changed.notify_all();
        if state.0 > 1 {
            // Only the first one is held.
            return Err(RedeemError::WrongPassword {
                claim: request.claim.clone(),
            });
        }
        let (state, _) = self
            .changed
            .wait_timeout_while(state, Duration::from_secs(20), |s| !s.1)
            .unwrap();
        drop(state);
        Err(RedeemError::NoSuchClaim {
            claim: request.claim.clone(),
        })
    }
}

/// With one worker thread, a redemption that blocks its thread (a slow
/// disk) does not stop the server: it runs on the blocking pool, and
/// another request is answered meanwhile.
#[test]
fn a_blocked_redemption_does_not_stall_the_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let west = rt.block_on(west(EndpointOptions::default()));
    let service = Arc::new(Blocking {
        site: west.site.clone(),
        state: std::sync::Mutex::new((0, false)),
        changed: std::sync::Condvar::new(),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let (stop, watch) = Shutdown::new();
    let server = {
        let _rt = rt.enter();
        let listener = TcpListener::from_std(listener).unwrap();
        let endpoint = ClaimsEndpoint::new(service.clone(), EndpointOptions::default());
        rt.spawn(serve(
            listener,
            endpoint,
            watch,
            Arc::new(|_: &ServerEvent| {}),
        ))
    };
    let claim = west.claim(1);
    let url = format!("https://{addr}/{}", claim.name);
    let held = {
        let (url, ca, request) = (
            url.clone(),
            claim.ca_pem.clone(),
            request_for(&claim, "east"),
        );
        std::thread::spawn(move || redeem_blocking(&url, &ca, &request))
    };
    {
        let state = service.state.lock().unwrap();
        let (state, _) = service
            .changed
            .wait_timeout_while(state, Duration::from_secs(20), |s| s.0 == 0)
            .unwrap();
        assert_eq!(state.0, 1, "the redemption started");
    }
    // The redemption holds its thread; a second request is answered.
    let answer = redeem_blocking(&url, &claim.ca_pem, &request_for(&claim, "north"));
    assert!(
        matches!(
            &answer,
            Err(skupper_token::transport::TransportError::Refused { status: 403, .. })
        ),
        "{answer:?}"
    );
    assert!(
        !service.state.lock().unwrap().1,
        "answered while the redemption was held"
    );
    service.state.lock().unwrap().1 = true;
    service.changed.notify_all();
    assert!(matches!(
        held.join().unwrap(),
        Err(skupper_token::transport::TransportError::Refused { status: 404, .. })
    ));
    stop.shutdown();
    rt.block_on(server).unwrap();
    west.stop.shutdown();
    rt.block_on(west.server).unwrap();
}

/// A client that closes its sending side once its request is out (as
/// `printf ... | openssl s_client` does) still gets the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    use tokio::io::AsyncWriteExt as _;
    let west = west(EndpointOptions::default()).await;
    let mut tls = tls_to(&west, b"http/1.1").await;
    tls.write_all(b"GET /c HTTP/1.1\r\nHost: west\r\n\r\n")
        .await
        .unwrap();
    tls.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer))
        .await
        .expect("answered and closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer:?}");
    assert!(answer.ends_with("Only POST is supported\n"), "{answer:?}");
    west.stop.shutdown();
    west.server.await.unwrap();
}

/// The head deadline is for connections with no request running: a
/// redemption that takes longer than it still gets its answer.
#[test]
fn a_redemption_longer_than_the_head_deadline_is_answered() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let options = EndpointOptions {
        head_timeout: Duration::from_millis(200),
        ..EndpointOptions::default()
    };
    let west = rt.block_on(west(options));
    let service = Arc::new(Blocking {
        site: west.site.clone(),
        state: std::sync::Mutex::new((0, false)),
        changed: std::sync::Condvar::new(),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let (stop, watch) = Shutdown::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let server = {
        let _rt = rt.enter();
        let listener = TcpListener::from_std(listener).unwrap();
        let endpoint = ClaimsEndpoint::new(service.clone(), options);
        let events = events.clone();
        let sink = Arc::new(move |e: &ServerEvent| events.lock().unwrap().push(e.clone()));
        rt.spawn(serve(listener, endpoint, watch, sink))
    };
    let claim = west.claim(1);
    let url = format!("https://{addr}/{}", claim.name);
    let held = {
        let (url, ca, request) = (url, claim.ca_pem.clone(), request_for(&claim, "east"));
        std::thread::spawn(move || redeem_blocking(&url, &ca, &request))
    };
    {
        let state = service.state.lock().unwrap();
        let (state, _) = service
            .changed
            .wait_timeout_while(state, Duration::from_secs(20), |s| s.0 == 0)
            .unwrap();
        assert_eq!(state.0, 1, "the redemption started");
    }
    // Five head deadlines pass while it runs.
    std::thread::sleep(Duration::from_secs(1));
    service.state.lock().unwrap().1 = true;
    service.changed.notify_all();
    let answer = held.join().unwrap();
    assert!(
        matches!(
            &answer,
            Err(skupper_token::transport::TransportError::Refused { status: 404, .. })
        ),
        "{answer:?}"
    );
    let events = events.lock().unwrap().clone();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ServerEvent::Dropped { .. })),
        "{events:#?}"
    );
    stop.shutdown();
    rt.block_on(server).unwrap();
    west.stop.shutdown();
    rt.block_on(west.server).unwrap();
}
