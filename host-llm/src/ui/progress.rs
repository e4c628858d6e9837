//! progress on long waits, on stderr only: stdout stays machine-readable.
//! on a terminal a line is redrawn in place (`\r`) at most ten times a
//! second and ends with a newline; on a pipe only the final line is printed,
//! so logs hold one line per wait instead of hundreds.
//!
//! the planner's counters (attempt, tokens) are process-wide atomics: the
//! decoding loop bumps them, [`Planning`] draws them, and ctrl-c in the
//! interactive shell sets [`cancel`] which the decoding loop checks.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// whether stderr is a terminal (where redrawn lines make sense).
pub fn stderr_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// `1.2 s`, `3 m 04 s`.
pub fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{} m {:02} s", s / 60, s % 60)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `93.8 MB`.
#[cfg_attr(not(feature = "local"), allow(dead_code, reason = "the model download is in the local backend"))]
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

/// a bar of `width` cells, `done` of `total` filled.
pub fn bar(done: u64, total: u64, width: usize) -> String {
    let total = total.max(1);
    let filled = usize::try_from(u128::from(done.min(total)) * width as u128 / u128::from(total)).unwrap_or(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width.saturating_sub(filled)))
}

/// a byte-count progress bar: `llmsh: extracting [████░░░░] 42% 41.3/98.4 MB 1.2 s`.
#[cfg_attr(not(feature = "local"), allow(dead_code, reason = "the model download is in the local backend"))]
pub struct Bytes {
    label: String,
    total: u64,
    done: u64,
    start: Instant,
    drawn: Option<Instant>,
    tty: bool,
}

#[cfg_attr(not(feature = "local"), allow(dead_code, reason = "the model download is in the local backend"))]
impl Bytes {
    /// a bar for `total` bytes.
    pub fn new(label: &str, total: u64) -> Bytes {
        Bytes { label: label.into(), total, done: 0, start: Instant::now(), drawn: None, tty: stderr_tty() }
    }

    fn line(&self) -> String {
        let pct = self.done.saturating_mul(100) / self.total.max(1);
        format!(
            "llmsh: {} [{}] {pct:3}% {}/{} {}",
            self.label,
            bar(self.done, self.total, 30),
            megabytes(self.done),
            megabytes(self.total),
            elapsed(self.start.elapsed())
        )
    }

    /// `n` more bytes done; redraws when due.
    pub fn add(&mut self, n: u64) {
        self.done = self.done.saturating_add(n);
        let due = self.drawn.is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if self.tty && due {
            eprint!("\r{}", self.line());
            let _ = std::io::stderr().flush();
            self.drawn = Some(Instant::now());
        }
    }

    /// the final line, with its newline.
    pub fn finish(self) {
        if self.tty {
            eprintln!("\r{}", self.line());
        } else {
            eprintln!("{}", self.line());
        }
    }
}

/// `n of N` steps with the time spent: red-team and bench runs.
pub struct Steps {
    label: String,
    total: usize,
    start: Instant,
    tty: bool,
}

impl Steps {
    /// `total` steps under `label`.
    pub fn new(label: &str, total: usize) -> Steps {
        Steps { label: label.into(), total, start: Instant::now(), tty: stderr_tty() }
    }

    /// step `n` (1-based) is starting; `what` names it.
    pub fn at(&self, n: usize, what: &str) {
        if !self.tty {
            return;
        }
        let what: String = what.chars().take(48).collect();
        eprint!("\r\x1b[2Kllmsh: {} {n} of {} · {} · {what}", self.label, self.total, elapsed(self.start.elapsed()));
        let _ = std::io::stderr().flush();
    }

    /// a line of its own above the progress line.
    pub fn note(&self, line: &str) {
        let clear = if self.tty { "\r\x1b[2K" } else { "" };
        eprintln!("{clear}{line}");
    }

    /// the final line, with its newline.
    pub fn finish(self) {
        let clear = if self.tty { "\r\x1b[2K" } else { "" };
        eprintln!("{clear}llmsh: {} {} of {} done in {}", self.label, self.total, self.total, elapsed(self.start.elapsed()));
    }
}

static ATTEMPT: AtomicU64 = AtomicU64::new(0);
static TOKENS: AtomicU64 = AtomicU64::new(0);
static CANCEL: AtomicBool = AtomicBool::new(false);

/// the decoding loop produced one more token.
#[cfg_attr(not(feature = "local"), allow(dead_code, reason = "only the local backend decodes here"))]
pub fn token() {
    TOKENS.fetch_add(1, Ordering::Relaxed);
}

/// whether the person asked to stop planning (ctrl-c in the shell).
pub fn cancelled() -> bool {
    CANCEL.load(Ordering::Relaxed)
}

/// clears a cancel request before a new plan starts.
pub fn reset_cancel() {
    CANCEL.store(false, Ordering::Relaxed);
}

/// asks the planner to stop at its next token.
pub fn cancel() {
    CANCEL.store(true, Ordering::Relaxed);
}

/// a planning run: a line redrawn every 200 ms on a terminal, `planning ·
/// attempt 2 · 131 tokens · 4.2 s`, cleared when dropped.
pub struct Planning {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Planning {
    /// starts drawing (a no-op off a terminal, where the planner's own
    /// per-attempt lines suffice).
    pub fn start() -> Planning {
        ATTEMPT.store(1, Ordering::Relaxed);
        TOKENS.store(0, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = stderr_tty().then(|| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let t = Instant::now();
                while !stop.load(Ordering::Relaxed) && !cancelled() {
                    eprint!(
                        "\r\x1b[2Kllmsh: planning · attempt {} · {} tokens · {}",
                        ATTEMPT.load(Ordering::Relaxed),
                        TOKENS.load(Ordering::Relaxed),
                        elapsed(t.elapsed())
                    );
                    let _ = std::io::stderr().flush();
                    std::thread::sleep(Duration::from_millis(200));
                }
                eprint!("\r\x1b[2K");
                let _ = std::io::stderr().flush();
            })
        });
        Planning { stop, thread }
    }

    /// an attempt ended; `line` says how (printed on its own line).
    pub fn attempt_done(&self, line: &str) {
        if self.thread.is_some() {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{line}");
        ATTEMPT.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Planning {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_in_proportion_and_never_overflow() {
        assert_eq!(bar(0, 10, 10), "░".repeat(10));
        assert_eq!(bar(5, 10, 10), format!("{}{}", "█".repeat(5), "░".repeat(5)));
        assert_eq!(bar(99, 10, 10), "█".repeat(10));
        assert_eq!(bar(u64::MAX, 0, 4), "█".repeat(4));
    }

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(elapsed(Duration::from_millis(1234)), "1.2 s");
        assert_eq!(elapsed(Duration::from_secs(184)), "3 m 04 s");
    }
}
