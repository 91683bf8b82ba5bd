//! `token redeem` as a client of grant servers written here (rustls on
//! tokio, 127.0.0.1), each doing one thing a real server might: it sends
//! Skupper's request (POST of the code, `name` and `subject` headers) and
//! stores what a 200 returns; it trusts only the AccessToken's `spec.ca`,
//! speaks only TLS 1.3, follows no redirect, gives up on a server that
//! never answers, and prints the server's reason. Whatever fails leaves the
//! site as it was (no link, no Secret) and the token file untouched.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, SupportedProtocolVersion};
use skupper_token::pki::{CaIssuer, CertifiedKey, DEFAULT_VALIDITY};
use skupper_token::site::{Site, SiteConfig};
use skupper_token::store::MemoryStore;
use skupper_token::v2::{AccessCode, AccessToken};
use skupper_token_cli::os_random::OsRandom;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

mod common;

use common::{Home, Out};

const GRANT: &str = "3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
const CODE: &str = "Abcdefghijklmnopqrstuvw0";

/// What the test server does with a connection.
#[derive(Clone)]
enum Behaviour {
    /// Reads the request and answers `response` (the whole HTTP/1.1
    /// message).
    Answer(String),
    /// Completes the TLS handshake, reads the request, never answers.
    Silent,
    /// Accepts the TCP connection and never says anything.
    SilentTcp,
}

/// A grant server on 127.0.0.1 that keeps every request it read.
struct TestServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A CA and a server certificate from it for 127.0.0.1.
fn ca_and_server() -> (CaIssuer, CertifiedKey) {
    let mut rng = OsRandom::new();
    let ca = CaIssuer::new_site_ca(&mut rng, now(), DEFAULT_VALIDITY).unwrap();
    let server = ca
        .issue_server(&["127.0.0.1".into()], &mut rng, now(), DEFAULT_VALIDITY)
        .unwrap();
    (ca, server)
}

fn tls(cert: &CertifiedKey, versions: &[&'static SupportedProtocolVersion]) -> Arc<ServerConfig> {
    let chain = vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(cert.key.to_pem().as_bytes()).unwrap();
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    Arc::new(config)
}

/// Reads one HTTP/1.1 request (head and `content-length` body).
async fn read_request<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

impl TestServer {
    fn start(config: Option<Arc<ServerConfig>>, behaviour: Behaviour) -> TestServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = requests.clone();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (config, behaviour, kept) = (config.clone(), behaviour.clone(), kept.clone());
                tokio::spawn(async move {
                    let mut tcp = tcp;
                    let config = match (&behaviour, config) {
                        (Behaviour::SilentTcp, _) | (_, None) => {
                            // Hold the connection open, say nothing.
                            let mut sink = [0u8; 1024];
                            while tcp.read(&mut sink).await.unwrap_or(0) > 0 {}
                            return;
                        }
                        (_, Some(config)) => config,
                    };
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    let Ok(mut stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let request = read_request(&mut stream).await;
                    kept.lock().unwrap().push(request);
                    match behaviour {
                        Behaviour::Answer(response) => {
                            let _ = stream.write_all(response.as_bytes()).await;
                            let _ = stream.shutdown().await;
                        }
                        Behaviour::Silent => {
                            let mut sink = [0u8; 1024];
                            while stream.read(&mut sink).await.unwrap_or(0) > 0 {}
                        }
                        Behaviour::SilentTcp => unreachable!(),
                    }
                });
            }
        });
        TestServer {
            port,
            requests,
            _runtime: runtime,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/{GRANT}", self.port)
    }
}

