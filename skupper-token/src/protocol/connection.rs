//! One link connection above TLS, as a state machine that does no I/O.
//!
//! See [`Connection`] for the drive loop.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use time::{Duration, OffsetDateTime};

use super::frame::{self, Frame, FrameBuf, FrameError, PROTOCOL_VERSION};
use super::printable::{printable, printable_text};
use crate::site::PeerHello;

/// Heartbeat, liveness and setup timing of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Each side sends a heartbeat this often once the link is up
    /// (default 1 s).
    pub heartbeat: Duration,
    /// A link with nothing received for this long is dead (default 3 s).
    /// Longer than `heartbeat`.
    pub dead_after: Duration,
    /// The hello exchange must finish within this long of the connection
    /// (default 10 s).
    pub setup: Duration,
    /// After sending a goodbye, how long to wait for the peer to close its
    /// side before giving up on it (default 1 s).
    pub linger: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::seconds(1),
            dead_after: Duration::seconds(3),
            setup: Duration::seconds(10),
            linger: Duration::seconds(1),
        }
    }
}

/// Who this side of the connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSite {
    /// This site's id.
    pub site_id: String,
    /// This site's name.
    pub site_name: String,
}

/// What the connection tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Listener: the dialing site said who it is. Decide with
    /// [`Connection::accept`] (after checking its certificate against the
    /// hello, for example with `Site::accept_incoming`) or
    /// [`Connection::refuse`]. Nothing else happens until then, except the
    /// setup deadline.
    Hello(PeerHello),
    /// The link is up: the dialer got the listener's acknowledgement (and
    /// the listener is the site its token is from), or the listener
    /// accepted the hello.
    Connected {
        /// The other site's id.
        remote_site_id: String,
        /// The other site's name.
        remote_site_name: String,
    },
    /// The answer to [`Connection::ping`].
    Pong {
        /// The ping's id.
        id: u64,
        /// The round trip.
        rtt: Duration,
    },
    /// A ping got no answer within [`Timing::dead_after`].
    PingLost {
        /// The ping's id.
        id: u64,
    },
    /// Dialer: the listener sent a signed revocation notice. The
    /// connection cannot check it (it does not know the CA); the driver
    /// verifies it against the link's token
    /// ([`SignedNotice::verify`](super::notice::SignedNotice::verify)) and,
    /// if it is genuine, records
    /// the revocation and calls [`Connection::close`]. A notice that does
    /// not verify is to be ignored.
    RevokeNotice {
        /// The notice, exactly as signed.
        payload: String,
        /// Its signature, hex.
        signature: String,
    },
    /// The connection is over: send what [`Connection::poll_transmit`]
    /// still gives, then TLS close_notify, and close the socket. The last
    /// event.
    Closed(CloseReason),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// Dialer: the listener refused the link.
    #[error("certificate rejected by the remote site: {reason}")]
    Refused {
        /// The listener's reason.
        reason: String,
    },
    /// Dialer: the listener is another site than the one the token is from.
    #[error("the remote site is {actual}, not {expected} (the site this link's token is from)")]
    WrongSite {
        /// The token's site id.
        expected: String,
        /// The site id the listener gave.
        actual: String,
    },
    /// The peer said goodbye.
    #[error("the remote site closed the link: {reason}")]
    Bye {
        /// The peer's reason.
        reason: String,
    },
    /// The peer closed the connection without a goodbye.
    #[error("the remote site closed the connection")]
    PeerClosed,
    /// Nothing arrived for [`Timing::dead_after`].
    #[error("heartbeat timeout: nothing received for {silent}")]
    Dead {
        /// How long the peer was silent.
        silent: Duration,
    },
    /// The hello exchange did not finish within [`Timing::setup`].
    #[error("the link was not set up within {after} of connecting")]
    SetupTimeout {
        /// The setup time allowed.
        after: Duration,
    },
    /// The peer does not speak this protocol.
    #[error("the remote side does not speak this link protocol: {reason}")]
    Protocol {
        /// What it sent.
        reason: String,
    },
    /// The connection under the link broke (reported by the driver with
    /// [`Connection::handle_transport_error`]).
    #[error("connection lost: {reason}")]
    Transport {
        /// What the driver saw.
        reason: String,
    },
    /// This side closed it ([`Connection::close`], [`Connection::refuse`],
    /// or a goodbye sent after a revocation notice).
    #[error("closed by this site: {reason}")]
    Local {
        /// Why.
        reason: String,
    },
}

