//! Live links with real rustls on 127.0.0.1: sites west, east and north,
//! each with a `LinkRuntime`, linked, pinged, revoked, killed and restarted;
//! certificates refused at the handshake; OpenSSL as a linking client.
//!
//! Timings are short (heartbeat 100 ms, dead after 600 ms, poll 100 ms);
//! every wait polls with a deadline, and nothing asserts how fast the
//! machine is.

// Tests bind sockets, read the clock and start processes.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr
)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skupper_token::claim::RedeemRequest;
use skupper_token::link::LinkState;
use skupper_token::protocol::notice;
use skupper_token::site::{LinkOptions, Site, SiteConfig, SiteMode, TokenOptions};
use skupper_token::store::{
    Cas, Key, MemoryStore, Record, RecordKind, Store, StoreError, Version, Versioned,
};
use skupper_token::token::CertToken;
use skupper_token::version::VERSION;
use skupper_token_cli::links::frame::{self, Frame, FrameBuf};
use skupper_token_cli::links::{
    Direction, LinkEvent, LinkRuntime, PingError, PingPath, Pong, RuntimeOptions,
};
use skupper_token_cli::os_random::OsRandom;
use skupper_token_cli::FileStore;
use time::OffsetDateTime;

/// Sites on either store: memory, or a directory (as `serve` has it).
type AnyStore = Arc<dyn Store>;
type TestSite = Site<AnyStore>;

const DEAD_AFTER: Duration = Duration::from_millis(600);

/// How long any wait may take before the test fails (generous: the
/// machine may be busy).
const PATIENCE: Duration = Duration::from_secs(20);

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The tokio runtime every site's links run on (as in one `serve`, or an
/// application that embeds several sites), shared by the tests.
fn tokio() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One site with its store, its runtime (when running) and the events it
/// logged.
struct Node {
    name: String,
    store: AnyStore,
    /// The site directory, for a file store.
    dir: Option<tempfile::TempDir>,
    site: Arc<TestSite>,
    ir_port: u16,
    edge_port: u16,
    events: Arc<Mutex<Vec<LinkEvent>>>,
    runtime: Option<LinkRuntime>,
}

impl Node {
    /// A site in memory on free ports, not running yet.
    fn create(name: &str, mode: SiteMode) -> Node {
        Node::create_in(name, mode, Arc::new(MemoryStore::new()), None)
    }

    /// A site in a directory (a file store), not running yet.
    fn create_on_disk(name: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join(name)).unwrap();
        Node::create_in(name, SiteMode::Interior, Arc::new(store), Some(dir))
    }

    /// Another handle on this site's store, as another process would open
    /// it (for a file store: the directory opened again).
    fn other_process(&self) -> TestSite {
        let store: AnyStore = match &self.dir {
            Some(dir) => Arc::new(FileStore::open(dir.path().join(&self.name)).unwrap()),
            None => self.store.clone(),
        };
        Site::open(store).unwrap()
    }

    fn create_in(
        name: &str,
        mode: SiteMode,
        store: AnyStore,
        dir: Option<tempfile::TempDir>,
    ) -> Node {
        let (ir_port, edge_port) = (free_port(), free_port());
        let config = SiteConfig::new(name).mode(mode).hosts(["127.0.0.1"]).ports(
            free_port(),
            ir_port,
            edge_port,
        );
        let site =
            Site::create(store.clone(), &config, now(), &mut OsRandom::new()).expect("create site");
        Node {
            name: name.to_owned(),
            store,
            dir,
            site: Arc::new(site),
            ir_port,
            edge_port,
            events: Arc::new(Mutex::new(Vec::new())),
            runtime: None,
        }
    }

    /// An interior site, running. Retries with other ports if a port was
    /// taken between choosing it and binding it.
    fn start(name: &str) -> Node {
        Node::start_with(name, || Node::create(name, SiteMode::Interior))
    }

    /// An interior site on disk, running.
    fn start_on_disk(name: &str) -> Node {
        Node::start_with(name, || Node::create_on_disk(name))
    }

    fn start_with(name: &str, create: impl Fn() -> Node) -> Node {
        for _ in 0..5 {
            let mut node = create();
            match node.try_run() {
                Ok(()) => return node,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => panic!("start {name}: {e}"),
            }
        }
        panic!("no free ports for {name}");
    }

    fn options(&self) -> RuntimeOptions {
        RuntimeOptions {
            inter_router_listen: Some(SocketAddr::from(([127, 0, 0, 1], self.ir_port))),
            edge_listen: Some(SocketAddr::from(([127, 0, 0, 1], self.edge_port))),
            heartbeat: Duration::from_millis(100),
            dead_after: DEAD_AFTER,
            poll: Duration::from_millis(100),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(400),
            connect_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(5),
            incoming_handshake_timeout: Duration::from_secs(5),
            max_connections: 64,
            max_pending_per_address: 16,
            dial_from: None,
        }
    }

    fn try_run(&mut self) -> std::io::Result<()> {
        self.try_run_with(self.options())
    }

    fn try_run_with(&mut self, options: RuntimeOptions) -> std::io::Result<()> {
        self.try_run_on(tokio().handle(), options)
    }

    /// Runs on the tokio runtime of `handle`.
    fn try_run_on(
        &mut self,
        handle: &tokio::runtime::Handle,
        options: RuntimeOptions,
    ) -> std::io::Result<()> {
        let events = self.events.clone();
        let runtime = LinkRuntime::start(handle, self.site.clone(), options, move |e| {
            events.lock().unwrap().push(e.clone());
        })?;
        self.runtime = Some(runtime);
        Ok(())
    }

    fn run(&mut self) {
        self.try_run().expect("start the runtime");
    }

    fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            tokio().block_on(rt.shutdown());
        }
    }

    fn ping_link(&self, link: &str, timeout: Duration) -> Result<Pong, PingError> {
        tokio().block_on(self.rt().ping_link(link, timeout))
    }

    fn ping_site(&self, site: &str, timeout: Duration) -> Result<Pong, PingError> {
        tokio().block_on(self.rt().ping_site(site, timeout))
    }

    fn rt(&self) -> &LinkRuntime {
        self.runtime.as_ref().expect("running")
    }

    fn id(&self) -> String {
        self.site.id().to_owned()
    }

    fn ir_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ir_port))
    }

    fn ca_pem(&self) -> String {
        self.site.server_credentials().unwrap().unwrap().0
    }

    /// Credentials for `peer`, as redeeming a claim from this site gives
    /// them (the certificate's CN is the peer's site id).
    fn credentials_for(&self, peer: &Node) -> CertToken {
        let claim = self
            .site
            .create_claim_token(&TokenOptions::claim(), now(), &mut OsRandom::new())
            .unwrap();
        self.site
            .redeem_claim(
                &RedeemRequest {
                    claim: claim.name.clone(),
                    password: claim.password.expose().as_bytes().to_vec(),
                    site_id: peer.id(),
                    site_version: VERSION.to_owned(),
                },
                now(),
                &mut OsRandom::new(),
            )
            .unwrap()
    }

    /// Makes link `name` from `self` to `to`.
    fn link_to(&self, to: &Node, name: &str) {
        let token = to.credentials_for(self);
        self.link_with(&token, name);
    }

    fn link_with(&self, token: &CertToken, name: &str) {
        self.site
            .add_link(
                token.encode().as_bytes(),
                &LinkOptions::default().name(name),
                now(),
                &mut OsRandom::new(),
            )
            .expect("add link");
    }

    fn link_state(&self, name: &str) -> LinkState {
        self.site.link(name).expect("link").state().clone()
    }

    fn link_connected(&self, name: &str) -> bool {
        self.link_state(name).is_connected()
    }

    fn reason(&self, name: &str) -> String {
        match self.link_state(name) {
            state @ (LinkState::NotConnected { .. } | LinkState::Revoked { .. }) => {
                state.reason().unwrap_or_default()
            }
            other => format!("<{}>", other.label()),
        }
    }

    fn has_incoming_from(&self, peer: &Node) -> bool {
        self.site
            .incoming()
            .iter()
            .any(|l| l.peer_site_id == peer.site.id())
    }

    fn log(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn count(&self, f: impl Fn(&LinkEvent) -> bool) -> usize {
        self.events.lock().unwrap().iter().filter(|e| f(e)).count()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
        // No event ever carries key material.
        for line in self.log() {
            assert!(
                !line.contains("PRIVATE KEY") && !line.contains("BEGIN"),
                "{}: key material in a log line: {line}",
                self.name
            );
        }
    }
}

