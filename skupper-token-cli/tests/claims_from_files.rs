//! The claims server as `serve` runs it: a site kept in a real directory
//! (`FileStore`, durable writes, cross-process compare-and-swap) behind
//! the claims server (`runtime::claims::serve`) on 127.0.0.1, with the ring
//! key backend. Many clients at
//! once on one many-use claim, several handles on one site directory (as
//! several processes), and requests whose claim name or site id no claim
//! or certificate can have.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use skupper_token::claim::RedeemRequest;
use skupper_token::pki::pem_to_der;
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::token::{CertToken, ClaimToken};
use skupper_token::transport::TransportError;
use skupper_token::version::VERSION;
use skupper_token_cli::file_store::FileStore;
use skupper_token_cli::https::response::{parse_response, ParsedResponse};
use skupper_token_cli::https::ClientOptions;
use skupper_token_cli::os_random::{OsRandom, RingKeys};
use skupper_token_cli::runtime::claims::{ClaimService, EndpointOptions, ServerEvent, SiteClaims};
use skupper_token_cli::runtime::redeem::RedeemClient;
use time::OffsetDateTime;

mod claims_server;
use claims_server::Server;

const CLIENTS: usize = 16;

type FileSite = Site<FileStore>;

/// Opens a handle on the site in `dir`, as a `serve` process does.
fn open(dir: &Path) -> FileSite {
    Site::open(FileStore::open(dir).expect("open store"))
        .expect("open site")
        .with_key_backend(RingKeys::shared())
}

/// West, kept in a temporary directory, serving its claims over HTTPS.
struct West {
    dir: tempfile::TempDir,
    site: Arc<FileSite>,
    events: Arc<Mutex<Vec<ServerEvent>>>,
    server: Server,
}

impl West {
    fn start() -> West {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        Site::create(
            FileStore::open(dir.path()).expect("store"),
            &SiteConfig::new("west")
                .hosts(["127.0.0.1"])
                .ports(port, 55671, 45671),
            OffsetDateTime::now_utc(),
            &mut OsRandom::new(),
        )
        .expect("create site");
        let site = Arc::new(open(dir.path()));
        let events = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let events = events.clone();
            Server::start(
                listener,
                Arc::new(SiteClaims::new(site.clone())),
                EndpointOptions::default(),
                move |e| events.lock().unwrap().push(e.clone()),
            )
        };
        West {
            dir,
            site,
            events,
            server,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    fn claim(&self, uses: u32) -> ClaimToken {
        self.site
            .create_claim_token(
                &TokenOptions::claim().uses(uses),
                OffsetDateTime::now_utc(),
                &mut OsRandom::new(),
            )
            .expect("claim token")
    }

    /// (uses remaining, claims made) of the one claim, read from the files.
    fn counts(&self) -> (Option<u32>, u32) {
        let claims = open(self.dir.path()).claims().expect("claims");
        assert_eq!(claims.len(), 1);
        (claims[0].uses_remaining, claims[0].claims_made)
    }

    fn statuses(&self) -> Vec<u16> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Answered { status, .. } => Some(*status),
                _ => None,
            })
            .collect()
    }
}

fn request_for(token: &ClaimToken, site_id: &str) -> RedeemRequest {
    RedeemRequest {
        claim: token.name.clone(),
        password: token.password.expose().as_bytes().to_vec(),
        site_id: site_id.to_owned(),
        site_version: VERSION.to_owned(),
    }
}

/// The hyper redemption client ([`RedeemClient`]), called from these
/// synchronous tests on a runtime of its own.
#[derive(Debug, Clone)]
struct Client(RedeemClient);

impl Client {
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
}

/// A client that never retries: every 503 the server answers is seen.
fn no_retry_client() -> Client {
    Client::with_options(ClientOptions {
        retry_delays: Vec::new(),
        ..ClientOptions::default()
    })
}

/// Sends `bytes` over TLS 1.3 (trusting `ca_pem`) and reads the answer.
fn raw_exchange(addr: SocketAddr, ca_pem: &str, bytes: &[u8]) -> ParsedResponse {
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
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, socket);
    tls.write_all(bytes).unwrap();
    tls.flush().unwrap();
    let mut answer = Vec::new();
    match tls.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("reading the answer: {e} (after {} bytes)", answer.len()),
    }
    parse_response(&answer, 16 * 1024, 1 << 20, true).unwrap()
}

