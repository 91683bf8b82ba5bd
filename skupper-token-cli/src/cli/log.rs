//! `serve`'s log: every event goes through `tracing`, after the
//! [`Summariser`] has counted repeats of one cause, and the subscriber
//! installed here writes it to standard output in the chosen format:
//!
//! - `text` (the default): one line per event, `<RFC 3339 time> <message>`,
//!   the format a person reads on a terminal;
//! - `json`: one JSON object per line for log collectors:
//!   `{"timestamp":"…","level":"INFO","message":"…","cause":"…"}`, with
//!   `cause` on events that are counted per cause (refused handshakes,
//!   wrong passwords, store errors retried) and `repeats` on the summary
//!   line that counts them.
//!
//! Successful redemptions and link events have no cause and are always
//! logged (`INFO`); events with a cause are `WARN`.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use skupper_token_cli::log_summary::{Line, Summariser};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::args::LogFormat;
use super::output::rfc3339;

/// The target of `serve`'s log events (for an embedder's filters).
pub(crate) const TARGET: &str = "skupper_token::serve";

/// The log of a running site; see the [module documentation](self).
pub(crate) struct Log {
    summary: Mutex<Summariser>,
}

impl Log {
    /// A log that writes through the subscriber [`install`] set up.
    pub(crate) fn new() -> Log {
        Log {
            summary: Mutex::new(Summariser::default()),
        }
    }

    /// One event: logged now, or counted if its `cause` was logged within
    /// the summariser's interval.
    pub(crate) fn event(&self, cause: Option<String>, line: impl fmt::Display) {
        let lines = self
            .lock()
            .event(Instant::now(), cause.as_deref(), line.to_string());
        emit(lines);
    }

    /// Summaries whose interval has ended.
    pub(crate) fn tick(&self) {
        let lines = self.lock().due(Instant::now());
        emit(lines);
    }

    /// Every pending summary (the site is stopping).
    pub(crate) fn finish(&self) {
        let lines = self.lock().finish();
        emit(lines);
    }

    fn lock(&self) -> MutexGuard<'_, Summariser> {
        // The summariser is changed in single calls: a panic cannot leave
        // it half-changed.
        self.summary.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The summariser's lines as events: causes and counts as fields.
fn emit(lines: Vec<Line>) {
    for line in lines {
        let text = &line.text;
        match (line.cause.as_deref(), line.repeats) {
            (Some(cause), Some(repeats)) => {
                tracing::warn!(target: TARGET, cause, repeats, "{text}")
            }
            (Some(cause), None) => tracing::warn!(target: TARGET, cause, "{text}"),
            (None, _) => tracing::info!(target: TARGET, "{text}"),
        }
    }
}

/// Installs the subscriber that writes `serve`'s log to standard output
/// in `format`. A subscriber installed before (by an embedder, or a second
/// call) is kept.
pub(crate) fn install(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_max_level(tracing::Level::INFO);
    let _ = match format {
        LogFormat::Text => builder.event_format(Text).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .with_timer(tracing_subscriber::fmt::time::UtcTime::rfc_3339())
            .try_init(),
    };
}

/// `<RFC 3339 time> <message>`: the text format.
struct Text;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut message = Message(String::new());
        event.record(&mut message);
        writeln!(
            writer,
            "{} {}",
            rfc3339(time::OffsetDateTime::now_utc()),
            message.0
        )
    }
}

/// The `message` field of an event.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            use fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
}