/// Waits until `ok` holds, or fails with `what` and the nodes' logs.
fn wait_until(what: &str, nodes: &[&Node], mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + PATIENCE;
    while Instant::now() < until {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut logs = String::new();
    for n in nodes {
        logs.push_str(&format!("--- {} ---\n{}\n", n.name, n.log().join("\n")));
    }
    panic!("timed out waiting until {what}\n{logs}");
}

fn connected(a: &Node, link: &str, b: &Node) -> bool {
    a.link_connected(link) && b.has_incoming_from(a)
}

// ---------------------------------------------------------------------------
// A raw client and server, for what a runtime would never do.
// ---------------------------------------------------------------------------

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &str) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(pem: &str) -> rustls_pki_types::PrivateKeyDer<'static> {
    let key = skupper_token::pki::PrivateKey::from_pem(pem).unwrap();
    rustls_pki_types::PrivateKeyDer::Pkcs8(key.pkcs8_der().to_vec().into())
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS 1.3 client trusting `ca_pem` and presenting `token`'s
/// certificate, connected and with its handshake done (from its side).
fn raw_client(addr: SocketAddr, ca_pem: &str, token: &CertToken) -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca_pem) {
        roots.add(c).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs(&token.cert_pem), key(token.key_pem.expose()))
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut socket).unwrap();
    }
    rustls::StreamOwned::new(conn, socket)
}

/// What the listener answered to a hello.
#[derive(Debug)]
enum Answer {
    Frame(Frame),
    Alert(rustls::AlertDescription),
    Closed(#[allow(dead_code)] String),
}

fn read_frame(tls: &mut Tls) -> Answer {
    let mut buf = FrameBuf::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(f) = buf.next_frame().unwrap() {
            return Answer::Frame(f);
        }
        match tls.read(&mut chunk) {
            Ok(0) => return Answer::Closed("eof".into()),
            Ok(n) => buf.push(&chunk[..n]),
            Err(e) => {
                return match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                    Some(rustls::Error::AlertReceived(a)) => Answer::Alert(*a),
                    _ => Answer::Closed(e.to_string()),
                }
            }
        }
    }
}

/// Connects with `token`, says hello as `who`, and returns the answer
/// (and the stream, to keep it open).
fn hello(
    addr: SocketAddr,
    ca_pem: &str,
    token: &CertToken,
    who: &Node,
    link: &str,
) -> (Answer, Tls) {
    let mut tls = raw_client(addr, ca_pem, token);
    let hello = Frame::Hello {
        protocol: frame::PROTOCOL_VERSION,
        site_id: who.id(),
        site_name: who.name.clone(),
        link: link.to_owned(),
    };
    let sent = tls
        .write_all(&frame::encode(&hello))
        .and_then(|()| tls.flush());
    let answer = match sent {
        Ok(()) => read_frame(&mut tls),
        Err(e) => Answer::Closed(e.to_string()),
    };
    (answer, tls)
}

