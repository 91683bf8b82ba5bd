//! One live link connection: a finished TLS session over a blocking TCP
//! socket, shared between the thread that owns it (which reads, answers
//! pings and sends heartbeats) and any thread that sends (pings, notices,
//! goodbyes).
//!
//! The owning thread reads raw bytes from the socket without holding the
//! TLS lock, then feeds them to rustls under the lock; senders take the lock
//! to encrypt and write. Reads time out every `tick` so the owner can send
//! heartbeats and notice a dead peer.

use std::collections::HashMap;
use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use super::frame::{self, Frame, FrameBuf, FrameError};
use super::lock;

/// Heartbeat and liveness timing of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Send a heartbeat this often.
    pub heartbeat: Duration,
    /// Nothing received for this long: the peer is dead.
    pub dead_after: Duration,
    /// How long a graceful close waits for the peer to close its side.
    pub linger: Duration,
}

impl Timing {
    /// How long one read waits before the owner checks its timers.
    fn tick(&self) -> Duration {
        (self.heartbeat.min(self.dead_after) / 4)
            .clamp(Duration::from_millis(5), Duration::from_millis(250))
    }
}

/// How a connection ended.
#[derive(Debug)]
pub(crate) enum ConnEnd {
    /// The peer closed it (TLS close_notify or TCP end).
    Eof,
    /// The peer said goodbye.
    Bye(String),
    /// Nothing arrived for `dead_after` (or before the deadline).
    Dead,
    /// A TLS error (for example an alert from the peer).
    Tls(rustls::Error),
    /// A socket error.
    Io(io::Error),
    /// The peer sent something that is not a frame.
    Frame(FrameError),
    /// This side closed it.
    Local,
    /// The frame handler ended it, with this reason.
    Handler(String),
}

/// Why a ping got no answer.
#[derive(Debug)]
pub(crate) enum PingFail {
    Timeout,
    Lost,
    Send(io::Error),
}

pub(crate) struct Conn {
    socket: TcpStream,
    tls: Mutex<rustls::Connection>,
    peer: SocketAddr,
    timing: Timing,
    last_rx: Mutex<Instant>,
    /// Set by a graceful close: until when to wait for the peer's close.
    closing: Mutex<Option<Instant>>,
    pings: Mutex<HashMap<u64, mpsc::SyncSender<()>>>,
    next_ping: AtomicU64,
    last_rtt: Mutex<Option<Duration>>,
    /// Pings the owner sends by itself to measure the round trip.
    auto_pings: Mutex<HashMap<u64, Instant>>,
    measure_rtt: AtomicBool,
}

/// The owner pings by itself once connected and then every this many
/// heartbeats.
const AUTO_PING_EVERY: u32 = 10;

impl Conn {
    /// Wraps a socket whose TLS handshake is done.
    pub fn new(
        socket: TcpStream,
        tls: rustls::Connection,
        peer: SocketAddr,
        timing: Timing,
    ) -> io::Result<Conn> {
        socket.set_read_timeout(Some(timing.tick()))?;
        socket.set_write_timeout(Some(timing.dead_after.max(Duration::from_millis(200))))?;
        Ok(Conn {
            socket,
            tls: Mutex::new(tls),
            peer,
            timing,
            last_rx: Mutex::new(Instant::now()),
            closing: Mutex::new(None),
            pings: Mutex::new(HashMap::new()),
            next_ping: AtomicU64::new(1),
            last_rtt: Mutex::new(None),
            auto_pings: Mutex::new(HashMap::new()),
            measure_rtt: AtomicBool::new(false),
        })
    }

