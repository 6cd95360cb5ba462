//! Progress on a terminal (a spinner with elapsed time), plain log lines otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner that degrades to plain lines on stderr when it is not a terminal.
pub struct Spinner {
    bar: Option<ProgressBar>,
}

impl Spinner {
    /// Starts a spinner with `message`.
    pub fn start(message: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            eprintln!("{message} ...");
            return Self { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner:.cyan} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar: Some(bar) }
    }

    /// Ends with a success line.
    pub fn finish(self, message: &str) {
        match self.bar {
            Some(bar) => bar.finish_with_message(message.to_string()),
            None => eprintln!("{message}"),
        }
    }

    /// Ends without a message (the error is printed by the caller).
    pub fn abandon(self) {
        if let Some(bar) = self.bar {
            bar.abandon();
        }
    }
}
