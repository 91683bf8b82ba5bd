//! The link protocol's connection state machine, two ends wired together
//! in memory with a virtual clock: hello, acceptance and refusal,
//! heartbeats, dead peers, pings, goodbyes and revocation notices.

use skupper_token::protocol::connection::{
    CloseReason, Connection, Event, LocalSite, StateError, Timing,
};
use skupper_token::protocol::frame::{self, Frame};
use skupper_token::site::PeerHello;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const WEST: &str = "west-id";
const EAST: &str = "east-id";

fn site(id: &str, name: &str) -> LocalSite {
    LocalSite {
        site_id: id.into(),
        site_name: name.into(),
    }
}

/// East dials west; bytes move only when the test says so.
struct Pair {
    now: OffsetDateTime,
    dialer: Connection,
    listener: Connection,
    dialer_events: Vec<Event>,
    listener_events: Vec<Event>,
    /// Whether bytes from the listener reach the dialer.
    listener_to_dialer: bool,
    /// Whether bytes from the dialer reach the listener.
    dialer_to_listener: bool,
}

impl Pair {
    fn new() -> Pair {
        let now = datetime!(2026-12-01 10:00 UTC);
        let timing = Timing::default();
        Pair {
            now,
            dialer: Connection::dial(now, site(EAST, "east"), "link1", WEST, timing),
            listener: Connection::listen(now, site(WEST, "west"), timing),
            dialer_events: Vec::new(),
            listener_events: Vec::new(),
            listener_to_dialer: true,
            dialer_to_listener: true,
        }
    }

