//! The core's link connection driven over real TLS on loopback with tokio
//! and tokio-rustls: both ends run `runtime::driver::drive`.
// Tests run on the real clock (rustls checks the certificates against it).
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use skupper_token::pki::{pem_to_der, PrivateKey};
use skupper_token::protocol::{CloseReason, Connection, Event, LocalSite, Timing};
use skupper_token::random::SeededRandom;
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::token::Token;
use skupper_token_cli::runtime::driver::{drive, Clock, Command, Handler, PingError};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The certificates are checked by rustls against the real clock, so the
/// site is made with the real time; the connections' `now` starts there too.
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn timing() -> Timing {
    Timing {
        heartbeat: time::Duration::milliseconds(50),
        dead_after: time::Duration::milliseconds(300),
        setup: time::Duration::seconds(5),
        linger: time::Duration::milliseconds(200),
    }
}

struct Tls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

/// West's CA and server certificate, and a cert token for east.
fn tls() -> Tls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let west = Site::create(
        MemoryStore::new(),
        &SiteConfig::new("west"),
        now(),
        &mut SeededRandom::new(1),
    )
    .unwrap();
    let (ca_pem, server) = west.server_credentials().unwrap().unwrap();
    let Token::Cert(token) = west
        .create_token(&TokenOptions::cert(), now(), &mut SeededRandom::new(2))
        .unwrap()
    else {
        panic!("a cert token")
    };
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(pem_to_der(&ca_pem).unwrap()))
        .unwrap();
    let roots = Arc::new(roots);
    let key =
        |k: &PrivateKey| PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.pkcs8_der().to_vec()));
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .unwrap();
    let server_config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server.cert_der.clone())],
            key(&server.key),
        )
        .unwrap();
    let client_key = PrivateKey::from_pem(token.key_pem.expose()).unwrap();
    let client_config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from(pem_to_der(&token.cert_pem).unwrap())],
            key(&client_key),
        )
        .unwrap();
    Tls {
        acceptor: TlsAcceptor::from(Arc::new(server_config)),
        connector: TlsConnector::from(Arc::new(client_config)),
    }
}

/// Accepts every hello, and closes on a revocation notice (as a dialer
/// that verified it would); records what it saw.
#[derive(Default)]
struct Recorder {
    events: Vec<Event>,
    refuse: Option<String>,
}

impl Handler for Recorder {
    async fn on_event(&mut self, event: Event, conn: &mut Connection, now: OffsetDateTime) {
        match &event {
            Event::Hello(_) => match &self.refuse {
                Some(reason) => conn.refuse(now, reason).unwrap(),
                None => conn.accept(now).unwrap(),
            },
            Event::RevokeNotice { .. } => conn.close(now, "access revoked"),
            _ => {}
        }
        self.events.push(event);
    }
}

struct End {
    commands: mpsc::Sender<Command>,
    done: tokio::task::JoinHandle<(CloseReason, Recorder)>,
}

/// West listens, east dials; both ends driven.
async fn pair(refuse: Option<String>) -> (End, End) {
    let tls = tls();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let acceptor = tls.acceptor.clone();
    let (west_tx, west_rx) = mpsc::channel(8);
    let west = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let stream = acceptor.accept(tcp).await.unwrap();
        let clock = Clock::new(now());
        let conn = Connection::listen(clock.now(), site("west-id", "west"), timing());
        let mut recorder = Recorder {
            refuse,
            ..Recorder::default()
        };
        let reason = drive(
            conn,
            stream,
            clock,
            Duration::from_secs(1),
            west_rx,
            &mut recorder,
        )
        .await;
        (reason, recorder)
    });
    let (east_tx, east_rx) = mpsc::channel(8);
    let connector = tls.connector.clone();
    let east = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::IpAddress(addr.ip().into());
        let stream = connector.connect(name, tcp).await.unwrap();
        let clock = Clock::new(now());
        let conn = Connection::dial(
            clock.now(),
            site("east-id", "east"),
            "link1",
            "west-id",
            timing(),
        );
        let mut recorder = Recorder::default();
        let reason = drive(
            conn,
            stream,
            clock,
            Duration::from_secs(1),
            east_rx,
            &mut recorder,
        )
        .await;
        (reason, recorder)
    });
    (
        End {
            commands: west_tx,
            done: west,
        },
        End {
            commands: east_tx,
            done: east,
        },
    )
}