/// A call that does not fit the connection's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The call needs a link that is up.
    #[error("the link is not up (it is {state})")]
    NotConnected {
        /// The connection's state.
        state: &'static str,
    },
    /// The call is for the other side of the connection.
    #[error("only the {side} side can do that")]
    WrongSide {
        /// The side that can.
        side: &'static str,
    },
}

/// Which end of the connection this is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Side {
    /// Made the connection for its outgoing link `link`, to the site
    /// `expected_site_id` its token is from.
    Dialer {
        link: String,
        expected_site_id: String,
    },
    /// Accepted it.
    Listener,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Dialer: hello sent, waiting for the answer.
    AwaitingAck { deadline: OffsetDateTime },
    /// Listener: waiting for the hello.
    AwaitingHello { deadline: OffsetDateTime },
    /// Listener: hello reported, waiting for the driver's decision.
    Deciding {
        deadline: OffsetDateTime,
        hello: PeerHello,
    },
    /// The link is up.
    Established {
        next_heartbeat: OffsetDateTime,
        remote_site_id: String,
    },
    /// A goodbye (or refusal, or notice) is queued; waiting for the peer
    /// to close, at most until `until`.
    Closing {
        until: OffsetDateTime,
        reason: CloseReason,
    },
    /// Over; [`Event::Closed`] was queued.
    Closed,
}

impl State {
    fn label(&self) -> &'static str {
        match self {
            State::AwaitingAck { .. } | State::AwaitingHello { .. } | State::Deciding { .. } => {
                "setting up"
            }
            State::Established { .. } => "connected",
            State::Closing { .. } => "closing",
            State::Closed => "closed",
        }
    }
}

/// One link connection, above TLS, in either direction: the hello and its
/// checks, heartbeats both ways, dead-peer detection, pings, goodbyes and
/// revocation notices. It does no I/O and reads no clock.
///
/// # Driving it
///
/// The driver owns the TLS session and the socket and feeds plaintext in
/// and out:
///
/// 1. Make it with [`Connection::dial`] (after the TLS handshake of an
///    outgoing link) or [`Connection::listen`] (after accepting one).
/// 2. Whenever plaintext arrives, call [`Connection::handle_input`]; when
///    the peer closes (TLS close_notify or end of stream),
///    [`Connection::handle_eof`]; when the time of
///    [`Connection::poll_timeout`] comes, [`Connection::handle_timeout`].
///    Calls of its own ([`Connection::ping`], [`Connection::close`], ...)
///    may come at any time.
/// 3. **Drain rule**: after every one of those calls, write every buffer
///    [`Connection::poll_transmit`] gives (in order) to the TLS session,
///    handle every [`Connection::poll_event`], and re-arm the timer to
///    [`Connection::poll_timeout`]. Skipping the drain delays heartbeats
///    and makes the peer think this side is dead.
/// 4. After [`Event::Closed`], send what is left to transmit, close TLS and
///    the socket, and drop the connection.
///
/// `now` must not go backwards; a driver on a real clock passes a
/// monotonic time (a fixed wall-clock start plus a monotonic elapsed).
#[derive(Debug)]
pub struct Connection {
    local: LocalSite,
    side: Side,
    timing: Timing,
    state: State,
    rx: FrameBuf,
    last_rx: OffsetDateTime,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    pings: BTreeMap<u64, OffsetDateTime>,
    next_ping: u64,
}