    /// Moves every queued byte (one byte at a time, to check reassembly)
    /// and every event, until nothing moves.
    fn drain(&mut self) {
        loop {
            let mut moved = false;
            while let Some(bytes) = self.dialer.poll_transmit() {
                moved = true;
                if self.dialer_to_listener {
                    for b in &bytes {
                        self.listener
                            .handle_input(self.now, std::slice::from_ref(b));
                    }
                }
            }
            while let Some(bytes) = self.listener.poll_transmit() {
                moved = true;
                if self.listener_to_dialer {
                    self.dialer.handle_input(self.now, &bytes);
                }
            }
            while let Some(e) = self.dialer.poll_event() {
                moved = true;
                self.dialer_events.push(e);
            }
            while let Some(e) = self.listener.poll_event() {
                moved = true;
                self.listener_events.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    /// Advances the virtual clock by `d`, firing every timer on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.drain();
            let next = [self.dialer.poll_timeout(), self.listener.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = t.max(self.now);
                    self.dialer.handle_timeout(self.now);
                    self.listener.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = end;
        self.dialer.handle_timeout(end);
        self.listener.handle_timeout(end);
        self.drain();
    }

    fn hello(&self) -> PeerHello {
        match self.listener_events.first() {
            Some(Event::Hello(h)) => h.clone(),
            other => panic!("expected a hello, got {other:?}"),
        }
    }

    /// Connects: hello, accept, ack.
    fn connect() -> Pair {
        let mut p = Pair::new();
        p.drain();
        p.listener.accept(p.now).unwrap();
        p.drain();
        p
    }
}

fn connected(remote_id: &str, remote_name: &str) -> Event {
    Event::Connected {
        remote_site_id: remote_id.into(),
        remote_site_name: remote_name.into(),
    }
}

#[test]
fn the_hello_names_the_dialing_site_and_its_link_and_the_listener_decides() {
    let mut p = Pair::new();
    p.drain();
    assert_eq!(
        p.hello(),
        PeerHello {
            site_id: EAST.into(),
            site_name: "east".into(),
            link: "link1".into(),
        }
    );
    assert!(!p.dialer.is_connected());
    assert!(!p.listener.is_connected());
    p.listener.accept(p.now).unwrap();
    p.drain();
    assert_eq!(p.dialer_events, [connected(WEST, "west")]);
    assert_eq!(p.listener_events[1..], [connected(EAST, "east")]);
    assert_eq!(p.dialer.remote_site_id(), Some(WEST));
    assert_eq!(p.listener.remote_site_id(), Some(EAST));
}

#[test]
fn a_refused_link_tells_the_dialer_why() {
    let mut p = Pair::new();
    p.drain();
    p.listener
        .refuse(p.now, "this site revoked access for \"east-id\"")
        .unwrap();
    p.drain();
    assert_eq!(
        p.dialer_events,
        [Event::Closed(CloseReason::Refused {
            reason: "this site revoked access for \"east-id\"".into()
        })]
    );
    assert_eq!(
        p.dialer_events[0].to_string(),
        "closed: certificate rejected by the remote site: this site revoked access for \"east-id\""
    );
    // The listener waits for the dialer to close, then is done.
    assert!(!p.listener.is_closed());
    p.listener.handle_eof(p.now);
    p.drain();
    assert!(matches!(
        p.listener_events.last(),
        Some(Event::Closed(CloseReason::Local { reason })) if reason.starts_with("link refused: ")
    ));
}

#[test]
fn an_answer_from_another_site_is_not_a_link() {
    let mut p = Pair::new();
    p.listener = Connection::listen(p.now, site("north-id", "north"), Timing::default());
    p.drain();
    p.listener.accept(p.now).unwrap();
    p.drain();
    assert_eq!(
        p.dialer_events,
        [Event::Closed(CloseReason::WrongSite {
            expected: WEST.into(),
            actual: "north-id".into(),
        })]
    );
    assert!(!p.dialer.is_connected());
}

#[test]
fn a_link_that_knows_its_site_by_ca_takes_the_id_the_listener_says() {
    // A link made from a Skupper 2.x file: TLS checked the listener
    // against the link's CA, the hello says which site it is.
    let mut p = Pair::new();
    let by_ca = format!(
        "{}{}",
        skupper_token::link::CA_SITE_ID_PREFIX,
        "ab".repeat(32)
    );
    p.dialer = Connection::dial(p.now, site(EAST, "east"), "link1", by_ca, Timing::default());
    p.drain();
    p.listener.accept(p.now).unwrap();
    p.drain();
    assert_eq!(
        p.dialer_events,
        [Event::Connected {
            remote_site_id: WEST.into(),
            remote_site_name: "west".into(),
        }]
    );
    assert_eq!(p.dialer.remote_site_id(), Some(WEST));
}

#[test]
fn a_link_that_knows_its_site_by_ca_refuses_an_unusable_site_id() {
    let now = datetime!(2026-12-01 10:00 UTC);
    let by_ca = format!(
        "{}{}",
        skupper_token::link::CA_SITE_ID_PREFIX,
        "ab".repeat(32)
    );
    let mut dialer = Connection::dial(now, site(EAST, "east"), "link1", by_ca, Timing::default());
    while dialer.poll_transmit().is_some() {}
    dialer.handle_input(
        now,
        &frame::encode(&Frame::HelloAck {
            protocol: 1,
            site_id: "x".repeat(65),
            site_name: "west".into(),
        }),
    );
    let events: Vec<_> = std::iter::from_fn(|| dialer.poll_event()).collect();
    assert!(
        matches!(
            &events[..],
            [Event::Closed(CloseReason::Protocol { reason })]
                if reason.starts_with("the hello's site id is not usable: ")
        ),
        "{events:?}"
    );
    assert!(!dialer.is_connected());
}

#[test]
fn hellos_with_control_characters_or_huge_names_are_refused_without_asking() {
    for (id, name) in [
        ("east\n-id", "east"),
        (EAST, &*"e".repeat(254)),
        ("", "east"),
    ] {
        let now = datetime!(2026-12-01 10:00 UTC);
        let mut listener = Connection::listen(now, site(WEST, "west"), Timing::default());
        listener.handle_input(
            now,
            &frame::encode(&Frame::Hello {
                protocol: 1,
                site_id: id.into(),
                site_name: name.into(),
                link: "link1".into(),
            }),
        );
        let Some(bytes) = listener.poll_transmit() else {
            panic!("no answer to {id:?}");
        };
        let mut buf = frame::FrameBuf::new();
        buf.push(&bytes);
        assert!(
            matches!(buf.next_frame(), Ok(Some(Frame::Refused { reason })) if reason.starts_with("the hello's ")),
            "{id:?}"
        );
        assert_eq!(listener.poll_event(), None, "the driver is not asked");
    }
}

/// The hello's site id follows the rule for the site id a claim's
/// certificate is issued to: at most 64 characters (a certificate's common
/// name), so an id no certificate could name is refused before the driver
/// is asked.
#[test]
fn a_hello_site_id_no_certificate_could_name_is_refused() {
    let now = datetime!(2026-12-01 10:00 UTC);
    let refusal = |id: String| {
        let mut listener = Connection::listen(now, site(WEST, "west"), Timing::default());
        listener.handle_input(
            now,
            &frame::encode(&Frame::Hello {
                protocol: 1,
                site_id: id,
                site_name: "east".into(),
                link: "link1".into(),
            }),
        );
        let mut buf = frame::FrameBuf::new();
        if let Some(bytes) = listener.poll_transmit() {
            buf.push(&bytes);
        }
        (buf.next_frame(), listener.poll_event())
    };
    let (answer, event) = refusal("a".repeat(65));
    assert_eq!(
        answer,
        Ok(Some(Frame::Refused {
            reason: "the hello's site id is not usable: the site id is 65 characters long; a site id is at most 64 (the longest common name a certificate may have)".into()
        }))
    );
    assert_eq!(event, None, "the driver is not asked");
    let (answer, event) = refusal("east site".into());
    assert_eq!(
        answer,
        Ok(Some(Frame::Refused {
            reason: "the hello's site id is not usable: the site id has ' ' at position 5; a site id is printable ASCII: letters, digits and punctuation, no spaces or control characters".into()
        }))
    );
    assert_eq!(event, None);
    // 64 characters is a site id.
    let (answer, event) = refusal("a".repeat(64));
    assert_eq!(answer, Ok(None));
    assert!(matches!(event, Some(Event::Hello(_))), "{event:?}");
}

#[test]
fn heartbeats_keep_a_quiet_link_up() {
    let mut p = Pair::connect();
    p.advance(Duration::minutes(5));
    assert!(p.dialer.is_connected());
    assert!(p.listener.is_connected());
    assert_eq!(p.dialer_events, [connected(WEST, "west")]);
}

#[test]
fn a_silent_peer_is_dead_after_dead_after() {
    let mut p = Pair::connect();
    p.listener_to_dialer = false; // west stops answering (SIGSTOP)
    let start = p.now;
    p.advance(Duration::seconds(4));
    let closed = p
        .dialer_events
        .iter()
        .find_map(|e| match e {
            Event::Closed(CloseReason::Dead { silent }) => Some(*silent),
            _ => None,
        })
        .expect("the dialer notices");
    assert_eq!(closed, Timing::default().dead_after);
    assert!(p.dialer.is_closed());
    assert!(p.now - start >= closed);
    // West still hears east's heartbeats until east stops.
    assert!(p.listener.is_connected());
}

#[test]
fn a_listener_that_takes_long_to_decide_does_not_count_it_as_silence() {
    let mut p = Pair::new();
    p.drain();
    // West's disk is slow: recording the link takes longer than the
    // dead-peer time (but less than the setup time).
    p.now += Timing::default().dead_after + Duration::seconds(2);
    p.listener.accept(p.now).unwrap();
    p.drain();
    p.advance(Duration::seconds(2));
    assert!(p.listener.is_connected(), "{:?}", p.listener_events);
    assert!(p.dialer.is_connected(), "{:?}", p.dialer_events);
}

#[test]
fn a_setup_that_never_finishes_times_out() {
    let mut p = Pair::new();
    p.drain();
    // The listener never decides.
    p.advance(Duration::seconds(11));
    let setup = Timing::default().setup;
    assert_eq!(
        p.dialer_events,
        [Event::Closed(CloseReason::SetupTimeout { after: setup })]
    );
    assert!(matches!(
        p.listener_events.last(),
        Some(Event::Closed(CloseReason::SetupTimeout { .. }))
    ));
    assert_eq!(
        p.listener.accept(p.now),
        Err(StateError::NotConnected { state: "closed" })
    );
}

#[test]
fn pings_both_ways_measure_the_round_trip() {
    let mut p = Pair::connect();
    let id = p.dialer.ping(p.now).unwrap();
    p.drain();
    assert_eq!(
        p.dialer_events.last(),
        Some(&Event::Pong {
            id,
            rtt: Duration::ZERO
        })
    );
    let id = p.listener.ping(p.now).unwrap();
    p.drain();
    assert!(matches!(p.listener_events.last(), Some(Event::Pong { id: got, .. }) if *got == id));
}

#[test]
fn a_ping_without_answer_is_lost() {
    let mut p = Pair::connect();
    p.listener_to_dialer = false;
    let id = p.dialer.ping(p.now).unwrap();
    p.advance(Duration::seconds(5));
    assert!(p.dialer_events.contains(&Event::PingLost { id }));
}

#[test]
fn pinging_a_link_that_is_not_up_is_an_error() {
    let mut p = Pair::new();
    assert_eq!(
        p.dialer.ping(p.now),
        Err(StateError::NotConnected {
            state: "setting up"
        })
    );
}

#[test]
fn goodbye_closes_both_ends_with_the_reason() {
    let mut p = Pair::connect();
    p.dialer.close(p.now, "the link was deleted");
    p.drain();
    assert_eq!(
        p.listener_events.last(),
        Some(&Event::Closed(CloseReason::Bye {
            reason: "the link was deleted".into()
        }))
    );
    // The dialer lingers for the listener's close, at most `linger`.
    assert!(!p.dialer.is_closed());
    p.advance(Timing::default().linger);
    assert_eq!(
        p.dialer_events.last(),
        Some(&Event::Closed(CloseReason::Local {
            reason: "the link was deleted".into()
        }))
    );
    assert_eq!(p.dialer.poll_timeout(), None);
}

#[test]
fn the_peer_closing_without_goodbye_is_reported() {
    let mut p = Pair::connect();
    p.dialer.handle_eof(p.now);
    p.drain();
    assert_eq!(
        p.dialer_events.last(),
        Some(&Event::Closed(CloseReason::PeerClosed))
    );
}

#[test]
fn a_revocation_notice_reaches_the_dialer_for_checking() {
    let mut p = Pair::connect();
    p.listener
        .send_revoke_notice(p.now, "{\"at\":\"x\"}".into(), "3045".into())
        .unwrap();
    p.drain();
    assert_eq!(
        p.dialer_events.last(),
        Some(&Event::RevokeNotice {
            payload: "{\"at\":\"x\"}".into(),
            signature: "3045".into()
        })
    );
    // Only the listener sends notices.
    assert_eq!(
        p.dialer
            .send_revoke_notice(p.now, String::new(), String::new()),
        Err(StateError::WrongSide { side: "listening" })
    );
    // The dialer, having checked it, closes.
    p.dialer.close(p.now, "access revoked");
    p.drain();
    assert!(matches!(
        p.listener_events.last(),
        Some(Event::Closed(CloseReason::Local { .. }))
    ));
}

#[test]
fn bytes_that_are_not_frames_close_the_connection() {
    let now = datetime!(2026-12-01 10:00 UTC);
    let mut listener = Connection::listen(now, site(WEST, "west"), Timing::default());
    listener.handle_input(now, b"GET / HTTP/1.1\r\n");
    assert!(matches!(
        listener.poll_event(),
        Some(Event::Closed(CloseReason::Protocol { .. }))
    ));
    assert!(listener.is_closed());
}

#[test]
fn frames_of_later_versions_are_ignored_once_linked() {
    let mut p = Pair::connect();
    let body = br#"{"type":"from-the-future","x":1}"#;
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    p.listener.handle_input(p.now, &bytes);
    p.drain();
    assert!(p.listener.is_connected());
}