fn site(id: &str, name: &str) -> LocalSite {
    LocalSite {
        site_id: id.into(),
        site_name: name.into(),
    }
}

async fn ping(end: &End) -> Result<Duration, PingError> {
    let (reply, answer) = oneshot::channel();
    end.commands.send(Command::Ping { reply }).await.unwrap();
    answer.await.unwrap()
}

/// Pings until the link is up (the hello exchange takes a moment).
async fn ping_until_up(end: &End) -> Duration {
    for _ in 0..100 {
        match ping(end).await {
            Ok(rtt) => return rtt,
            Err(PingError::NotConnected) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("ping: {e}"),
        }
    }
    panic!("the link never came up");
}

#[tokio::test]
async fn a_link_comes_up_carries_pings_both_ways_and_closes_with_a_goodbye() {
    let (west, east) = pair(None).await;
    ping_until_up(&east).await;
    ping_until_up(&west).await;
    // Heartbeats keep it up well past the dead-peer time.
    tokio::time::sleep(Duration::from_millis(900)).await;
    ping(&east).await.expect("still up");
    east.commands
        .send(Command::Close {
            reason: "the link was deleted".into(),
        })
        .await
        .unwrap();
    let (west_reason, west_seen) = west.done.await.unwrap();
    let (east_reason, east_seen) = east.done.await.unwrap();
    assert_eq!(
        west_reason,
        CloseReason::Bye {
            reason: "the link was deleted".into()
        }
    );
    assert_eq!(
        east_reason,
        CloseReason::Local {
            reason: "the link was deleted".into()
        }
    );
    assert!(east_seen.events.contains(&Event::Connected {
        remote_site_id: "west-id".into(),
        remote_site_name: "west".into()
    }));
    assert!(
        matches!(&west_seen.events[0], Event::Hello(h) if h.site_id == "east-id" && h.link == "link1")
    );
}

#[tokio::test]
async fn a_refused_hello_reaches_the_dialer_with_the_reason() {
    let (west, east) = pair(Some("this site revoked access for \"east-id\"".into())).await;
    let (east_reason, _) = east.done.await.unwrap();
    assert_eq!(
        east_reason,
        CloseReason::Refused {
            reason: "this site revoked access for \"east-id\"".into()
        }
    );
    let (west_reason, _) = west.done.await.unwrap();
    assert!(
        matches!(&west_reason, CloseReason::Local { reason } if reason.starts_with("link refused: ")),
        "{west_reason:?}"
    );
}

#[tokio::test]
async fn a_revocation_notice_closes_the_link_on_both_sides() {
    let (west, east) = pair(None).await;
    ping_until_up(&east).await;
    west.commands
        .send(Command::RevokeNotice {
            payload: "{}".into(),
            signature: "00".into(),
        })
        .await
        .unwrap();
    let (east_reason, east_seen) = east.done.await.unwrap();
    assert!(east_seen.events.contains(&Event::RevokeNotice {
        payload: "{}".into(),
        signature: "00".into()
    }));
    assert_eq!(
        east_reason,
        CloseReason::Local {
            reason: "access revoked".into()
        }
    );
    let (west_reason, _) = west.done.await.unwrap();
    assert_eq!(
        west_reason,
        CloseReason::Local {
            reason: "access revoked".into()
        }
    );
}

#[tokio::test]
async fn a_frame_several_read_buffers_long_arrives_whole() {
    // The driver reads 2 KiB at a time; a notice near its 8 KiB limit
    // arrives in several reads and is reassembled.
    let payload = format!("{{\"pad\":\"{}\"}}", "x".repeat(7 * 1024));
    let (west, east) = pair(None).await;
    ping_until_up(&east).await;
    west.commands
        .send(Command::RevokeNotice {
            payload: payload.clone(),
            signature: "00".into(),
        })
        .await
        .unwrap();
    let (east_reason, east_seen) = east.done.await.unwrap();
    assert!(east_seen.events.contains(&Event::RevokeNotice {
        payload,
        signature: "00".into()
    }));
    assert_eq!(
        east_reason,
        CloseReason::Local {
            reason: "access revoked".into()
        }
    );
    let _ = west.done.await.unwrap();
}

