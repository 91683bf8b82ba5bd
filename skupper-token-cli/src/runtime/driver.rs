//! Drives one [`Connection`] (the core's link protocol) over an async
//! byte stream, normally a tokio-rustls TLS stream: the only place where
//! the protocol meets a socket and a clock.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use skupper_token::protocol::{CloseReason, Connection, Event};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Bytes read from the stream at a time (into a buffer on the stack).
const READ_BUFFER: usize = 2 * 1024;

/// What the connection's owner asks of a running driver.
#[derive(Debug)]
pub enum Command {
    /// Send a ping; the round trip (or why there is none) comes back on
    /// `reply`.
    Ping {
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Duration, PingError>>,
    },
    /// Say goodbye and close.
    Close {
        /// Told to the peer.
        reason: String,
    },
    /// Listener: tell the dialer its certificate no longer works (a signed
    /// notice) and close.
    RevokeNotice {
        /// The notice, exactly as signed.
        payload: String,
        /// Its signature, hex.
        signature: String,
    },
}

/// Why a ping has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PingError {
    /// The link is not up.
    #[error("the link is not connected")]
    NotConnected,
    /// No answer within the connection's dead-peer time.
    #[error("no answer")]
    Lost,
}

/// What the driver asks of the connection's owner.
///
/// `on_event` runs inside the drive loop: the connection waits for it, so
/// anything slow (a store write) belongs in `spawn_blocking`, awaited here.
/// It may call the connection (for example [`Connection::accept`] on an
/// [`Event::Hello`]); the driver drains it afterwards.
pub trait Handler: Send {
    /// One event, other than pongs and lost pings (the driver answers
    /// [`Command::Ping`] itself) and [`Event::Closed`] (the driver's return
    /// value).
    fn on_event(
        &mut self,
        event: Event,
        conn: &mut Connection,
        now: OffsetDateTime,
    ) -> impl std::future::Future<Output = ()> + Send;

    /// A ping on this connection was answered after `rtt` (every pong,
    /// whoever sent the ping: a [`Command::Ping`] or the handler itself
    /// with [`Connection::ping`]).
    fn on_rtt(&mut self, rtt: Duration) {
        let _ = rtt;
    }

    /// Reading or writing failed with `error`: the reason the connection
    /// closes with ([`CloseReason::Transport`]). The handler may keep what
    /// it needs of the error (a TLS alert, say) to describe the end.
    fn on_transport_error(&mut self, error: &io::Error) -> String {
        error.to_string()
    }
}

/// Maps tokio's monotonic clock onto the core's `now`: a wall-clock time
/// taken once, plus monotonic elapsed time, so `now` never goes backwards
/// and follows tokio's paused clock in tests.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    wall: OffsetDateTime,
}

impl Clock {
    /// A clock that says `wall` now.
    pub fn new(wall: OffsetDateTime) -> Clock {
        Clock {
            start: Instant::now(),
            wall,
        }
    }

    /// The current time.
    pub fn now(&self) -> OffsetDateTime {
        self.at(Instant::now())
    }

    fn at(&self, instant: Instant) -> OffsetDateTime {
        self.wall + instant.saturating_duration_since(self.start)
    }

    fn instant(&self, at: OffsetDateTime) -> Instant {
        let since = at - self.wall;
        match Duration::try_from(since) {
            Ok(d) => self.start + d,
            Err(_) => self.start,
        }
    }
}