/// A fake listener for `site`: its server certificate (no client
/// certificate asked), one hello-ack for the first connection, then
/// `then` with the stream.
fn fake_listener(
    site: &Node,
    then: impl FnOnce(rustls::StreamOwned<rustls::ServerConnection, TcpStream>) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let listener = TcpListener::bind(("127.0.0.1", site.ir_port)).unwrap();
    let (_ca, server) = site.site.server_credentials().unwrap().unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs(&server.cert_pem), key(&server.key.to_pem()))
        .unwrap();
    let site_id = site.id();
    let site_name = site.name.clone();
    std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut tls = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        while tls.is_handshaking() {
            tls.complete_io(&mut socket).unwrap();
        }
        let mut stream = rustls::StreamOwned::new(tls, socket);
        let mut b = [0u8; 4096];
        let _ = stream.read(&mut b);
        let ack = Frame::HelloAck {
            protocol: frame::PROTOCOL_VERSION,
            site_id,
            site_name,
        };
        stream.write_all(&frame::encode(&ack)).unwrap();
        stream.flush().unwrap();
        then(stream);
    })
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// (1) east links to west: both see the link, both count one linked site,
/// and pings go both ways.
#[test]
fn a_link_connects_and_carries_pings_both_ways() {
    let west = Node::start("west");
    let east = Node::start("east");
    // The link is made after both run: the runtime picks it up by polling.
    east.link_to(&west, "link1");
    wait_until(
        "east's link1 is connected and west has it",
        &[&west, &east],
        || connected(&east, "link1", &west),
    );
    assert_eq!(east.site.status(now()).unwrap().linked_sites, 1);
    assert_eq!(west.site.status(now()).unwrap().linked_sites, 1);
    assert_eq!(
        west.site.status(now()).unwrap().to_string(),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 1 other site."
    );

    // Pings, both directions: east over its link, west to the site that
    // linked to it (by id and by name).
    // Each answer says which link it went over.
    let to_west = PingPath {
        direction: Direction::Outgoing,
        link: "link1".into(),
        remote_site_id: west.id(),
        remote_site_name: Some("west".into()),
    };
    let pong = east.ping_link("link1", Duration::from_secs(5)).unwrap();
    assert!(pong.rtt > Duration::ZERO);
    assert_eq!(pong.path, to_west);
    let from_east = PingPath {
        direction: Direction::Incoming,
        link: "link1".into(),
        remote_site_id: east.id(),
        remote_site_name: Some("east".into()),
    };
    for peer in [east.id(), "east".to_owned()] {
        let pong = west.ping_site(&peer, Duration::from_secs(5)).unwrap();
        assert_eq!(pong.path, from_east);
    }
    // East can also reach west by name, over its own link.
    let pong = east.ping_site("west", Duration::from_secs(5)).unwrap();
    assert_eq!(pong.path, to_west);
    assert!(matches!(
        east.ping_link("nope", Duration::from_secs(1)),
        Err(PingError::NoSuchLink { .. })
    ));
    assert!(matches!(
        west.ping_site("nobody", Duration::from_secs(1)),
        Err(PingError::NoLinkWith { .. })
    ));

    // The snapshots say the same, and serialize.
    let snap = east.rt().snapshot();
    assert_eq!(snap.linked_sites, 1);
    let out = &snap.outgoing[0];
    assert_eq!(
        (
            out.name.as_str(),
            out.connected,
            out.remote_site_name.as_deref()
        ),
        ("link1", true, Some("west"))
    );
    assert_eq!(out.remote_site_id, west.id());
    assert!(out.since.is_some() && out.reason.is_none() && out.last_rtt_us.is_some());
    let snap = west.rt().snapshot();
    assert_eq!(snap.linked_sites, 1);
    assert_eq!(snap.incoming.len(), 1);
    let inc = &snap.incoming[0];
    assert_eq!(inc.peer_site_name, "east");
    assert_eq!(inc.link, "link1");
    assert_eq!(inc.certificate_cn, east.id());
    assert!(!inc.certificate_serial.is_empty());
    let json = serde_json::to_string(&snap).unwrap();
    let back: skupper_token_cli::links::Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);
    assert_eq!(
        west.rt().listen_addrs(),
        vec![
            west.ir_addr(),
            SocketAddr::from(([127, 0, 0, 1], west.edge_port))
        ]
    );

    // Logged on both sides.
    assert!(east.count(|e| matches!(e, LinkEvent::LinkConnected { .. })) >= 1);
    assert!(west.count(|e| matches!(e, LinkEvent::IncomingAccepted { .. })) >= 1);
}

/// (2) `revoke-access` on west, made through another handle on its store
/// (another process, as far as the runtime knows): east is dropped within
/// about a second and its link says why, again after its reconnection
/// attempts; west's own link to north stays up.
#[test]
fn revoke_access_cuts_incoming_links_and_tells_the_peer() {
    let west = Node::start_on_disk("west");
    let east = Node::start("east");
    let north = Node::start("north");
    west.link_to(&north, "link1");
    east.link_to(&west, "link1");
    wait_until("all links are up", &[&west, &east, &north], || {
        connected(&east, "link1", &west) && connected(&west, "link1", &north)
    });
    assert_eq!(west.site.status(now()).unwrap().linked_sites, 2);

    let other_process = west.other_process();
    let started = Instant::now();
    other_process
        .revoke_access(now(), &mut OsRandom::new())
        .unwrap();
    wait_until(
        "west drops east and east's link says access was revoked",
        &[&west, &east],
        || {
            !west.has_incoming_from(&east)
                && east.reason("link1").starts_with("access revoked by west")
        },
    );
    eprintln!("revocation took effect after {:?}", started.elapsed());
    let reason = east.reason("link1");
    let revoked_at = west
        .site
        .record()
        .unwrap()
        .revoked_at
        .expect("revoke-access records when")
        .to_offset(time::UtcOffset::UTC)
        .truncate_to_second()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(
        reason,
        format!(
            "access revoked by west (site {}) at {revoked_at}; to link again, get a new token from that site and replace this link with it",
            west.id()
        )
    );
    assert_eq!(
        west.count(|e| matches!(e, LinkEvent::RevocationSent { peer_site_name, .. } if peer_site_name == "east")),
        1,
        "{:#?}",
        west.log()
    );
    assert_eq!(
        east.count(|e| matches!(e, LinkEvent::RevocationReceived { .. })),
        1
    );

    // East keeps trying with its old certificate; west refuses it at the
    // handshake; the reason stays.
    let refused_before = west.count(|e| matches!(e, LinkEvent::IncomingRefused { .. }));
    wait_until("east retried twice", &[&west, &east], || {
        west.count(|e| matches!(e, LinkEvent::IncomingRefused { .. })) >= refused_before + 2
    });
    let reason_now = east.reason("link1");
    assert_eq!(reason_now, reason);
    // A fact, not a sentence: the record is revoked, and so is the live
    // link, also after the runtime restarts.
    assert_eq!(east.link_state("link1").label(), "revoked");
    let revoked = |node: &Node| {
        node.rt()
            .snapshot()
            .outgoing
            .iter()
            .find(|o| o.name == "link1")
            .map(|o| (o.revoked, o.reason.clone()))
    };
    assert_eq!(revoked(&east), Some((true, Some(reason.clone()))));
    let mut east = east;
    east.stop();
    assert_eq!(east.link_state("link1").label(), "revoked");
    east.run();
    assert_eq!(revoked(&east), Some((true, Some(reason.clone()))));
    let refusal = west
        .log()
        .into_iter()
        .rfind(|l| l.contains("refused"))
        .unwrap();
    // Either west refused east's certificate, or (more likely) east's
    // client refused west's new server certificate first.
    assert!(
        refusal.contains("not this site's current CA")
            || refusal.contains("the dialing site refused this site's certificate"),
        "{refusal}"
    );

    // West's outgoing link to north was not touched.
    wait_until("west's link to north is up", &[&west, &north], || {
        connected(&west, "link1", &north)
    });
    assert_eq!(
        west.count(|e| matches!(e, LinkEvent::RevocationSent { peer_site_name, .. } if peer_site_name != "east")),
        0
    );
    assert_eq!(west.site.status(now()).unwrap().linked_sites, 1);

    // As the documentation says: delete the stale link, link again with a
    // new token, and it connects.
    east.site.delete_link("link1").unwrap();
    east.link_to(&west, "link1");
    wait_until("east is linked again", &[&west, &east], || {
        connected(&east, "link1", &west)
    });
    assert_eq!(west.site.status(now()).unwrap().linked_sites, 2);
}

