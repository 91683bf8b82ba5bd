//! Turns for CPU-heavy futures: [`Turns::run`] polls a future only while it
//! holds one of a [`Semaphore`]'s permits, and gives the permit back every
//! time the future waits. A TLS handshake does its key exchange and its
//! certificate checks inside `poll`; between polls it waits for the peer.
//! So a handshake holds a turn while it computes, never while its peer is
//! slow (a peer that stalls after its ClientHello holds nothing), and when
//! thousands of sites reconnect at once only as many key exchanges run as
//! there are turns: the rest wait, parked, and the heartbeats of the links
//! already up still get the workers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// Runs `future`, polling it only with a turn from `turns` (see the module
/// documentation). If the semaphore is closed, the future runs without
/// turns.
pub(crate) fn run<F: Future>(turns: Arc<Semaphore>, future: F) -> Turns<F> {
    Turns {
        turns,
        future: Box::pin(future),
        acquiring: None,
    }
}

/// The future [`run`] returns.
pub(crate) struct Turns<F: Future> {
    turns: Arc<Semaphore>,
    future: Pin<Box<F>>,
    acquiring: Option<Acquire>,
}

impl<F: Future> Future for Turns<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let acquiring = this
            .acquiring
            .get_or_insert_with(|| Box::pin(this.turns.clone().acquire_owned()));
        let permit = match acquiring.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(permit) => permit.ok(),
        };
        this.acquiring = None;
        let polled = this.future.as_mut().poll(cx);
        // The turn ends with this poll: while the future waits for I/O,
        // another one computes.
        drop(permit);
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_future_is_polled_only_with_a_turn_and_gives_it_back_while_it_waits() {
        let turns = Arc::new(Semaphore::new(1));
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let waiting = tokio::spawn(run(turns.clone(), async move { rx.await.unwrap() + 1 }));
        tokio::task::yield_now().await;
        // It waits for its channel without holding the one turn.
        let held = turns.clone().try_acquire_owned().expect("the turn is free");
        tx.send(41).unwrap();
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "it cannot run without a turn");
        drop(held);
        assert_eq!(waiting.await.unwrap(), 42);
        assert_eq!(turns.available_permits(), 1);
    }
}
