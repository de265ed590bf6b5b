//! What the user sees while kindred works: one line per step, a spinner and elapsed time on a
//! terminal, plain timestamped lines otherwise (CI logs), nothing with `-q`, and the underlying
//! command output with `-v`. Everything goes to stderr so stdout stays machine-readable.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

#[derive(Debug, Clone)]
pub struct Ui {
    inner: Arc<UiInner>,
}

#[derive(Debug)]
struct UiInner {
    verbosity: Verbosity,
    /// Spinners only make sense on a terminal a person watches.
    interactive: bool,
}

impl Ui {
    pub fn new(verbosity: Verbosity) -> Self {
        let interactive = std::io::stderr().is_terminal()
            && std::env::var_os("CI").is_none()
            && verbosity == Verbosity::Normal;
        Ui {
            inner: Arc::new(UiInner {
                verbosity,
                interactive,
            }),
        }
    }

    /// A Ui that prints nothing; for library callers and tests.
    pub fn quiet() -> Self {
        Ui::new(Verbosity::Quiet)
    }

    pub fn verbosity(&self) -> Verbosity {
        self.inner.verbosity
    }

    pub fn is_verbose(&self) -> bool {
        self.inner.verbosity == Verbosity::Verbose
    }

    /// A line shown unless quiet.
    pub fn info(&self, msg: impl AsRef<str>) {
        if self.inner.verbosity != Verbosity::Quiet {
            eprintln!("{}", self.decorate(msg.as_ref()));
        }
    }

    /// A problem worth knowing about, shown even with `-q`.
    pub fn warn(&self, msg: impl AsRef<str>) {
        eprintln!("{}", self.decorate(&format!("warning: {}", msg.as_ref())));
    }

    /// A line shown only with `-v`.
    pub fn detail(&self, msg: impl AsRef<str>) {
        if self.is_verbose() {
            eprintln!("{}", self.decorate(msg.as_ref()));
        }
    }

    /// Starts a step; finish it with [`Step::done`] (or it is marked failed when dropped).
    pub fn step(&self, title: impl Into<String>) -> Step {
        let title = title.into();
        let bar = if self.inner.interactive {
            let bar = ProgressBar::new_spinner().with_message(title.clone());
            bar.set_style(
                ProgressStyle::with_template(" {spinner} {msg} {elapsed:.dim}")
                    .expect("static template is valid"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            Some(bar)
        } else {
            if self.inner.verbosity != Verbosity::Quiet {
                eprintln!("{}", self.decorate(&format!("• {title} ...")));
            }
            None
        };
        Step {
            ui: self.clone(),
            title,
            started: Instant::now(),
            bar,
            finished: false,
        }
    }

    fn decorate(&self, msg: &str) -> String {
        if self.inner.interactive {
            msg.to_string()
        } else {
            format!("[{}] {msg}", clock())
        }
    }
}

/// One unit of work shown to the user.
pub struct Step {
    ui: Ui,
    title: String,
    started: Instant,
    bar: Option<ProgressBar>,
    finished: bool,
}

impl Step {
    /// A line of underlying output (a build log line, a command being run); shown with `-v`.
    pub fn detail(&self, line: impl AsRef<str>) {
        if !self.ui.is_verbose() {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(format!("    {}", line.as_ref())),
            None => eprintln!("    {}", line.as_ref()),
        }
    }

    /// A line the user should see even without `-v` (e.g. what the step is waiting for); not
    /// with `-q`.
    pub fn note(&self, line: impl AsRef<str>) {
        if self.ui.inner.verbosity == Verbosity::Quiet {
            return;
        }
        let line = self.ui.decorate(&format!("    {}", line.as_ref()));
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Updates the text after the title, e.g. which component is being built.
    pub fn progress(&self, msg: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{} ({})", self.title, msg.as_ref())),
            None => self
                .ui
                .detail(format!("  {}: {}", self.title, msg.as_ref())),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Marks the step successful.
    pub fn done(self) {
        self.finish(true, None);
    }

    /// Marks the step successful with a short note, e.g. "cached".
    pub fn done_with(self, note: impl Into<String>) {
        self.finish(true, Some(note.into()));
    }

    /// Marks the step failed; the caller reports the error itself.
    pub fn fail(self) {
        self.finish(false, None);
    }

    fn finish(mut self, ok: bool, note: Option<String>) {
        self.print_end(ok, note);
        self.finished = true;
    }

    fn print_end(&mut self, ok: bool, note: Option<String>) {
        let mark = if ok { "✓" } else { "✗" };
        let note = note.map(|n| format!(", {n}")).unwrap_or_default();
        let line = format!(
            "{mark} {} ({:.1}s{note})",
            self.title,
            self.started.elapsed().as_secs_f64()
        );
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.ui.inner.verbosity != Verbosity::Quiet {
            eprintln!("{}", self.ui.decorate(&format!(" {line}")));
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if !self.finished {
            self.print_end(false, None);
        }
    }
}

/// Wall-clock time of day in UTC, HH:MM:SS, for non-interactive logs.
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_hh_mm_ss() {
        let c = clock();
        assert_eq!(c.len(), 8);
        assert_eq!(&c[2..3], ":");
        assert_eq!(&c[5..6], ":");
    }

    #[test]
    fn quiet_ui_is_never_interactive() {
        let ui = Ui::quiet();
        assert!(!ui.inner.interactive);
        assert!(!ui.is_verbose());
        ui.step("a step that is dropped").done();
    }
}
