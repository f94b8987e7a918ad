//! Progress bars for long replays, drawn only when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A commands counter with a spinner; a no-op when disabled or when stderr is not a terminal,
/// so that scripts and tests see only the summary.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(enabled: bool, what: &str) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix}: {human_pos} commands, {per_sec}, {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(what.to_string());
        Progress { bar: Some(bar) }
    }

    /// Callers update every million or so commands, so the cost stays off the hot loop.
    #[inline]
    pub fn set(&mut self, commands: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(commands);
        }
    }

    pub fn finish(&mut self, commands: u64) {
        if let Some(bar) = self.bar.take() {
            bar.set_position(commands);
            bar.finish_and_clear();
        }
    }
}