fn body(r: &ParsedResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Runs `CLIENTS` threads, released together, each calling `redeem`
/// `rounds` times as its own site; returns every failure.
fn race<E: std::fmt::Debug + Send>(
    rounds: usize,
    redeem: impl Fn(usize, &str) -> Result<CertToken, E> + Sync,
) -> Vec<String> {
    let barrier = Barrier::new(CLIENTS);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (barrier, redeem) = (&barrier, &redeem);
                s.spawn(move || {
                    let site_id = format!("site-{client:02}");
                    barrier.wait();
                    (0..rounds)
                        .filter_map(|round| match redeem(client, &site_id) {
                            Ok(cert) => {
                                assert_eq!(cert.name, site_id);
                                None
                            }
                            Err(e) => Some(format!("{site_id} round {round}: {e:?}")),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("client thread panicked"))
            .collect()
    })
}

/// 16 real HTTPS clients redeem one many-use claim at once, over and over:
/// every redemption succeeds (none is answered 503), and the claim counts
/// exactly the uses spent.
#[test]
fn sixteen_https_clients_redeem_one_claim_without_a_failure() {
    const ROUNDS: usize = 8;
    let west = West::start();
    let uses = (CLIENTS * ROUNDS) as u32 + 3;
    let token = west.claim(uses);
    let client = no_retry_client();
    let failures = race(ROUNDS, |_, site_id| {
        client.redeem_claim(&token.url, &token.ca_pem, &request_for(&token, site_id))
    });
    assert_eq!(failures, Vec::<String>::new());
    assert_eq!(west.counts(), (Some(3), (CLIENTS * ROUNDS) as u32));
    assert_eq!(west.site.issued().unwrap().len(), CLIENTS * ROUNDS);
    let statuses = west.statuses();
    assert_eq!(statuses.len(), CLIENTS * ROUNDS);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}

/// The same through one site handle, without HTTPS or any retry: the
/// core's redemptions of one claim take turns, so none gives up.
#[test]
fn redemptions_through_one_handle_take_turns_instead_of_failing() {
    const ROUNDS: usize = 25;
    let west = West::start();
    let uses = (CLIENTS * ROUNDS) as u32;
    let token = west.claim(uses);
    let failures = race(ROUNDS, |_, site_id| {
        west.site.redeem_claim(
            &request_for(&token, site_id),
            OffsetDateTime::now_utc(),
            &mut OsRandom::new(),
        )
    });
    assert_eq!(failures, Vec::<String>::new());
    assert_eq!(west.counts(), (Some(0), uses));
}

/// Every client redeems through its own handle on the site directory, as
/// separate processes would: their compare-and-swaps conflict, and the
/// claims server's handler retries a conflict after a pause instead of
/// answering 503.
#[test]
fn handles_on_one_site_directory_retry_conflicts() {
    const ROUNDS: usize = 20;
    let west = West::start();
    let uses = (CLIENTS * ROUNDS) as u32;
    let token = west.claim(uses);
    let services: Vec<SiteClaims<FileStore>> = (0..CLIENTS)
        .map(|_| SiteClaims::new(Arc::new(open(west.dir.path()))))
        .collect();
    let failures = race(ROUNDS, |client, site_id| {
        services[client].redeem(&request_for(&token, site_id))
    });
    assert_eq!(failures, Vec::<String>::new());
    assert_eq!(west.counts(), (Some(0), uses));
    assert_eq!(west.site.issued().unwrap().len(), uses as usize);
}

/// `POST /..`: a claim name no claim can have (and no file can be named)
/// is an unknown claim, not an internal error.
#[test]
fn a_claim_name_that_is_no_record_name_is_404() {
    let west = West::start();
    let token = west.claim(1);
    for target in ["/..", "/%2e%2e", "/.", "/a%00b"] {
        let request = format!(
            "POST {target}?site-version={VERSION} HTTP/1.1\r\nHost: 127.0.0.1\r\nskupper-site-name: east\r\nConnection: close\r\nContent-Length: 24\r\n\r\n{}",
            token.password.expose()
        );
        let r = raw_exchange(west.addr(), &token.ca_pem, request.as_bytes());
        assert_eq!(
            (r.status, body(&r).as_str()),
            (404, "No such claim\n"),
            "{target}"
        );
    }
    assert_eq!(west.statuses(), [404; 4], "answered as an unknown claim");
    assert_eq!(west.counts(), (Some(1), 0));
}

/// A `skupper-site-name` no certificate can carry is refused with 400 and
/// the reason, before the use is spent.
#[test]
fn an_unusable_site_name_is_400_and_spends_no_use() {
    let west = West::start();
    let token = west.claim(1);
    let client = no_retry_client();
    let long = "e".repeat(10_000);
    match client.redeem_claim(&token.url, &token.ca_pem, &request_for(&token, &long)) {
        Err(TransportError::Refused { status, body }) => {
            assert_eq!(status, 400);
            assert_eq!(
                body,
                "Request not valid: the skupper-site-name header is not a usable site id: the site id is 10000 characters long; a site id is at most 64 (the longest common name a certificate may have)\n"
            );
        }
        other => panic!("expected 400, got {other:?}"),
    }
    let request = format!(
        "POST /{}?site-version={VERSION} HTTP/1.1\r\nHost: 127.0.0.1\r\nskupper-site-name: east\twest\r\nConnection: close\r\nContent-Length: 24\r\n\r\n{}",
        token.name,
        token.password.expose()
    );
    let r = raw_exchange(west.addr(), &token.ca_pem, request.as_bytes());
    assert_eq!(r.status, 400, "{}", body(&r));
    assert_eq!(
        body(&r),
        "Request not valid: the skupper-site-name header is not a usable site id: the site id has '\\t' at position 5; a site id is printable ASCII: letters, digits and punctuation, no spaces or control characters\n"
    );
    assert_eq!(west.counts(), (Some(1), 0), "no use was spent");
    // The claim still works for a real site id.
    let cert = client
        .redeem_claim(
            &token.url,
            &token.ca_pem,
            &request_for(&token, "67b7e59e-37aa-4179-8191-077b7a0d90d7"),
        )
        .expect("redeemed");
    assert_eq!(cert.name, "67b7e59e-37aa-4179-8191-077b7a0d90d7");
    assert_eq!(west.counts(), (Some(0), 1));
}

/// A claim file written before refused attempts were counted (no
/// `failed-attempts` or `last-failed-attempt`) still reads, counts from 0,
/// and records the next refusal.
#[test]
fn claim_files_from_before_failed_attempts_were_counted_still_work() {
    let west = West::start();
    let token = west.claim(2);
    let path = west
        .dir
        .path()
        .join("claim")
        .join(format!("{}.json", token.name));
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("claim file")).expect("JSON");
    let record = file["record"].as_object_mut().expect("record");
    assert!(record.remove("failed-attempts").is_some(), "{record:?}");
    assert!(record.remove("last-failed-attempt").is_some(), "{record:?}");
    std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();

    let site = open(west.dir.path());
    let claims = site.claims().expect("an old claim file reads");
    assert_eq!(claims[0].failed_attempts, 0);
    assert_eq!(claims[0].last_failed_attempt, None);
    let mut wrong = request_for(&token, "mallory");
    wrong.password = b"guess".to_vec();
    let client = no_retry_client();
    match client.redeem_claim(&token.url, &token.ca_pem, &wrong) {
        Err(TransportError::Refused { status: 403, body }) => assert_eq!(body, "Claim refused\n"),
        other => panic!("expected 403, got {other:?}"),
    }
    client
        .redeem_claim(&token.url, &token.ca_pem, &request_for(&token, "east"))
        .expect("redeemed");
    let claims = open(west.dir.path()).claims().unwrap();
    assert_eq!(
        (claims[0].failed_attempts, claims[0].claims_made),
        (1, 1),
        "{claims:?}"
    );
    assert_eq!(
        claims[0]
            .last_failed_attempt
            .as_ref()
            .map(|a| a.site.as_str()),
        Some("mallory")
    );
}