impl Connection {
    /// The dialing side of outgoing link `link`, whose token is from site
    /// `expected_site_id`: sends the hello at once. A listener that answers
    /// with another site id is refused ([`CloseReason::WrongSite`]), except
    /// when `expected_site_id` is a CA's ([`crate::link::CA_SITE_ID_PREFIX`],
    /// a link made from a Skupper 2.x file): then any usable site id is
    /// accepted (TLS checked the listener against the link's CA) and
    /// reported in [`Event::Connected`].
    pub fn dial(
        now: OffsetDateTime,
        local: LocalSite,
        link: impl Into<String>,
        expected_site_id: impl Into<String>,
        timing: Timing,
    ) -> Connection {
        let link = link.into();
        let mut conn = Connection::new(
            now,
            local,
            Side::Dialer {
                link: link.clone(),
                expected_site_id: expected_site_id.into(),
            },
            timing,
            State::AwaitingAck {
                deadline: now + timing.setup,
            },
        );
        let hello = Frame::Hello {
            protocol: PROTOCOL_VERSION,
            site_id: conn.local.site_id.clone(),
            site_name: conn.local.site_name.clone(),
            link,
        };
        conn.send(&hello);
        conn
    }

    /// The listening side of a connection whose TLS handshake (with a
    /// client certificate) is done: waits for the hello.
    pub fn listen(now: OffsetDateTime, local: LocalSite, timing: Timing) -> Connection {
        Connection::new(
            now,
            local,
            Side::Listener,
            timing,
            State::AwaitingHello {
                deadline: now + timing.setup,
            },
        )
    }

    fn new(
        now: OffsetDateTime,
        local: LocalSite,
        side: Side,
        timing: Timing,
        state: State,
    ) -> Connection {
        Connection {
            local,
            side,
            timing,
            state,
            rx: FrameBuf::new(),
            last_rx: now,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            pings: BTreeMap::new(),
            next_ping: 1,
        }
    }

    // -- getters ------------------------------------------------------------

