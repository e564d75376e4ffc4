//! A progress bar on stderr for long pulls (only when stderr is a terminal).

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// A progress bar: `[#####.....] done/total facts  rate/s`.
#[derive(Debug)]
pub struct Progress {
    total: u64,
    started: Instant,
    shown: bool,
    tty: bool,
}

impl Progress {
    /// A bar for `total` items (drawn only on a terminal, or when `force`).
    pub fn new(total: u64, force: bool) -> Self {
        Progress {
            total,
            started: Instant::now(),
            shown: false,
            tty: force || std::io::stderr().is_terminal(),
        }
    }

    /// The bar's text for `done` items.
    pub fn line(&self, done: u64) -> String {
        const WIDTH: u64 = 30;
        let total = self.total.max(done).max(1);
        let filled = (done * WIDTH / total) as usize;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        format!(
            "[{}{}] {done}/{} facts  {:.0}/s",
            "#".repeat(filled),
            ".".repeat(WIDTH as usize - filled),
            self.total.max(done),
            done as f64 / secs
        )
    }

    /// Redraws the bar.
    pub fn update(&mut self, done: u64) {
        if self.tty {
            let mut e = std::io::stderr();
            let _ = write!(e, "\r{}", self.line(done));
            let _ = e.flush();
            self.shown = true;
        }
    }

    /// Ends the bar's line.
    pub fn finish(&mut self) {
        if self.shown {
            eprintln!();
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bar_fills_with_progress() {
        let p = super::Progress::new(10, false);
        assert!(p.line(0).starts_with("[......"));
        assert!(p.line(5).starts_with("[###############..."));
        assert!(p.line(10).contains("10/10 facts"));
    }
}