/// An HTTP/1.1 answer.
fn response(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{headers}connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Writes an AccessToken for `url` trusting `ca_pem` into `home`.
fn access_token(home: &Home, url: &str, ca_pem: &str, link_cost: u32) -> PathBuf {
    let token = AccessToken {
        name: "to-test-server".into(),
        ca_pem: ca_pem.into(),
        code: AccessCode::new(CODE),
        link_cost,
        url: url.into(),
    };
    let path = home.file("token.yaml");
    std::fs::write(&path, token.encode()).unwrap();
    path
}

/// Every file under `dir` and its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.file_name().is_some_and(|n| n != ".lock") {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// `token redeem` of an AccessToken for `server` (trusting `ca_pem`) on a
/// fresh site: the outcome, having checked that it left the site's files
/// and the token file as they were and stored no link.
fn redeem_fails(server: &TestServer, ca_pem: &str) -> Out {
    let home = Home::new();
    home.init("east");
    let token = access_token(&home, &server.url(), ca_pem, 0);
    let token_before = std::fs::read(&token).unwrap();
    let site_before = files(&home.site_dir("east"));
    let out = home.run("east", &["token", "redeem", token.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out}");
    assert_eq!(std::fs::read(&token).unwrap(), token_before, "token file");
    assert_eq!(files(&home.site_dir("east")), site_before, "{out}");
    let links = home.ok("east", &["-o", "json", "link", "status"]).json();
    assert_eq!(links["outgoing"], serde_json::json!([]), "{links}");
    out
}

/// The only line of standard error that says what failed.
fn error_line(out: &Out) -> &str {
    out.stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{out}"))
}

#[test]
fn a_200_is_stored_after_skuppers_request() {
    let (ca, server_cert) = ca_and_server();
    // The Link file comes from a site whose CA is not the grant server's
    // (Skupper's grant server has a CA of its own).
    let remote = Site::create(
        MemoryStore::new(),
        &SiteConfig::new("west").hosts(["127.0.0.1"]),
        now(),
        &mut OsRandom::new(),
    )
    .unwrap();
    let file = remote
        .generate_link_file("to-test-server", 1, None, now(), &mut OsRandom::new())
        .unwrap();
    let server = TestServer::start(
        Some(tls(&server_cert, &[&rustls::version::TLS13])),
        Behaviour::Answer(response("200 OK", "", &file.encode_grant_response())),
    );
    let home = Home::new();
    home.init("east");
    let east_id = home.site_id("east");
    let token = access_token(&home, &server.url(), ca.ca_pem(), 4);
    let out = home.ok("east", &["token", "redeem", token.to_str().unwrap()]);
    assert_eq!(
        out.stdout.trim_end(),
        format!("Site configured to link to {} (name=link1)\nCheck the status of the link using 'skupper-token link status'.", server.url())
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let (head, body) = requests[0].split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with(&format!("POST /{GRANT} HTTP/1.1\r\n")),
        "{head}"
    );
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\nname: to-test-server\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nsubject: {east_id}\r\n")),
        "{head}"
    );
    assert_eq!(body, CODE);
    let link = home
        .ok("east", &["-o", "json", "link", "status", "link1"])
        .json();
    // The AccessToken's linkCost overrides the Link's cost.
    assert_eq!(link["cost"], 4, "{link}");
    assert_eq!(link["state"], "connecting", "{link}");
}

#[test]
fn a_server_certificate_from_another_ca_is_refused_before_the_code_is_sent() {
    let (_, server_cert) = ca_and_server();
    let (other_ca, _) = ca_and_server();
    let server = TestServer::start(
        Some(tls(&server_cert, &[&rustls::version::TLS13])),
        Behaviour::Answer(response("200 OK", "", "")),
    );
    let out = redeem_fails(&server, other_ca.ca_pem());
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        error_line(&out),
        format!("error: the AccessToken of link \"link1\" was not redeemed: TLS handshake with 127.0.0.1:{} failed: the server's certificate is not from the CA in the token (invalid peer certificate: BadSignature): the site may have revoked access since the token was made (ask for a new token), or 127.0.0.1:{} is not the site that issued it", server.port, server.port)
    );
    assert_eq!(server.requests(), Vec::<String>::new());
}