    /// Makes the owner ping by itself now and then, so
    /// [`Conn::last_rtt`] stays current.
    pub fn measure_rtt(&self) {
        self.measure_rtt.store(true, Ordering::Relaxed);
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The round trip of the last answered ping.
    pub fn last_rtt(&self) -> Option<Duration> {
        *lock(&self.last_rtt)
    }

    /// When a frame last arrived.
    pub fn last_rx(&self) -> Instant {
        *lock(&self.last_rx)
    }

    fn is_closing(&self) -> bool {
        lock(&self.closing).is_some()
    }

    /// Sends one frame.
    pub fn send(&self, frame: &Frame) -> io::Result<()> {
        if self.is_closing() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection is closing",
            ));
        }
        let bytes = frame::encode(frame);
        let mut tls = lock(&self.tls);
        tls.writer().write_all(&bytes)?;
        flush(&mut tls, &self.socket)
    }

    /// Sends a ping and waits for its pong.
    pub fn ping(&self, timeout: Duration) -> Result<Duration, PingFail> {
        let id = self.next_ping.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(1);
        lock(&self.pings).insert(id, tx);
        let start = Instant::now();
        if let Err(e) = self.send(&Frame::Ping { id }) {
            lock(&self.pings).remove(&id);
            return Err(PingFail::Send(e));
        }
        match rx.recv_timeout(timeout) {
            Ok(()) => {
                let rtt = start.elapsed();
                *lock(&self.last_rtt) = Some(rtt);
                Ok(rtt)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                lock(&self.pings).remove(&id);
                Err(PingFail::Timeout)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(PingFail::Lost),
        }
    }

    /// Closes gracefully: sends `frames`, then TLS close_notify, and
    /// closes the sending side. The owner keeps reading until the peer
    /// closes too (or [`Timing::linger`] passes), so nothing the peer
    /// still sends makes the kernel reset the connection before the last
    /// frames are read.
    pub fn close(&self, frames: &[Frame]) {
        {
            let mut closing = lock(&self.closing);
            if closing.is_some() {
                return;
            }
            *closing = Some(Instant::now() + self.timing.linger);
        }
        let mut tls = lock(&self.tls);
        for f in frames {
            let _ = tls.writer().write_all(&frame::encode(f));
        }
        tls.send_close_notify();
        let _ = flush(&mut tls, &self.socket);
        drop(tls);
        let _ = self.socket.shutdown(Shutdown::Write);
    }

    /// Closes at once (both directions).
    pub fn abort(&self) {
        {
            let mut closing = lock(&self.closing);
            if closing.is_none() {
                *closing = Some(Instant::now());
            }
        }
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    /// The owner's loop: reads frames, answers pings, sends heartbeats,
    /// and passes every other frame to `handle` (which can end the
    /// connection by returning a reason). Returns how the connection
    /// ended; the socket is shut down by then.
    pub fn pump(
        &self,
        buf: &mut FrameBuf,
        mut handle: impl FnMut(&Conn, Frame) -> Option<String>,
    ) -> ConnEnd {
        let end = self.pump_inner(buf, &mut handle);
        // Wake and fail every ping still waiting.
        lock(&self.pings).clear();
        let _ = self.socket.shutdown(Shutdown::Both);
        match end {
            ConnEnd::Handler(_) | ConnEnd::Bye(_) => end,
            _ if self.is_closing() => ConnEnd::Local,
            _ => end,
        }
    }

    fn pump_inner(
        &self,
        buf: &mut FrameBuf,
        handle: &mut impl FnMut(&Conn, Frame) -> Option<String>,
    ) -> ConnEnd {
        let timing = self.timing;
        let mut next_heartbeat = Instant::now() + timing.heartbeat;
        let mut heartbeats = 0u32;
        if let Err(e) = self.auto_ping() {
            return ConnEnd::Io(e);
        }
        // The handshake may have brought application data along.
        let mut peer_closed = match self.drain_plaintext(buf) {
            Ok(closed) => closed,
            Err(end) => return end,
        };
        loop {
            loop {
                match buf.next_frame() {
                    Ok(Some(frame)) => {
                        *lock(&self.last_rx) = Instant::now();
                        match frame {
                            Frame::Heartbeat | Frame::Unknown => {}
                            Frame::Ping { id } => {
                                if !self.is_closing() {
                                    if let Err(e) = self.send(&Frame::Pong { id }) {
                                        return ConnEnd::Io(e);
                                    }
                                }
                            }
                            Frame::Pong { id } => {
                                if let Some(tx) = lock(&self.pings).remove(&id) {
                                    let _ = tx.try_send(());
                                } else if let Some(sent) = lock(&self.auto_pings).remove(&id) {
                                    *lock(&self.last_rtt) = Some(sent.elapsed());
                                }
                            }
                            Frame::Bye { reason } => return ConnEnd::Bye(reason),
                            other => {
                                if let Some(reason) = handle(self, other) {
                                    return ConnEnd::Handler(reason);
                                }
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return ConnEnd::Frame(e),
                }
            }
            if peer_closed {
                return ConnEnd::Eof;
            }
            let now = Instant::now();
            // Copied out: the lock must not be held across `send`.
            let closing = *lock(&self.closing);
            match closing {
                Some(until) if now >= until => return ConnEnd::Local,
                Some(_) => {}
                None if now >= next_heartbeat => {
                    if let Err(e) = self.send(&Frame::Heartbeat) {
                        if self.is_closing() {
                            continue;
                        }
                        return ConnEnd::Io(e);
                    }
                    next_heartbeat = now + timing.heartbeat;
                    heartbeats = heartbeats.wrapping_add(1);
                    if heartbeats % AUTO_PING_EVERY == 0 {
                        if let Err(e) = self.auto_ping() {
                            return ConnEnd::Io(e);
                        }
                    }
                }
                None => {}
            }
            let silent = now.saturating_duration_since(self.last_rx());
            if silent >= timing.dead_after {
                return ConnEnd::Dead;
            }
            match self.fill(buf) {
                Ok(closed) => peer_closed = closed,
                Err(end) => return end,
            }
        }
    }

    fn auto_ping(&self) -> io::Result<()> {
        if !self.measure_rtt.load(Ordering::Relaxed) {
            return Ok(());
        }
        let id = self.next_ping.fetch_add(1, Ordering::Relaxed);
        {
            let mut auto = lock(&self.auto_pings);
            // Unanswered ones are forgotten.
            auto.retain(|_, sent| sent.elapsed() < self.timing.dead_after);
            auto.insert(id, Instant::now());
        }
        self.send(&Frame::Ping { id })
    }

    /// Waits (until `deadline`) for the next frame other than a heartbeat:
    /// for the hello exchange, before [`Conn::pump`].
    pub fn read_frame(&self, buf: &mut FrameBuf, deadline: Instant) -> Result<Frame, ConnEnd> {
        let mut peer_closed = self.drain_plaintext(buf)?;
        loop {
            while let Some(frame) = buf.next_frame().map_err(ConnEnd::Frame)? {
                *lock(&self.last_rx) = Instant::now();
                match frame {
                    Frame::Heartbeat | Frame::Unknown => {}
                    Frame::Bye { reason } => return Err(ConnEnd::Bye(reason)),
                    other => return Ok(other),
                }
            }
            if peer_closed {
                return Err(ConnEnd::Eof);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ConnEnd::Dead);
            }
            peer_closed = self.fill(buf)?;
        }
    }

    /// Reads what the socket has (waiting at most a tick) into `buf`.
    /// Returns whether the peer closed the TLS session.
    fn fill(&self, buf: &mut FrameBuf) -> Result<bool, ConnEnd> {
        let mut raw = [0u8; 16 * 1024];
        let n = match (&self.socket).read(&mut raw) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(ConnEnd::Io(e)),
        };
        let mut tls = lock(&self.tls);
        let mut input = &raw[..n];
        let mut closed = false;
        while !input.is_empty() {
            tls.read_tls(&mut input).map_err(ConnEnd::Io)?;
            if let Err(e) = tls.process_new_packets() {
                // Send the alert rustls queued, then give up.
                let _ = flush(&mut tls, &self.socket);
                return Err(ConnEnd::Tls(e));
            }
            closed |= read_plaintext(&mut tls, buf)?;
        }
        if tls.wants_write() {
            flush(&mut tls, &self.socket).map_err(ConnEnd::Io)?;
        }
        Ok(closed)
    }

    fn drain_plaintext(&self, buf: &mut FrameBuf) -> Result<bool, ConnEnd> {
        let mut tls = lock(&self.tls);
        read_plaintext(&mut tls, buf)
    }
}

/// Moves decrypted bytes into `buf`. Returns whether the peer sent
/// close_notify.
fn read_plaintext(tls: &mut rustls::Connection, buf: &mut FrameBuf) -> Result<bool, ConnEnd> {
    let mut chunk = [0u8; 8 * 1024];
    loop {
        match tls.reader().read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => buf.push(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(ConnEnd::Io(e)),
        }
    }
}

/// Writes everything rustls has queued.
fn flush(tls: &mut rustls::Connection, socket: &TcpStream) -> io::Result<()> {
    let mut out = socket;
    while tls.wants_write() {
        match tls.write_tls(&mut out) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
