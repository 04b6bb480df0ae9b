//! Progress on stderr: indicatif bars on a terminal (one per transfer, plus a total line when
//! several run at once), one plain line per finished step otherwise, nothing with `-q`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ocisdk::progress::{Reporter, TransferId};

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars, redrawn in place (needs a terminal).
    Tty,
    /// One line per finished step.
    Plain,
    /// Nothing.
    None,
}

impl ProgressMode {
    /// The mode for `--progress` (when given), `-q`, and whether stderr is a terminal.
    pub fn choose(flag: Option<ProgressMode>, quiet: bool) -> ProgressMode {
        match flag {
            Some(mode) => mode,
            None if quiet => ProgressMode::None,
            None if std::io::stderr().is_terminal() => ProgressMode::Tty,
            None => ProgressMode::Plain,
        }
    }
}

/// The CLI's [`Reporter`].
pub struct CliProgress {
    mode: ProgressMode,
    multi: MultiProgress,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    transfers: HashMap<TransferId, Transfer>,
    total: Option<ProgressBar>,
}

struct Transfer {
    name: String,
    total: Option<u64>,
    bytes: u64,
    bar: Option<ProgressBar>,
}

impl CliProgress {
    /// A reporter drawing in `mode`.
    pub fn new(mode: ProgressMode) -> CliProgress {
        let target = match mode {
            // Redraws at most 10 times a second: cheap even at gigabytes per second.
            ProgressMode::Tty => ProgressDrawTarget::stderr_with_hz(10),
            _ => ProgressDrawTarget::hidden(),
        };
        CliProgress {
            mode,
            multi: MultiProgress::with_draw_target(target),
            state: Mutex::new(State::default()),
        }
    }

    fn bar_style() -> ProgressStyle {
        ProgressStyle::with_template(
            "{msg:>20!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
    }

    fn spinner_style() -> ProgressStyle {
        ProgressStyle::with_template("{msg:>20!} {spinner} {bytes:>10} {bytes_per_sec:>12}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    fn line(&self, text: &str) {
        match self.mode {
            ProgressMode::Tty => {
                let _ = self.multi.println(text);
            }
            ProgressMode::Plain => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
            ProgressMode::None => {}
        }
    }
}

impl Reporter for CliProgress {
    fn transfer_started(&self, id: TransferId, name: &str, total: Option<u64>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let bar = (self.mode == ProgressMode::Tty).then(|| {
            let bar = match total {
                Some(size) => {
                    let bar = self.multi.add(ProgressBar::new(size));
                    bar.set_style(Self::bar_style());
                    bar
                }
                None => {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(Self::spinner_style());
                    bar
                }
            };
            bar.set_message(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        state.transfers.insert(
            id,
            Transfer {
                name: name.to_string(),
                total,
                bytes: 0,
                bar,
            },
        );
        if let Some(total_bar) = &state.total {
            total_bar.inc_length(total.unwrap_or(0));
        } else if self.mode == ProgressMode::Tty && state.transfers.len() > 1 {
            // From the second concurrent transfer on: everything in flight, so far and to come.
            let length = state.transfers.values().filter_map(|t| t.total).sum();
            let done = state.transfers.values().map(|t| t.bytes).sum();
            let total_bar = self.multi.add(ProgressBar::new(length));
            total_bar.set_style(Self::bar_style());
            total_bar.set_message("total");
            total_bar.set_position(done);
            state.total = Some(total_bar);
        }
    }

    fn transfer_progress(&self, id: TransferId, bytes: u64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(t) = state.transfers.get_mut(&id) {
            t.bytes += bytes;
            if let Some(bar) = &t.bar {
                bar.inc(bytes);
            }
        }
        if let Some(total) = &state.total {
            total.inc(bytes);
        }
    }

    fn transfer_finished(&self, id: TransferId) {
        self.end_transfer(id, true);
    }

    fn transfer_failed(&self, id: TransferId) {
        self.end_transfer(id, false);
    }

    fn step(&self, message: &str) {
        self.line(message);
    }
}

impl CliProgress {
    /// Removes a transfer's bar; one that `delivered` gets its "downloaded"/"uploaded" line
    /// (an upload attempt that failed and starts over gets none: nothing was uploaded).
    fn end_transfer(&self, id: TransferId, delivered: bool) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let Some(t) = state.transfers.remove(&id) else {
            return;
        };
        if let Some(bar) = t.bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if state.transfers.is_empty() {
            if let Some(total) = state.total.take() {
                total.finish_and_clear();
                self.multi.remove(&total);
            }
        }
        drop(state);
        if !delivered {
            return;
        }
        // The library names uploads "upload …"; everything else is a download.
        let line = match t.name.strip_prefix("upload ") {
            Some(what) => format!("uploaded {what} ({})", HumanBytes(t.bytes)),
            None => format!("downloaded {} ({})", t.name, HumanBytes(t.bytes)),
        };
        self.line(&line);
    }
}