    /// Whether the link is up.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Established { .. })
    }

    /// Whether [`Event::Closed`] has been queued.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether bytes or events are waiting to be drained.
    pub fn has_pending(&self) -> bool {
        !self.transmit.is_empty() || !self.events.is_empty()
    }

    /// `setting up`, `connected`, `closing` or `closed`.
    pub fn state_label(&self) -> &'static str {
        self.state.label()
    }

    /// The other site's id, once the link is up.
    pub fn remote_site_id(&self) -> Option<&str> {
        match &self.state {
            State::Established { remote_site_id, .. } => Some(remote_site_id),
            _ => None,
        }
    }

    // -- handle_* -----------------------------------------------------------

    /// Plaintext from the peer.
    pub fn handle_input(&mut self, now: OffsetDateTime, bytes: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.rx.push(bytes);
        loop {
            match self.rx.next_frame() {
                Ok(Some(frame)) => {
                    self.last_rx = now;
                    self.on_frame(now, frame);
                    if self.is_closed() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => return self.finish(protocol_error(&e)),
            }
        }
    }

    /// The peer closed its side (TLS close_notify or end of stream).
    pub fn handle_eof(&mut self, _now: OffsetDateTime) {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Closed => {}
            State::Closing { reason, .. } => self.closed(reason),
            _ => self.closed(CloseReason::PeerClosed),
        }
    }

    /// Reading from or writing to the connection failed (`reason` says
    /// how): it is over.
    pub fn handle_transport_error(&mut self, reason: impl Into<String>) {
        if !self.is_closed() {
            self.finish(CloseReason::Transport {
                reason: reason.into(),
            });
        }
    }

    /// The time of [`Connection::poll_timeout`] came (calling it earlier or
    /// more often is harmless).
    pub fn handle_timeout(&mut self, now: OffsetDateTime) {
        let silent = now - self.last_rx;
        match &mut self.state {
            State::Closed => return,
            State::AwaitingAck { deadline }
            | State::AwaitingHello { deadline }
            | State::Deciding { deadline, .. } => {
                if now >= *deadline {
                    let after = self.timing.setup;
                    return self.finish(CloseReason::SetupTimeout { after });
                }
            }
            State::Established { next_heartbeat, .. } => {
                if silent >= self.timing.dead_after {
                    return self.finish(CloseReason::Dead { silent });
                }
                if now >= *next_heartbeat {
                    *next_heartbeat = now + self.timing.heartbeat;
                    self.send(&Frame::Heartbeat);
                }
            }
            State::Closing { until, .. } => {
                if now >= *until {
                    let State::Closing { reason, .. } =
                        std::mem::replace(&mut self.state, State::Closed)
                    else {
                        unreachable!("matched above");
                    };
                    return self.closed(reason);
                }
            }
        }
        let dead_after = self.timing.dead_after;
        let lost: Vec<u64> = self
            .pings
            .iter()
            .filter(|(_, sent)| now - **sent >= dead_after)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.pings.remove(&id);
            self.events.push_back(Event::PingLost { id });
        }
    }

    // -- calls from the driver ------------------------------------------------

    /// Listener: accepts the hello reported in [`Event::Hello`]: answers
    /// it, and the link is up ([`Event::Connected`]).
    pub fn accept(&mut self, now: OffsetDateTime) -> Result<(), StateError> {
        let State::Deciding { hello, .. } = &self.state else {
            return Err(self.not_deciding());
        };
        let (id, name) = (hello.site_id.clone(), hello.site_name.clone());
        let ack = Frame::HelloAck {
            protocol: PROTOCOL_VERSION,
            site_id: self.local.site_id.clone(),
            site_name: self.local.site_name.clone(),
        };
        self.send(&ack);
        self.establish(now, id, name);
        Ok(())
    }

    /// Listener: refuses the hello reported in [`Event::Hello`] with
    /// `reason` (sent to the dialer, which shows it), and closes.
    pub fn refuse(&mut self, now: OffsetDateTime, reason: &str) -> Result<(), StateError> {
        if !matches!(self.state, State::Deciding { .. }) {
            return Err(self.not_deciding());
        }
        self.send(&Frame::Refused {
            reason: reason.to_owned(),
        });
        self.linger(
            now,
            CloseReason::Local {
                reason: format!("link refused: {reason}"),
            },
        );
        Ok(())
    }

    /// Sends a ping; its answer comes as [`Event::Pong`] with the returned
    /// id, or [`Event::PingLost`].
    pub fn ping(&mut self, now: OffsetDateTime) -> Result<u64, StateError> {
        if !self.is_connected() {
            return Err(StateError::NotConnected {
                state: self.state.label(),
            });
        }
        let id = self.next_ping;
        self.next_ping += 1;
        self.pings.insert(id, now);
        self.send(&Frame::Ping { id });
        Ok(id)
    }

    /// Listener: tells the dialer that its certificate no longer works (a
    /// notice signed by the CA that issued it, from
    /// [`RevokeNotice::sign`](super::notice::RevokeNotice::sign)), and
    /// closes.
    pub fn send_revoke_notice(
        &mut self,
        now: OffsetDateTime,
        payload: String,
        signature: String,
    ) -> Result<(), StateError> {
        if self.side != Side::Listener {
            return Err(StateError::WrongSide { side: "listening" });
        }
        if !self.is_connected() {
            return Err(StateError::NotConnected {
                state: self.state.label(),
            });
        }
        self.send(&Frame::RevokeNotice { payload, signature });
        self.linger(
            now,
            CloseReason::Local {
                reason: "access revoked".into(),
            },
        );
        Ok(())
    }

    /// Closes the link: says goodbye with `reason`, then waits (at most
    /// [`Timing::linger`]) for the peer to close its side, so what was sent
    /// last arrives. Closing a connection that is closing or closed does
    /// nothing.
    pub fn close(&mut self, now: OffsetDateTime, reason: &str) {
        if matches!(self.state, State::Closing { .. } | State::Closed) {
            return;
        }
        self.send(&Frame::Bye {
            reason: reason.to_owned(),
        });
        self.linger(
            now,
            CloseReason::Local {
                reason: reason.to_owned(),
            },
        );
    }

    // -- poll_* -------------------------------------------------------------

    /// The next bytes to send to the peer (one frame each), in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next thing the driver must know or act on.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`Connection::handle_timeout`] next; `None` once
    /// closed.
    pub fn poll_timeout(&self) -> Option<OffsetDateTime> {
        let state = match &self.state {
            State::Closed => return None,
            State::AwaitingAck { deadline }
            | State::AwaitingHello { deadline }
            | State::Deciding { deadline, .. } => *deadline,
            State::Established { next_heartbeat, .. } => {
                (*next_heartbeat).min(self.last_rx + self.timing.dead_after)
            }
            State::Closing { until, .. } => *until,
        };
        let ping = self
            .pings
            .values()
            .min()
            .map(|sent| *sent + self.timing.dead_after);
        Some(ping.map_or(state, |p| p.min(state)))
    }

    // -- inside -------------------------------------------------------------

    fn on_frame(&mut self, now: OffsetDateTime, frame: Frame) {
        match (&self.state, frame) {
            (_, Frame::Heartbeat | Frame::Unknown) => {}
            // The peer's goodbye answers ours: nothing more will come.
            (State::Closing { .. }, Frame::Bye { .. }) => {
                if let State::Closing { reason, .. } =
                    std::mem::replace(&mut self.state, State::Closed)
                {
                    self.closed(reason);
                }
            }
            (State::Closing { .. }, _) => {}
            (_, Frame::Bye { reason }) => self.finish(CloseReason::Bye { reason }),
            (
                State::AwaitingHello { deadline },
                Frame::Hello {
                    site_id,
                    site_name,
                    link,
                    ..
                },
            ) => {
                let deadline = *deadline;
                let checked = check_hello_site_id(&site_id)
                    .and(check_hello_field("site name", &site_name))
                    .and(check_hello_field("link name", &link));
                let hello = PeerHello {
                    site_id,
                    site_name,
                    link,
                };
                match checked {
                    Ok(()) => {
                        self.state = State::Deciding {
                            deadline,
                            hello: hello.clone(),
                        };
                        self.events.push_back(Event::Hello(hello));
                    }
                    Err(reason) => {
                        self.state = State::Deciding { deadline, hello };
                        let _ = self.refuse(now, &reason);
                    }
                }
            }
            (
                State::AwaitingAck { .. },
                Frame::HelloAck {
                    site_id, site_name, ..
                },
            ) => {
                let Side::Dialer {
                    expected_site_id, ..
                } = &self.side
                else {
                    return;
                };
                // A link made from a Skupper 2.x file knows its remote site
                // only by its CA (`ca-sha256:...`): TLS checked that the
                // listener's certificate chains to that CA, so the site id
                // the listener says is the one the link learns.
                let by_ca = expected_site_id.starts_with(crate::link::CA_SITE_ID_PREFIX);
                if by_ca {
                    if let Err(reason) = check_hello_site_id(&site_id) {
                        return self.finish(CloseReason::Protocol { reason });
                    }
                } else if site_id != *expected_site_id {
                    let expected = expected_site_id.clone();
                    self.send(&Frame::Bye {
                        reason: "wrong site".into(),
                    });
                    return self.finish(CloseReason::WrongSite {
                        expected,
                        actual: printable(&site_id),
                    });
                }
                self.establish(now, site_id, site_name);
            }
            (State::AwaitingAck { .. }, Frame::Refused { reason }) => {
                self.finish(CloseReason::Refused {
                    reason: printable_text(&reason),
                })
            }
            (State::Established { .. }, Frame::Ping { id }) => self.send(&Frame::Pong { id }),
            (State::Established { .. }, Frame::Pong { id }) => {
                if let Some(sent) = self.pings.remove(&id) {
                    self.events.push_back(Event::Pong {
                        id,
                        rtt: now - sent,
                    });
                }
            }
            (State::Established { .. }, Frame::RevokeNotice { payload, signature })
                if matches!(self.side, Side::Dialer { .. }) =>
            {
                self.events
                    .push_back(Event::RevokeNotice { payload, signature });
            }
            // Established: anything else is ignored, for peers of later
            // versions.
            (State::Established { .. }, _) => {}
            (State::Deciding { .. }, other) => self.finish(CloseReason::Protocol {
                reason: format!("a {} frame before its hello was answered", other.kind()),
            }),
            (State::AwaitingHello { .. }, other) => self.finish(CloseReason::Protocol {
                reason: format!("expected a hello, got a {} frame", other.kind()),
            }),
            (State::AwaitingAck { .. }, other) => self.finish(CloseReason::Protocol {
                reason: format!("the hello was answered with a {} frame", other.kind()),
            }),
            (State::Closed, _) => {}
        }
    }

    fn establish(&mut self, now: OffsetDateTime, remote_site_id: String, remote_site_name: String) {
        // Liveness counts from here: a dialer sends nothing while its
        // hello waits for the listener's decision, however long that takes.
        self.last_rx = now;
        self.state = State::Established {
            next_heartbeat: now + self.timing.heartbeat,
            remote_site_id: remote_site_id.clone(),
        };
        self.events.push_back(Event::Connected {
            remote_site_id,
            remote_site_name: printable(&remote_site_name),
        });
    }

    fn send(&mut self, frame: &Frame) {
        self.transmit.push_back(frame::encode(frame));
    }

    /// Waits for the peer to close after the last frame, then `reason`.
    fn linger(&mut self, now: OffsetDateTime, reason: CloseReason) {
        self.fail_pings();
        self.state = State::Closing {
            until: now + self.timing.linger,
            reason,
        };
    }

    /// Over at once, for `reason`.
    fn finish(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.closed(reason);
    }

    fn closed(&mut self, reason: CloseReason) {
        self.fail_pings();
        self.events.push_back(Event::Closed(reason));
    }

    fn fail_pings(&mut self) {
        for id in std::mem::take(&mut self.pings).into_keys() {
            self.events.push_back(Event::PingLost { id });
        }
    }

    fn not_deciding(&self) -> StateError {
        match self.side {
            Side::Dialer { .. } => StateError::WrongSide { side: "listening" },
            Side::Listener => StateError::NotConnected {
                state: self.state.label(),
            },
        }
    }
}