/// A TLS 1.2-only server: `openssl s_server -tls1_2` (this crate's rustls
/// is built without TLS 1.2).
#[test]
fn a_server_that_speaks_only_tls_1_2_is_refused() {
    let found = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
            "`openssl` is not on PATH but SKUPPER_TOKEN_REQUIRE_TOOLS is set: install openssl"
        );
        return;
    }
    let (ca, server_cert) = ca_and_server();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), &server_cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), server_cert.key.to_pem()).unwrap();
    let port = common::free_port();
    let mut s_server = std::process::Command::new("openssl")
        .current_dir(dir.path())
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
        .args(["-cert", "tls.crt", "-key", "tls.key", "-tls1_2", "-www"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "s_server did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let home = Home::new();
    home.init("east");
    let url = format!("https://127.0.0.1:{port}/{GRANT}");
    let token = access_token(&home, &url, ca.ca_pem(), 0);
    let out = home.run("east", &["token", "redeem", token.to_str().unwrap()]);
    let _ = s_server.kill();
    let _ = s_server.wait();
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        error_line(&out),
        format!("error: the AccessToken of link \"link1\" was not redeemed: TLS handshake with 127.0.0.1:{port} failed: the server does not speak TLS 1.3, which redemption requires (received fatal alert: ProtocolVersion)")
    );
    let links = home.ok("east", &["-o", "json", "link", "status"]).json();
    assert_eq!(links["outgoing"], serde_json::json!([]), "{links}");
}

#[test]
fn a_redirect_is_not_followed_and_is_an_error_naming_its_status() {
    let (ca, server_cert) = ca_and_server();
    let elsewhere = format!("https://127.0.0.1:1/{GRANT}");
    let server = TestServer::start(
        Some(tls(&server_cert, &[&rustls::version::TLS13])),
        Behaviour::Answer(response(
            "307 Temporary Redirect",
            &format!("location: {elsewhere}\r\n"),
            "",
        )),
    );
    let out = redeem_fails(&server, ca.ca_pem());
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        error_line(&out),
        // Skupper's words, with its space before the (empty) body.
        "error: the AccessToken of link \"link1\" was not redeemed: Controller got failed response: 307 (Temporary Redirect) "
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn the_servers_reason_is_printed() {
    let (ca, server_cert) = ca_and_server();
    let server = TestServer::start(
        Some(tls(&server_cert, &[&rustls::version::TLS13])),
        Behaviour::Answer(response(
            "403 Forbidden",
            "",
            "Redemption of access token refused\n",
        )),
    );
    let out = redeem_fails(&server, ca.ca_pem());
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        error_line(&out),
        "error: the AccessToken of link \"link1\" was not redeemed: Controller got failed response: 403 (Forbidden) Redemption of access token refused"
    );
    // A refusal is final: one request.
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_server_that_never_answers_the_request_times_out() {
    let (ca, server_cert) = ca_and_server();
    let server = TestServer::start(
        Some(tls(&server_cert, &[&rustls::version::TLS13])),
        Behaviour::Silent,
    );
    let out = redeem_fails(&server, ca.ca_pem());
    assert_eq!(out.code, 4, "{out}");
    assert_eq!(
        error_line(&out),
        format!("error: the AccessToken of link \"link1\" was not redeemed: no answer from 127.0.0.1:{} within 10s", server.port)
    );
    // The request reached the server: it is not sent again.
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_server_that_accepts_and_never_says_anything_times_out() {
    let (ca, _) = ca_and_server();
    let server = TestServer::start(None, Behaviour::SilentTcp);
    let out = redeem_fails(&server, ca.ca_pem());
    assert_eq!(out.code, 4, "{out}");
    assert_eq!(
        error_line(&out),
        format!("error: the AccessToken of link \"link1\" was not redeemed: no answer from 127.0.0.1:{} within 10s", server.port)
    );
}