/// (3) `revoke-access --site east`: east's link drops and says why; north,
/// also linked to west, stays.
#[test]
fn revoking_one_site_leaves_the_others_linked() {
    let west = Node::start_on_disk("west");
    let east = Node::start("east");
    let north = Node::start("north");
    east.link_to(&west, "link1");
    north.link_to(&west, "link1");
    wait_until(
        "east and north are linked to west",
        &[&west, &east, &north],
        || connected(&east, "link1", &west) && connected(&north, "link1", &west),
    );
    west.other_process().revoke_peer(&east.id(), now()).unwrap();
    wait_until("east is dropped and told", &[&west, &east], || {
        !west.has_incoming_from(&east) && east.reason("link1").starts_with("access revoked by west")
    });
    assert!(west
        .log()
        .iter()
        .any(|l| l.contains("revocation notice sent") && l.contains("revoked")));
    // North stays linked, and west still counts it.
    wait_until("north is still linked", &[&west, &north], || {
        connected(&north, "link1", &west)
    });
    assert_eq!(
        north.count(|e| matches!(e, LinkEvent::RevocationReceived { .. })),
        0,
        "{:#?}",
        north.log()
    );
    assert_eq!(
        west.count(|e| matches!(e, LinkEvent::RevocationSent { peer_site_name, .. } if peer_site_name == "north")),
        0
    );
    assert_eq!(west.site.status(now()).unwrap().linked_sites, 1);
    // East's new attempts are refused as revoked.
    wait_until(
        "west refuses east's revoked certificate",
        &[&west, &east],
        || {
            west.log()
                .iter()
                .any(|l| l.contains("refused") && l.contains("is revoked"))
        },
    );
    assert!(east.reason("link1").starts_with("access revoked by west"));
}

/// `revoke-access --site east` by name, from another process: the name is
/// found in the incoming-link records the running site keeps in the store,
/// and other processes see the links there too.
#[test]
fn another_process_sees_incoming_links_and_revokes_one_by_name() {
    let west = Node::start_on_disk("west");
    let east = Node::start("east");
    let north = Node::start("north");
    east.link_to(&west, "link1");
    north.link_to(&west, "link1");
    wait_until(
        "east and north are linked to west",
        &[&west, &east, &north],
        || connected(&east, "link1", &west) && connected(&north, "link1", &west),
    );
    let command = west.other_process();
    let mut names: Vec<String> = command
        .incoming_links(now())
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {}", r.peer_site_name, r.link))
        .collect();
    names.sort();
    assert_eq!(names, ["east link1", "north link1"]);
    assert_eq!(command.status(now()).unwrap().linked_sites, 2);

    let revoked = command.revoke_peer("east", now()).unwrap();
    assert_eq!(revoked.revoked.len(), 1);
    assert_eq!(revoked.revoked[0].common_name, east.id());
    wait_until("east is dropped and told", &[&west, &east], || {
        !west.has_incoming_from(&east) && east.reason("link1").starts_with("access revoked by west")
    });
    assert_eq!(west.other_process().status(now()).unwrap().linked_sites, 1);
    assert!(connected(&north, "link1", &west));
}

/// A runtime that starts clears the incoming-link records an earlier run
/// left behind (a crash leaves them), and records the links it accepts.
#[test]
fn a_starting_runtime_clears_records_left_by_a_crashed_one() {
    let mut west = Node::create_on_disk("west");
    let east = Node::start("east");
    // What a crashed run leaves: a record of a link nobody holds.
    let token = west.credentials_for(&east);
    let der = skupper_token::pki::pem_to_der(&token.cert_pem).unwrap();
    let hello = skupper_token::site::PeerHello {
        site_id: east.id(),
        site_name: "east".into(),
        link: "link1".into(),
    };
    let crashed = west.other_process();
    crashed.accept_incoming(&[&der], &hello, now()).unwrap();
    drop(crashed);
    let dir = west.dir.as_ref().unwrap().path().join("west/incoming");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert_eq!(west.other_process().status(now()).unwrap().linked_sites, 1);

    west.run();
    wait_until("the stale record is gone", &[&west], || {
        west.other_process().status(now()).unwrap().linked_sites == 0
    });
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

    east.link_with(&token, "link1");
    wait_until("east is linked", &[&west, &east], || {
        connected(&east, "link1", &west)
    });
    let records = west.other_process().incoming_links(now()).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].peer_site_name, "east");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    west.stop();
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "a runtime that stops removes its records"
    );
}