#[tokio::test]
async fn a_peer_that_goes_silent_is_dead_after_dead_after() {
    // West completes TLS and the hello by hand, then never sends again.
    let tls = tls();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls.acceptor.clone();
    let silent = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (tcp, _) = listener.accept().await.unwrap();
        let mut stream = acceptor.accept(tcp).await.unwrap();
        let start = now();
        let mut conn = Connection::listen(start, site("west-id", "west"), timing());
        let mut buf = [0u8; 4096];
        while !matches!(conn.poll_event(), Some(Event::Hello(_))) {
            let n = stream.read(&mut buf).await.unwrap();
            conn.handle_input(start, &buf[..n]);
        }
        conn.accept(start).unwrap();
        while let Some(bytes) = conn.poll_transmit() {
            stream.write_all(&bytes).await.unwrap();
        }
        stream.flush().await.unwrap();
        // Keep the connection open, reading and ignoring.
        while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let stream = tls
        .connector
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .unwrap();
    let clock = Clock::new(now());
    let conn = Connection::dial(
        clock.now(),
        site("east-id", "east"),
        "link1",
        "west-id",
        timing(),
    );
    let (_commands, rx) = mpsc::channel(1);
    let mut recorder = Recorder::default();
    let reason = drive(
        conn,
        stream,
        clock,
        Duration::from_secs(1),
        rx,
        &mut recorder,
    )
    .await;
    match reason {
        CloseReason::Dead { silent } => assert!(silent >= timing().dead_after, "{silent}"),
        other => panic!("expected a dead peer, got {other:?}"),
    }
    assert!(recorder
        .events
        .iter()
        .any(|e| matches!(e, Event::Connected { .. })));
    silent.abort();
}

#[tokio::test]
async fn a_late_wake_up_reads_the_waiting_heartbeats_before_declaring_the_peer_dead() {
    // East's runtime (this test's, one thread) is blocked for twice its
    // dead-peer time, again and again, as a runtime busy with thousands of
    // handshakes is; west (patient, on a thread of its own) keeps sending
    // heartbeats meanwhile. When east wakes, its timer is overdue but the
    // heartbeats are in the socket: the link must stay up.
    let tls = tls();
    let acceptor = tls.acceptor.clone();
    let (west_tx, west_rx) = mpsc::channel(8);
    let (bound, west_addr) = std::sync::mpsc::channel();
    let west = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            bound.send(listener.local_addr().unwrap()).unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let stream = acceptor.accept(tcp).await.unwrap();
            let clock = Clock::new(now());
            let patient = Timing {
                dead_after: time::Duration::seconds(30),
                ..timing()
            };
            let conn = Connection::listen(clock.now(), site("west-id", "west"), patient);
            drive(
                conn,
                stream,
                clock,
                Duration::from_secs(30),
                west_rx,
                &mut Recorder::default(),
            )
            .await
        })
    });
    let addr: SocketAddr = west_addr.recv().unwrap();
    let (east_tx, east_rx) = mpsc::channel(8);
    let connector = tls.connector.clone();
    let east = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::IpAddress(addr.ip().into());
        let stream = connector.connect(name, tcp).await.unwrap();
        let clock = Clock::new(now());
        let conn = Connection::dial(
            clock.now(),
            site("east-id", "east"),
            "link1",
            "west-id",
            timing(),
        );
        drive(
            conn,
            stream,
            clock,
            Duration::from_secs(1),
            east_rx,
            &mut Recorder::default(),
        )
        .await
    });
    let east = End {
        commands: east_tx,
        done: tokio::spawn(async move { (east.await.unwrap(), Recorder::default()) }),
    };
    ping_until_up(&east).await;
    // Each stall has even odds of closing the link when the timer may be
    // polled first: eight stalls, one chance in 256 of missing that.
    for stall in 0..8 {
        std::thread::sleep(2 * Duration::from_millis(300));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !east.done.is_finished(),
            "east closed the link after stall {stall}"
        );
        ping(&east)
            .await
            .unwrap_or_else(|e| panic!("ping after stall {stall}: {e}"));
    }
    east.commands
        .send(Command::Close {
            reason: "done".into(),
        })
        .await
        .unwrap();
    let (reason, _) = east.done.await.unwrap();
    assert_eq!(
        reason,
        CloseReason::Local {
            reason: "done".into()
        }
    );
    drop(west_tx);
    let _ = west.join().unwrap();
}
