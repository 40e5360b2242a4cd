//! Progress of long work (`import` of many files, `verify`, `stats`, `rollback`, `claim
//! --shard`, `bench`, the bot phase of `demo`; `ship` ends with the summary only): a
//! bar on stderr with the count, the rate and an ETA, **only on a terminal** (stderr is a
//! TTY), never with `--quiet`; then a one-line human summary on stderr (not with `--quiet`).
//! Output meant for programs (stdout, JSON) is never touched, so piped runs see no bar.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `--quiet`, set once at start.
static QUIET: OnceLock<bool> = OnceLock::new();

/// Records `--quiet` (no bar, no summary).
pub(crate) fn set_quiet(quiet: bool) {
    let _ = QUIET.set(quiet);
}

fn quiet() -> bool {
    QUIET.get().copied().unwrap_or(false)
}

/// A count of `len` items being worked through (see the module docs).
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    /// A bar over `len` items called `unit` (e.g. "guilds"), labelled `what`, when stderr is a
    /// terminal and neither `--quiet` nor `json` output asks for silence.
    pub(crate) fn new(len: u64, what: &str, unit: &str, json: bool) -> Progress {
        let shown = !quiet() && !json && std::io::stderr().is_terminal();
        let bar = shown.then(|| {
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            let template = format!(
                "reprise: {what} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}}) {{msg}}"
            );
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            // Drawn now (with a steady tick, updates are drawn only at the ticks: work done
            // before the first one would show nothing), then redrawn every 200 ms, so the
            // rate and ETA move while one long item runs.
            bar.tick();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
        }
    }

    /// `n` more items done.
    pub(crate) fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// A short note beside the count (the item being worked on).
    pub(crate) fn note(&self, message: impl Into<std::borrow::Cow<'static, str>>) {
        if let Some(bar) = &self.bar {
            bar.set_message(message);
        }
    }

    /// Starts a named stage of the work: the note beside the bar on a terminal, else a line
    /// `reprise: {what}: {stage}` on stderr (unless `--quiet`).
    pub(crate) fn stage(&self, what: &str, stage: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(stage.to_owned()),
            None if !quiet() => eprintln!("reprise: {what}: {stage}"),
            None => {}
        }
    }

    /// Clears the bar and prints `reprise: {summary} in {elapsed}` on stderr (unless
    /// `--quiet`).
    pub(crate) fn finish(self, summary: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if !quiet() {
            eprintln!(
                "reprise: {summary} in {:.2} s",
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An error part-way: the bar goes, the error message follows on a clean line.
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