/// Idle TCP connections to the inter-router port, from 127.0.0.1 like the
/// linking site, opened faster than the dialer retries and kept open, do
/// not stop a new link: each new connection closes the oldest one still in
/// its handshake, and the rest are closed by the handshake deadline.
#[test]
fn idle_connections_on_the_inter_router_port_do_not_stop_a_new_link() {
    let mut west = Node::create("west", SiteMode::Interior);
    let options = RuntimeOptions {
        max_connections: 8,
        max_pending_per_address: 4,
        incoming_handshake_timeout: Duration::from_secs(1),
        ..west.options()
    };
    west.try_run_with(options).expect("start west");
    let east = Node::start("east");
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flood = {
        let (addr, flooding) = (west.ir_addr(), flooding.clone());
        std::thread::spawn(move || {
            let mut idle = Vec::new();
            while flooding.load(std::sync::atomic::Ordering::SeqCst) && idle.len() < 2000 {
                if let Ok(socket) = TcpStream::connect(addr) {
                    idle.push(socket);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            idle
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    east.link_to(&west, "link1");
    wait_until(
        "east is linked despite the idle connections",
        &[&west, &east],
        || connected(&east, "link1", &west),
    );
    flooding.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut idle = flood.join().unwrap();
    assert!(idle.len() > 8, "the flood held more than the caps");
    for socket in &mut idle {
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        assert!(
            matches!(socket.read(&mut [0u8; 16]), Ok(0) | Err(_)),
            "an idle connection stayed open"
        );
    }
    let refused = |why: &str| {
        west.count(
            |e| matches!(e, LinkEvent::IncomingRefused { reason, .. } if reason.contains(why)),
        )
    };
    let total = idle.len();
    wait_until("every idle connection is accounted for", &[&west], || {
        refused("closed to make room") + refused("did not finish within 1s") >= total
    });
    assert!(
        refused("closed to make room for a newer connection: 4 connections from the same address")
            > 0
    );
    // The link, settled, is not closed to make room by new idle ones.
    let more: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(west.ir_addr()).unwrap())
        .collect();
    east.ping_link("link1", Duration::from_secs(5))
        .expect("the link is still up");
    drop(more);
}

/// (4) The listening site stops: the dialer sees it, and reconnects by
/// itself when the site runs again.
#[test]
fn links_come_back_when_the_listening_site_restarts() {
    let mut west = Node::start("west");
    let east = Node::start("east");
    east.link_to(&west, "link1");
    wait_until("linked", &[&west, &east], || {
        connected(&east, "link1", &west)
    });
    west.stop();
    wait_until("east sees west gone", &[&west, &east], || {
        let r = east.reason("link1");
        r.starts_with("peer unreachable") || r.starts_with("heartbeat timeout")
    });
    let r = east.reason("link1");
    assert!(
        r == format!("peer unreachable: connection to {} refused", west.ir_addr())
            || r.starts_with("heartbeat timeout"),
        "{r}"
    );
    assert!(!west.has_incoming_from(&east));
    west.run();
    wait_until("east is linked again", &[&west, &east], || {
        connected(&east, "link1", &west)
    });
    east.ping_link("link1", Duration::from_secs(5)).unwrap();
}

/// (5) A linked site that goes silent (its connection stays open, nothing
/// arrives) is dropped after `dead_after`.
#[test]
fn a_silent_peer_is_dropped_after_the_heartbeat_timeout() {
    let west = Node::start("west");
    let east = Node::create("east", SiteMode::Interior);
    let token = west.credentials_for(&east);
    let started = Instant::now();
    let (answer, silent) = hello(west.ir_addr(), &west.ca_pem(), &token, &east, "link1");
    assert!(
        matches!(answer, Answer::Frame(Frame::HelloAck { ref site_name, .. }) if site_name == "west"),
        "{answer:?}"
    );
    assert!(west.has_incoming_from(&east));
    assert_eq!(west.site.status(now()).unwrap().linked_sites, 1);
    wait_until("west drops the silent east", &[&west], || {
        !west.has_incoming_from(&east)
    });
    // Never before the timeout.
    assert!(started.elapsed() >= DEAD_AFTER);
    assert!(
        west.log()
            .iter()
            .any(|l| l.contains("closed: heartbeat timeout")),
        "{:#?}",
        west.log()
    );
    assert_eq!(west.site.status(now()).unwrap().linked_sites, 0);
    drop(silent);
}

/// (5) The other way round: the dialing site notices a listener that
/// answered once and then went silent, and a dialer that is shut down
/// abruptly disappears from the listener.
#[test]
fn a_dialer_notices_a_silent_listener_and_a_stopped_dialer_is_dropped() {
    // A fake west: west's certificate, one hello-ack, then silence.
    let west = Node::create("west", SiteMode::Interior);
    let fake = fake_listener(&west, |stream| {
        // Silent, and reading nothing, until the dialer gives up.
        std::thread::sleep(Duration::from_secs(3));
        drop(stream);
    });
    let east = Node::start("east");
    east.link_to(&west, "link1");
    wait_until("east sees the heartbeat timeout", &[&east], || {
        east.reason("link1").starts_with("heartbeat timeout")
    });
    assert!(
        east.reason("link1").starts_with(&format!(
            "heartbeat timeout: no answer from {} (site west) for",
            west.ir_addr()
        )),
        "{}",
        east.reason("link1")
    );
    assert!(east.count(|e| matches!(e, LinkEvent::LinkConnected { .. })) >= 1);
    fake.join().unwrap();

    // A real west, and an east that stops.
    let west = Node::start("west");
    let mut east = Node::start("east");
    east.link_to(&west, "link1");
    wait_until("linked", &[&west, &east], || {
        connected(&east, "link1", &west)
    });
    east.stop();
    wait_until("west drops east", &[&west], || {
        !west.has_incoming_from(&east)
    });
    assert_eq!(west.site.status(now()).unwrap().linked_sites, 0);
    // The stopped site records its link as not running.
    assert_eq!(
        east.reason("link1"),
        "site not running (its link runtime stopped)"
    );
}

/// (6) Certificates refused at the handshake: from another CA, expired,
/// revoked, and from before a revoke-access.
#[test]
fn bad_certificates_are_refused_at_the_handshake() {
    let west = Node::start("west");
    let east = Node::create("east", SiteMode::Interior);
    let mallory = Node::create("mallory", SiteMode::Interior);
    let ca = west.ca_pem();

    // Good credentials work (the control).
    let good = west.credentials_for(&east);
    let (answer, conn) = hello(west.ir_addr(), &ca, &good, &east, "link1");
    assert!(
        matches!(answer, Answer::Frame(Frame::HelloAck { .. })),
        "{answer:?}"
    );
    drop(conn);

    let refused = |token: &CertToken, alert: rustls::AlertDescription, log: &str| {
        let before = west.count(|e| matches!(e, LinkEvent::IncomingRefused { .. }));
        let (answer, _conn) = hello(west.ir_addr(), &ca, token, &east, "link9");
        assert!(
            matches!(answer, Answer::Alert(a) if a == alert),
            "expected alert {alert:?}, got {answer:?}"
        );
        wait_until("west logs the refusal", &[&west], || {
            west.count(|e| matches!(e, LinkEvent::IncomingRefused { .. })) > before
        });
        let line = west
            .log()
            .into_iter()
            .rfind(|l| l.contains("refused"))
            .unwrap();
        assert!(line.contains(log), "{line}");
        assert!(!west.site.incoming().iter().any(|l| l.link == "link9"));
    };

    // Another site's CA (same CA name, other key).
    let foreign = mallory.credentials_for(&east);
    refused(
        &foreign,
        rustls::AlertDescription::UnknownCA,
        "not this site's current CA",
    );
    // Expired: issued ten days ago for one day.
    let expired = west
        .site
        .create_cert_token(
            &TokenOptions::cert()
                .name("old")
                .validity(time::Duration::days(1)),
            now() - time::Duration::days(10),
            &mut OsRandom::new(),
        )
        .unwrap();
    refused(
        &expired,
        rustls::AlertDescription::CertificateExpired,
        "expired",
    );
    // Revoked with revoke-access --site.
    let revoked = west
        .site
        .create_cert_token(
            &TokenOptions::cert().name("gone"),
            now(),
            &mut OsRandom::new(),
        )
        .unwrap();
    west.site.revoke_peer("gone", now()).unwrap();
    refused(
        &revoked,
        rustls::AlertDescription::CertificateRevoked,
        "is revoked",
    );
    // From before a revoke-access (the good one above).
    west.site
        .revoke_access(now(), &mut OsRandom::new())
        .unwrap();
    let new_ca = west.ca_pem();
    assert_ne!(new_ca, ca);
    let before = west.count(|e| matches!(e, LinkEvent::IncomingRefused { .. }));
    // Trusting the new CA (the server certificate changed too).
    let (answer, _conn) = hello(west.ir_addr(), &new_ca, &good, &east, "link1");
    assert!(
        matches!(answer, Answer::Alert(rustls::AlertDescription::UnknownCA)),
        "{answer:?}"
    );
    wait_until("refusal logged", &[&west], || {
        west.count(|e| matches!(e, LinkEvent::IncomingRefused { .. })) > before
    });

    // A runtime dialing with expired credentials (of the new CA) says so.
    let expired = west
        .site
        .create_cert_token(
            &TokenOptions::cert()
                .name("old2")
                .validity(time::Duration::days(1)),
            now() - time::Duration::days(10),
            &mut OsRandom::new(),
        )
        .unwrap();
    let mut dialer = Node::create("east", SiteMode::Interior);
    dialer.link_with(&expired, "link1");
    dialer.run();
    wait_until(
        "the dialer reports the rejection",
        &[&west, &dialer],
        || {
            dialer
                .reason("link1")
                .starts_with("certificate rejected by the remote site: ")
        },
    );
    let reason = dialer.reason("link1");
    assert!(
        reason.contains("has expired") && reason.contains("TLS alert certificate_expired"),
        "{reason}"
    );
    // Old credentials: the server's certificate is not from the token's CA
    // any more.
    let old = Node::create("north", SiteMode::Interior);
    let mut old = old;
    old.link_with(&good, "link1");
    old.run();
    wait_until(
        "the dialer reports the handshake failure",
        &[&west, &old],
        || old.reason("link1").starts_with("TLS handshake failed: "),
    );
    let reason = old.reason("link1");
    assert!(
        reason.contains("not from the CA in this link's token"),
        "{reason}"
    );

    // A hello that is not acceptable is answered with a refusal.
    let fresh = west.credentials_for(&east);
    let mut tls = raw_client(west.ir_addr(), &new_ca, &fresh);
    let bad_hello = Frame::Hello {
        protocol: frame::PROTOCOL_VERSION,
        site_id: String::new(),
        site_name: "east".into(),
        link: "link1".into(),
    };
    tls.write_all(&frame::encode(&bad_hello)).unwrap();
    tls.flush().unwrap();
    match read_frame(&mut tls) {
        Answer::Frame(Frame::Refused { reason }) => assert!(reason.contains("site id"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A site id no certificate can be issued to is refused by the same rule
    // as in claim redemption.
    let mut tls = raw_client(west.ir_addr(), &new_ca, &fresh);
    let long_hello = Frame::Hello {
        protocol: frame::PROTOCOL_VERSION,
        site_id: "a".repeat(65),
        site_name: "east".into(),
        link: "link1".into(),
    };
    tls.write_all(&frame::encode(&long_hello)).unwrap();
    tls.flush().unwrap();
    match read_frame(&mut tls) {
        Answer::Frame(Frame::Refused { reason }) => assert_eq!(
            reason,
            "the hello's site id is not usable: the site id is 65 characters long; a site id is at most 64 (the longest common name a certificate may have)"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Something that is not the link protocol at all is dropped.
    let mut tls = raw_client(west.ir_addr(), &new_ca, &fresh);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: west\r\n\r\n")
        .unwrap();
    tls.flush().unwrap();
    assert!(matches!(
        read_frame(&mut tls),
        Answer::Closed(_) | Answer::Frame(Frame::Refused { .. })
    ));
    assert!(west.site.incoming().is_empty());
    wait_until("west logs the garbage", &[&west], || {
        west.log()
            .iter()
            .any(|l| l.contains("does not speak this link protocol"))
    });
}

/// An edge site has no listeners and links to the edge port.
#[test]
fn an_edge_site_dials_the_edge_port() {
    let west = Node::start("west");
    let mut edge = Node::create("edge", SiteMode::Edge);
    edge.run();
    assert!(edge.rt().listen_addrs().is_empty());
    edge.link_to(&west, "link1");
    wait_until("the edge site is linked", &[&west, &edge], || {
        connected(&edge, "link1", &west)
    });
    assert!(west.log().iter().any(|l| l.contains("on the edge port")));
    edge.ping_link("link1", Duration::from_secs(5)).unwrap();
}

/// Deleting a link (from another handle) stops its dialer and closes the
/// connection; the listening site drops it.
#[test]
fn a_deleted_link_is_dropped_without_a_restart() {
    let west = Node::start("west");
    let east = Node::start("east");
    east.link_to(&west, "link1");
    wait_until("linked", &[&west, &east], || {
        connected(&east, "link1", &west)
    });
    east.other_process().delete_link("link1").unwrap();
    wait_until("west drops the deleted link", &[&west, &east], || {
        !west.has_incoming_from(&east)
    });
    assert!(
        west.log()
            .iter()
            .any(|l| l.contains("closed the link: the link was deleted")),
        "{:#?}",
        west.log()
    );
    assert!(matches!(
        east.ping_link("link1", Duration::from_secs(1)),
        Err(PingError::NoSuchLink { .. })
    ));
    assert_eq!(east.site.status(now()).unwrap().linked_sites, 0);
}

/// A link deleted and made again from the same token (by another handle,
/// between two looks of the runtime at the store) is a new link: its old
/// connection closes, the new one connects and the record says connected,
/// and the listening site holds one incoming link from the site.
#[test]
fn a_link_made_again_from_the_same_token_connects_anew() {
    let west = Node::start("west");
    let east = Node::start("east");
    let token = west.credentials_for(&east);
    east.link_with(&token, "link1");
    wait_until("linked", &[&west, &east], || {
        connected(&east, "link1", &west)
    });
    let first = east.site.link("link1").unwrap();
    let other = east.other_process();
    other.delete_link("link1").unwrap();
    let again = other
        .add_link(
            token.encode().as_bytes(),
            &LinkOptions::default().name("link1"),
            now(),
            &mut OsRandom::new(),
        )
        .unwrap();
    assert_eq!(first.credentials(), again.credentials());
    assert_ne!(first.instance(), again.instance());
    wait_until("the new link connects", &[&west, &east], || {
        east.link_connected("link1") && west.site.incoming().len() == 1
    });
    wait_until("the old dialer stopped", &[&west, &east], || {
        east.count(|e| matches!(e, LinkEvent::DialerStopped { .. })) == 1
    });
    assert_eq!(east.site.status(now()).unwrap().linked_sites, 1);
}

/// `dial_from`: the listening site sees the link come from that address;
/// an endpoint of the other address family is unreachable, and says why.
#[test]
fn links_are_dialed_from_the_address_given() {
    let west = Node::start("west");
    let from = std::net::IpAddr::from([127, 0, 0, 7]);
    let mut east = Node::create("east", SiteMode::Interior);
    let options = RuntimeOptions {
        dial_from: Some(from),
        ..east.options()
    };
    east.try_run_with(options).expect("start east");
    east.link_to(&west, "link1");
    wait_until("linked", &[&west, &east], || {
        connected(&east, "link1", &west)
    });
    let remotes: Vec<SocketAddr> = west
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            LinkEvent::IncomingAccepted { remote, .. } => Some(*remote),
            _ => None,
        })
        .collect();
    assert!(
        !remotes.is_empty() && remotes.iter().all(|r| r.ip() == from),
        "{remotes:?}"
    );

    let mut north = Node::create("north", SiteMode::Interior);
    let options = RuntimeOptions {
        dial_from: Some(std::net::Ipv6Addr::LOCALHOST.into()),
        ..north.options()
    };
    north.try_run_with(options).expect("start north");
    north.link_to(&west, "link1");
    wait_until("north's dial is refused", &[&west, &north], || {
        north
            .reason("link1")
            .contains("links are dialed from ::1, another address family")
    });
}

/// A site's file store on a disk that becomes slow: while `slow` is set,
/// every write of an incoming link's record takes 1.5 s, and every read of
/// the site record 0.8 s (both longer than the heartbeat timeout).
struct SlowDisk {
    store: FileStore,
    slow: std::sync::atomic::AtomicBool,
}

impl SlowDisk {
    fn wait(&self, key: &Key) {
        if key.kind == RecordKind::Incoming && self.slow() {
            std::thread::sleep(Duration::from_millis(1500));
        }
    }

    fn slow(&self) -> bool {
        self.slow.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Store for SlowDisk {
    fn load(&self, key: &Key) -> Result<Option<Versioned<Record>>, StoreError> {
        if key.kind == RecordKind::Site && self.slow() {
            std::thread::sleep(Duration::from_millis(800));
        }
        self.store.load(key)
    }
    fn list(&self, kind: RecordKind) -> Result<Vec<(String, Versioned<Record>)>, StoreError> {
        self.store.list(kind)
    }
    fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Version>,
        new: Option<Record>,
    ) -> Result<Cas, StoreError> {
        self.wait(key);
        self.store.compare_and_swap(key, expected, new)
    }
    fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        self.wait(key);
        self.store.delete(key)
    }
    fn names(&self, kind: RecordKind) -> Result<Vec<String>, StoreError> {
        self.store.names(kind)
    }
}

/// The store calls of a link (checking a certificate against the site
/// record, recording an incoming link) run off the runtime's workers: while
/// west's slow disk holds up east's new link for seconds, north's link to
/// west keeps its heartbeats, even with west's links on a runtime with a
/// single worker.
#[test]
fn a_slow_disk_does_not_stop_other_links_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(SlowDisk {
        store: FileStore::open(dir.path().join("west")).unwrap(),
        slow: std::sync::atomic::AtomicBool::new(false),
    });
    let mut west = Node::create_in("west", SiteMode::Interior, disk.clone(), Some(dir));
    let one_worker = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Time enough for east's slow setup.
    let patient = RuntimeOptions {
        incoming_handshake_timeout: Duration::from_secs(15),
        handshake_timeout: Duration::from_secs(15),
        ..west.options()
    };
    west.try_run_on(one_worker.handle(), patient.clone())
        .expect("start west");
    let north = Node::start("north");
    north.link_to(&west, "link1");
    wait_until("north is linked", &[&west, &north], || {
        connected(&north, "link1", &west)
    });

    disk.slow.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut east = Node::create("east", SiteMode::Interior);
    east.try_run_with(RuntimeOptions {
        inter_router_listen: Some(SocketAddr::from(([127, 0, 0, 1], east.ir_port))),
        edge_listen: Some(SocketAddr::from(([127, 0, 0, 1], east.edge_port))),
        ..patient
    })
    .expect("start east");
    east.link_to(&west, "link1");
    wait_until("east is linked", &[&west, &east], || {
        connected(&east, "link1", &west)
    });
    // One more slow write (the lease renewal, say) while north is watched.
    std::thread::sleep(2 * DEAD_AFTER);
    disk.slow.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        north.count(|e| matches!(e, LinkEvent::LinkDisconnected { .. })),
        0,
        "{:#?}",
        north.log()
    );
    assert!(north.link_connected("link1"));
    assert_eq!(
        west.count(|e| matches!(e, LinkEvent::IncomingClosed { .. })),
        0,
        "{:#?}",
        west.log()
    );
    west.stop();
}

// ---------------------------------------------------------------------------
// OpenSSL
// ---------------------------------------------------------------------------

fn openssl_available() -> bool {
    let found = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_some() {
            panic!("openssl is required (SKUPPER_TOKEN_REQUIRE_TOOLS is set) but was not found");
        }
        eprintln!("note: openssl not found; skipping the OpenSSL interop test");
    }
    found
}

/// Runs `openssl s_client` with `token`'s files, sends `stdin` and
/// collects the output until `done` says so or it exits (bounded).
fn s_client(
    addr: SocketAddr,
    token: &CertToken,
    stdin: &[u8],
    done: impl Fn(&str) -> bool,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca = file("ca.crt", &token.ca_pem);
    let crt = file("tls.crt", &token.cert_pem);
    let key = file("tls.key", token.key_pem.expose());
    let mut child = std::process::Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .arg("-cert")
        .arg(&crt)
        .arg("-key")
        .arg(&key)
        .arg("-CAfile")
        .arg(&ca)
        .args(["-tls1_3", "-verify_return_error", "-verify_ip", "127.0.0.1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let output = Arc::new(Mutex::new(Vec::<u8>::new()));
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|mut r| {
        let output = output.clone();
        std::thread::spawn(move || {
            let mut b = [0u8; 4096];
            while let Ok(n) = r.read(&mut b) {
                if n == 0 {
                    break;
                }
                output.lock().unwrap().extend_from_slice(&b[..n]);
            }
        })
    })
    .collect();
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin);
    let _ = input.flush();
    let text = || String::from_utf8_lossy(&output.lock().unwrap()).into_owned();
    let until = Instant::now() + PATIENCE;
    while Instant::now() < until && !done(&text()) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(input);
    let _ = child.kill();
    let _ = child.wait();
    for r in readers {
        let _ = r.join();
    }
    text()
}

/// (7) `openssl s_client` with the files of a cert token completes the
/// handshake (and can even say hello); with another CA's certificate it is
/// refused.
#[test]
fn openssl_s_client_links_with_a_token_and_is_refused_without_one() {
    if !openssl_available() {
        return;
    }
    let west = Node::start("west");
    let east = Node::create("east", SiteMode::Interior);
    let token = west.credentials_for(&east);
    let hello = frame::encode(&Frame::Hello {
        protocol: frame::PROTOCOL_VERSION,
        site_id: east.id(),
        site_name: "east".into(),
        link: "link1".into(),
    });
    let out = s_client(west.ir_addr(), &token, &hello, |o| o.contains("hello-ack"));
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(out.contains("TLSv1.3"), "{out}");
    assert!(out.contains("\"type\":\"hello-ack\""), "{out}");
    assert!(
        west.count(|e| matches!(e, LinkEvent::IncomingAccepted { peer_site_name, .. } if peer_site_name == "east")) == 1,
        "{:#?}",
        west.log()
    );

    // Another CA's certificate, trusting west's CA for the server.
    let mallory = Node::create("mallory", SiteMode::Interior);
    let mut foreign = mallory.credentials_for(&east);
    foreign.ca_pem = west.ca_pem();
    let out = s_client(west.ir_addr(), &foreign, &hello, |_| false);
    assert!(!out.contains("hello-ack"), "{out}");
    assert!(out.to_lowercase().contains("alert"), "{out}");
    assert!(out.to_lowercase().contains("unknown ca"), "{out}");
    wait_until("west logs the refusal", &[&west], || {
        west.log()
            .iter()
            .any(|l| l.contains("refused") && l.contains("not this site's current CA"))
    });
}

/// A revocation notice the dialer cannot verify (signed by another CA) is
/// ignored: the link does not say "access revoked".
#[test]
fn a_forged_revocation_notice_is_ignored() {
    let west = Node::create("west", SiteMode::Interior);
    let east = Node::create("east", SiteMode::Interior);
    let mallory = Node::create("mallory", SiteMode::Interior);
    let token = west.credentials_for(&east);
    let serial = skupper_token::pki::certificate_info(
        &skupper_token::pki::pem_to_der(&token.cert_pem).unwrap(),
    )
    .unwrap()
    .serial_hex;
    let notice = notice::RevokeNotice {
        issuer_site_id: west.id(),
        issuer_site_name: "west".into(),
        at: time::macros::datetime!(2026-11-28 11:00 UTC),
        certificate_serial: serial,
        revoked: notice::Revoked::AccessRevoked { ca_generation: 2 },
    };
    let mallory_key = mallory.site.record().unwrap().ca.unwrap().key_pem;
    let mallory_signer = mallory
        .site
        .key_backend()
        .p256_signer(&skupper_token::pki::PrivateKey::from_pem(&mallory_key).unwrap())
        .unwrap();
    let forged = notice.sign(&*mallory_signer).unwrap();
    let fake = fake_listener(&west, move |mut stream| {
        let frame = Frame::from(forged);
        stream.write_all(&frame::encode(&frame)).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    let mut east = east;
    east.link_with(&token, "link1");
    east.run();
    wait_until("east ignores the notice", &[&east], || {
        east.count(|e| matches!(e, LinkEvent::RevocationIgnored { .. })) == 1
    });
    assert!(east
        .log()
        .iter()
        .any(|l| l.contains("does not verify with the CA certificate in this link's token")));
    assert_eq!(
        east.count(|e| matches!(e, LinkEvent::RevocationReceived { .. })),
        0
    );
    fake.join().unwrap();
    wait_until("east sees the fake west go", &[&east], || {
        !east.link_connected("link1")
    });
    assert!(!east.reason("link1").starts_with("access revoked"));
}