/// Runs `conn` over `stream` until it closes, following the drain rule
/// documented on [`Connection`]; returns why it closed. The stream is shut
/// down (for TLS: close_notify) before this returns.
///
/// A write that does not complete within the connection's dead-peer time
/// (`write_timeout`) counts as a lost connection, so a peer that stops
/// reading cannot hold the driver.
pub async fn drive<S, H>(
    mut conn: Connection,
    mut stream: S,
    clock: Clock,
    write_timeout: Duration,
    mut commands: mpsc::Receiver<Command>,
    handler: &mut H,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    let mut pings: HashMap<u64, oneshot::Sender<Result<Duration, PingError>>> = HashMap::new();
    let mut commands_open = true;
    loop {
        // Drain: bytes out, then events.
        if let Err(e) = flush(&mut conn, &mut stream, write_timeout).await {
            let reason = handler.on_transport_error(&e);
            conn.handle_transport_error(reason);
        }
        let mut closed = None;
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Pong { id, rtt } => {
                    let rtt = Duration::try_from(rtt).unwrap_or_default();
                    handler.on_rtt(rtt);
                    if let Some(reply) = pings.remove(&id) {
                        let _ = reply.send(Ok(rtt));
                    }
                }
                Event::PingLost { id } => {
                    if let Some(reply) = pings.remove(&id) {
                        let _ = reply.send(Err(PingError::Lost));
                    }
                }
                Event::Closed(reason) => closed = Some(reason),
                // Boxed: the handler's future (a store write on a blocking
                // thread) exists only while it runs, instead of making
                // every connection's future that much larger for its
                // whole life.
                other => {
                    Box::pin(handler.on_event(other, &mut conn, clock.now())).await;
                }
            }
        }
        if let Some(reason) = closed {
            let _ = flush(&mut conn, &mut stream, write_timeout).await;
            let _ = tokio::time::timeout(write_timeout, stream.shutdown()).await;
            for (_, reply) in pings.drain() {
                let _ = reply.send(Err(PingError::Lost));
            }
            return reason;
        }
        // What the handler did may have queued bytes or events.
        if conn.has_pending() {
            continue;
        }
        let deadline = conn.poll_timeout().map(|t| clock.instant(t));
        tokio::select! {
            // Input first. A task woken late (its runtime busy for longer
            // than the dead-peer time, as when thousands of links handshake
            // at once) finds both its timer expired and the peer's
            // heartbeats waiting in the socket: polled in random order, the
            // timer would often win and close a live link as dead.
            biased;
            read = read_some(&mut stream) => {
                let now = clock.now();
                match read {
                    Ok(bytes) if bytes.is_empty() => conn.handle_eof(now),
                    Ok(bytes) => conn.handle_input(now, &bytes),
                    Err(e) => {
                        let reason = handler.on_transport_error(&e);
                        conn.handle_transport_error(reason);
                    }
                }
                // A peer whose bytes never stop coming must not hold off
                // the timer (our own heartbeats): it runs once it is due.
                if deadline.is_some_and(|at| at <= Instant::now()) {
                    conn.handle_timeout(clock.now());
                }
            }
            () = sleep_until(deadline) => conn.handle_timeout(clock.now()),
            command = commands.recv(), if commands_open => {
                let now = clock.now();
                match command {
                    None => commands_open = false,
                    Some(Command::Ping { reply }) => match conn.ping(now) {
                        Ok(id) => {
                            pings.insert(id, reply);
                        }
                        Err(_) => {
                            let _ = reply.send(Err(PingError::NotConnected));
                        }
                    },
                    Some(Command::Close { reason }) => conn.close(now, &reason),
                    Some(Command::RevokeNotice { payload, signature }) => {
                        if conn.send_revoke_notice(now, payload, signature).is_err() {
                            conn.close(now, "access revoked");
                        }
                    }
                }
            }
        }
    }
}

/// Reads what has arrived, at most [`READ_BUFFER`] bytes; empty at the end
/// of the stream.
///
/// The bytes are read into a buffer on the stack while the stream is
/// polled, and returned as a copy of just what was read: an idle
/// connection, waiting here, holds no read buffer (10,000 idle links would
/// otherwise hold 20 MiB of them). Link frames are small and the core
/// reassembles them from any split.
async fn read_some<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Vec<u8>> {
    std::future::poll_fn(|cx| {
        let mut chunk = [0u8; READ_BUFFER];
        let mut buf = ReadBuf::new(&mut chunk);
        match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().to_vec())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn flush<S: AsyncWrite + Unpin>(
    conn: &mut Connection,
    stream: &mut S,
    timeout: Duration,
) -> io::Result<()> {
    let mut wrote = false;
    while let Some(bytes) = conn.poll_transmit() {
        within(timeout, stream.write_all(&bytes)).await?;
        wrote = true;
    }
    if wrote {
        within(timeout, stream.flush()).await?;
    }
    Ok(())
}

/// A write that must complete within `timeout`.
async fn within(
    timeout: Duration,
    write: impl std::future::Future<Output = io::Result<()>>,
) -> io::Result<()> {
    match tokio::time::timeout(timeout, write).await {
        Ok(done) => done,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the peer read nothing for {timeout:?}"),
        )),
    }
}
