//! Keeps a running site's log readable under floods: repeats of one cause
//! are counted, not printed.
//!
//! Every event either has no cause (a successful redemption, a link that
//! connected or closed: always printed) or names its cause (a wrong claim
//! password, a refused handshake, a full server, a store error the runtime
//! retries). For each cause, the first event is printed in full; further
//! events of that cause within [`Summariser::interval`] of it are only
//! counted, and when the interval is over one line says how many there
//! were. So a cause costs at most two lines per interval however often it
//! happens, and nothing is dropped without a count.
//!
//! The summariser reads no clock: the caller passes `now`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long repeats of one cause are counted before their summary line
/// (10 s).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// One line to log: an event's own line, or the summary of a cause's
/// repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The text to log.
    pub text: String,
    /// The event's cause, or the cause a summary counts.
    pub cause: Option<String>,
    /// On a summary: how many events of `cause` it counts.
    pub repeats: Option<u64>,
}

impl PartialEq<&str> for Line {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Counts repeated causes; see the [module documentation](self).
#[derive(Debug)]
pub struct Summariser {
    interval: Duration,
    /// Per cause: when its first line was printed, and the repeats since.
    open: BTreeMap<String, (Instant, u64)>,
}

impl Summariser {
    /// A summariser counting repeats over `interval`.
    pub fn new(interval: Duration) -> Summariser {
        Summariser {
            interval,
            open: BTreeMap::new(),
        }
    }

    /// The counting interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// An event at `now`: returns the lines to print now. The event's own
    /// `line` is among them unless its `cause` was already printed within
    /// the interval; summaries of intervals that ended come first.
    pub fn event(&mut self, now: Instant, cause: Option<&str>, line: String) -> Vec<Line> {
        let mut out = self.due(now);
        let own = |cause: Option<&str>| Line {
            text: line,
            cause: cause.map(str::to_owned),
            repeats: None,
        };
        match cause {
            None => out.push(own(None)),
            Some(cause) => match self.open.get_mut(cause) {
                Some((_, repeats)) => *repeats += 1,
                None => {
                    self.open.insert(cause.to_owned(), (now, 0));
                    out.push(own(Some(cause)));
                }
            },
        }
        out
    }

    /// The summary lines of intervals that have ended by `now` (call it
    /// now and then, so a summary does not wait for the next event).
    pub fn due(&mut self, now: Instant) -> Vec<Line> {
        let interval = self.interval;
        let ended: Vec<String> = self
            .open
            .iter()
            .filter(|(_, (first, _))| now.saturating_duration_since(*first) >= interval)
            .map(|(cause, _)| cause.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|cause| {
                let (_, repeats) = self.open.remove(&cause)?;
                (repeats > 0).then(|| summary(&cause, repeats, interval))
            })
            .collect()
    }

    /// Every pending summary, whether or not its interval has ended (when
    /// the site stops).
    pub fn finish(&mut self) -> Vec<Line> {
        let interval = self.interval;
        std::mem::take(&mut self.open)
            .into_iter()
            .filter(|(_, (_, repeats))| *repeats > 0)
            .map(|(cause, (_, repeats))| summary(&cause, repeats, interval))
            .collect()
    }
}

impl Default for Summariser {
    fn default() -> Self {
        Summariser::new(DEFAULT_INTERVAL)
    }
}

/// `<cause>: 41 more in the 10s after the one logged above`.
fn summary(cause: &str, repeats: u64, interval: Duration) -> Line {
    Line {
        text: format!(
            "{cause}: {repeats} more in the {} after the one logged above",
            crate::links::fmt_duration(interval)
        ),
        cause: Some(cause.to_owned()),
        repeats: Some(repeats),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_of_a_cause_are_counted_once_per_interval() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut s = Summariser::new(Duration::from_secs(10));
        let bad = Some("wrong claim password");
        assert_eq!(s.event(at(0), bad, "403 from a".into()), ["403 from a"]);
        for i in 1..=500u64 {
            assert!(s.event(at(i), bad, format!("403 #{i}")).is_empty());
        }
        // Events without a cause are never held back, and do not flush.
        assert_eq!(
            s.event(at(600), None, "200 to east".into()),
            ["200 to east"]
        );
        assert!(s.due(at(9_999)).is_empty());
        assert_eq!(
            s.due(at(10_000)),
            ["wrong claim password: 500 more in the 10s after the one logged above"]
        );
        assert!(s.due(at(20_000)).is_empty(), "said once");
        // The next one starts a new interval and is printed in full.
        assert_eq!(
            s.event(at(30_000), bad, "403 from b".into()),
            ["403 from b"]
        );
    }

    #[test]
    fn causes_are_counted_apart_and_a_lone_event_has_no_summary() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut s = Summariser::new(Duration::from_secs(1));
        assert_eq!(s.event(at(0), Some("a"), "a1".into()), ["a1"]);
        assert_eq!(s.event(at(10), Some("b"), "b1".into()), ["b1"]);
        assert!(s.event(at(20), Some("b"), "b2".into()).is_empty());
        // A's interval ended without repeats: nothing to say. An event due
        // after b's interval brings b's summary first.
        assert_eq!(
            s.event(at(1_500), Some("a"), "a2".into()),
            ["b: 1 more in the 1s after the one logged above", "a2"]
        );
        assert!(s.event(at(1_600), Some("a"), "a3".into()).is_empty());
        let last = s.finish();
        assert_eq!(last, ["a: 1 more in the 1s after the one logged above"]);
        assert_eq!(
            (last[0].cause.as_deref(), last[0].repeats),
            (Some("a"), Some(1)),
            "a summary names its cause and count"
        );
        assert!(s.finish().is_empty());
    }
}
