//! Progress while a command waits, on standard error: a spinner line that
//! redraws four times a second and is cleared at the end, only when
//! standard error is a terminal (indicatif checks). Piped to a file or a
//! CI log it writes nothing; the command's result is the one line left.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Frames per second.
const HZ: u8 = 4;

/// A spinner with a fixed prefix and a message that changes.
pub(crate) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Starts the spinner: `<spinner> <prefix> (<elapsed>): <message>`.
    pub(crate) fn start(prefix: String) -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(HZ));
        // The template is a constant: it parses.
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {prefix} ({elapsed}): {wide_msg}")
        {
            bar.set_style(style);
        }
        bar.set_prefix(prefix);
        bar.enable_steady_tick(Duration::from_millis(1000 / u64::from(HZ)));
        Progress { bar }
    }

    /// Shows `message` from the next frame on.
    pub(crate) fn set(&self, message: &str) {
        if self.bar.message() != message {
            self.bar.set_message(message.to_owned());
        }
    }
}

impl Drop for Progress {
    /// Clears the spinner line, so what the command prints next starts on
    /// a clean line.
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