/// A hello's site id: the rule for the site id a claim's certificate is
/// issued to ([`crate::site_id::check`]: at most 64 characters, the longest
/// common name a certificate may have), so a listener never accepts a hello
/// from an id no certificate could name.
fn check_hello_site_id(site_id: &str) -> Result<(), String> {
    crate::site_id::check(site_id).map_err(|e| format!("the hello's site id is not usable: {e}"))
}

/// A hello's site name or link name: 1 to 253 characters, no control
/// characters.
fn check_hello_field(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 253 {
        return Err(format!("the hello's {what} must be 1 to 253 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("the hello's {what} has control characters"));
    }
    Ok(())
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Hello(h) => write!(
                f,
                "hello from site {} ({}) for its link {}",
                h.site_name, h.site_id, h.link
            ),
            Event::Connected {
                remote_site_id,
                remote_site_name,
            } => write!(f, "linked with site {remote_site_name} ({remote_site_id})"),
            Event::Pong { id, rtt } => write!(f, "pong {id} after {rtt}"),
            Event::PingLost { id } => write!(f, "ping {id} lost"),
            Event::RevokeNotice { .. } => f.write_str("revocation notice received"),
            Event::Closed(reason) => write!(f, "closed: {reason}"),
        }
    }
}

fn protocol_error(e: &FrameError) -> CloseReason {
    CloseReason::Protocol {
        reason: e.to_string(),
    }
}
