//! The claims endpoint on hyper, over real TLS on 127.0.0.1: `curl` redeems
//! over HTTP/1.1 and HTTP/2, this crate's client redeems while slow and
//! idle connections hold the port, and the per-address cap closes the
//! connections over it.
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

use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::token::{ClaimToken, Token};
use skupper_token_cli::https::SiteClaims;
use skupper_token_cli::os_random::OsRandom;
use skupper_token_cli::runtime::claims::{
    serve, ClaimsEndpoint, ConnectionEvent, EndpointOptions, Shutdown,
};
use skupper_token_cli::runtime::redeem::RedeemClient;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};

struct West {
    site: Arc<Site<MemoryStore>>,
    addr: SocketAddr,
    stop: Shutdown,
    events: Arc<Mutex<Vec<ConnectionEvent>>>,
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
        Arc::new(move |e: &ConnectionEvent| events.lock().unwrap().push(e.clone()))
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
        max_connections_per_address: 1000,
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
        .redeem(
            &claim.url,
            &claim.ca_pem,
            &skupper_token::claim::RedeemRequest {
                claim: claim.name.clone(),
                password: claim.password.expose().as_bytes().to_vec(),
                site_id,
                site_version: "1.9.6".into(),
            },
        )
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
    assert!(west.events.lock().unwrap().iter().any(|e| matches!(
        e,
        ConnectionEvent::HandshakeFailed { reason, .. } if reason.starts_with("no handshake within")
    )));
    west.stop.shutdown();
    west.server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_cap_are_closed_at_once() {
    let options = EndpointOptions {
        max_connections_per_address: 3,
        handshake_timeout: Duration::from_secs(30),
        ..EndpointOptions::default()
    };
    let west = west(options).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(west.addr).await.unwrap());
    }
    let mut extra = TcpStream::connect(west.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buf))
        .await
        .expect("the extra connection is closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(west
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, ConnectionEvent::TooManyFromAddress { limit: 3, .. })));
    // The held ones are still open: reading them times out.
    match tokio::time::timeout(Duration::from_millis(300), held[0].read(&mut buf)).await {
        Err(_elapsed) => {} // nothing to read and not closed: still open
        Ok(read) => panic!("the first three stay open, but the first read {read:?}"),
    }
    west.stop.shutdown();
    west.server.await.unwrap();
}
