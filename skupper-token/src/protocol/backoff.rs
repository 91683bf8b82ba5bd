//! The reconnect schedule of an outgoing link: capped exponential backoff
//! with jitter drawn from the injected [`Random`] ([`Backoff`]), and when
//! the link dials next after each outcome ([`Redial`]).

use time::{Duration, OffsetDateTime};

use crate::random::Random;

/// When to dial a link again after a failed or ended connection.
///
/// Each wait is drawn uniformly from `[d/2, d]`, where `d` starts at
/// `initial` and doubles after every wait up to `max`, so sites that lost
/// the same peer at the same moment do not all dial it at once. A link
/// that connected starts over ([`Backoff::reset`]); a link whose access
/// was revoked waits the longest ([`Backoff::hold_at_max`]): dialing again
/// soon cannot help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A schedule from `initial` doubling to `max`. A non-positive
    /// `initial` is taken as one millisecond, and `max` is at least
    /// `initial`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.max(Duration::milliseconds(1));
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// The next wait, and doubles the one after it (up to the maximum).
    pub fn next_delay(&mut self, rng: &mut dyn Random) -> Duration {
        let base = self.current;
        self.current = (self.current * 2i32).min(self.max);
        spread(base, rng)
    }

    /// Starts over from the initial wait (the link connected).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }

    /// Waits the longest from now on, until [`Backoff::reset`].
    pub fn hold_at_max(&mut self) {
        self.current = self.max;
    }

    /// The undrawn wait the next [`Backoff::next_delay`] spreads.
    pub fn current(&self) -> Duration {
        self.current
    }
}

/// When an outgoing link dials next: the one rule the harness and the
/// live runtime drive.
///
/// A new link dials at once. After a failed dial or an ended connection it
/// waits the link's next [`Backoff`] delay; a link that connected starts
/// the schedule over; a revoked link (its dialer kept, say) waits the
/// longest every time: dialing again soon cannot help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redial {
    backoff: Backoff,
    due: Option<OffsetDateTime>,
}

impl Redial {
    /// A link's schedule on `backoff`, due at once.
    pub fn new(backoff: Backoff) -> Redial {
        Redial { backoff, due: None }
    }

    /// The link connected: the next wait is the first one again, and
    /// nothing is due while it is up.
    pub fn connected(&mut self) {
        self.backoff.reset();
        self.due = None;
    }

    /// A dial failed, or the connection ended, at `now`; `revoked` says
    /// whether the link is revoked now. Returns how long to wait before
    /// dialing again ([`Redial::poll_timeout`] says until when).
    pub fn down(&mut self, now: OffsetDateTime, revoked: bool, rng: &mut dyn Random) -> Duration {
        if revoked {
            self.backoff.hold_at_max();
        }
        let wait = self.backoff.next_delay(rng);
        self.due = Some(now + wait);
        wait
    }

    /// When the link dials next: `None` when it is due at once (new) or
    /// connected.
    pub fn poll_timeout(&self) -> Option<OffsetDateTime> {
        self.due
    }

    /// Whether the link may dial at `now`.
    pub fn is_due(&self, now: OffsetDateTime) -> bool {
        self.due.is_none_or(|due| due <= now)
    }
}

/// A duration drawn uniformly from `[base/2, base]`, to the nanosecond.
fn spread(base: Duration, rng: &mut dyn Random) -> Duration {
    let nanos = u64::try_from(base.whole_nanoseconds()).unwrap_or(u64::MAX);
    let half = nanos / 2;
    let mut bytes = [0u8; 8];
    rng.fill(&mut bytes);
    let jitter = u64::from_le_bytes(bytes) % (nanos - half + 1);
    Duration::nanoseconds(i64::try_from(half + jitter).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    #[test]
    fn waits_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut rng = SeededRandom::new(1);
        let mut b = Backoff::new(Duration::milliseconds(250), Duration::seconds(8));
        let mut bases = Vec::new();
        for _ in 0..8 {
            let base = b.current();
            let d = b.next_delay(&mut rng);
            assert!(
                d >= base / 2 && d <= base,
                "{d} not in [{}, {base}]",
                base / 2
            );
            bases.push(base.whole_milliseconds());
        }
        assert_eq!(bases, [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
    }

    #[test]
    fn reset_and_hold() {
        let mut rng = SeededRandom::new(2);
        let mut b = Backoff::new(Duration::milliseconds(100), Duration::seconds(1));
        b.next_delay(&mut rng);
        b.next_delay(&mut rng);
        b.reset();
        assert_eq!(b.current(), Duration::milliseconds(100));
        b.hold_at_max();
        assert_eq!(b.current(), Duration::seconds(1));
        b.next_delay(&mut rng);
        assert_eq!(b.current(), Duration::seconds(1));
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let run = |seed| {
            let mut rng = SeededRandom::new(seed);
            let mut b = Backoff::new(Duration::milliseconds(250), Duration::seconds(8));
            (0..6).map(|_| b.next_delay(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn a_link_redials_later_and_later_starts_over_once_connected_and_waits_longest_once_revoked() {
        let mut rng = SeededRandom::new(4);
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut r = Redial::new(Backoff::new(Duration::seconds(1), Duration::seconds(8)));
        assert!(r.is_due(now), "a new link dials at once");
        assert_eq!(r.poll_timeout(), None);
        let mut waits = Vec::new();
        for _ in 0..5 {
            let wait = r.down(now, false, &mut rng);
            assert_eq!(r.poll_timeout(), Some(now + wait));
            assert!(!r.is_due(now));
            assert!(r.is_due(now + wait));
            waits.push(wait);
        }
        let bases = [1, 2, 4, 8, 8].map(Duration::seconds);
        for (wait, base) in waits.iter().zip(bases) {
            assert!(*wait >= base / 2 && *wait <= base, "{wait} for {base}");
        }
        r.connected();
        assert_eq!(r.poll_timeout(), None);
        let wait = r.down(now, false, &mut rng);
        assert!(wait <= Duration::seconds(1), "starts over: {wait}");
        let wait = r.down(now, true, &mut rng);
        assert!(
            wait >= Duration::seconds(4),
            "revoked waits the longest: {wait}"
        );
        let wait = r.down(now, true, &mut rng);
        assert!(wait >= Duration::seconds(4), "and keeps waiting so: {wait}");
    }

    #[test]
    fn odd_settings_are_made_sane() {
        let mut rng = SeededRandom::new(3);
        let mut b = Backoff::new(Duration::ZERO, Duration::seconds(-1));
        assert_eq!(b.current(), Duration::milliseconds(1));
        let d = b.next_delay(&mut rng);
        assert!(d >= Duration::microseconds(500) && d <= Duration::milliseconds(1));
    }
}
