//! The progress line of a running cell on stderr: redrawn in place on a terminal, one line
//! now and then in a CI log.

use std::io::{IsTerminal, Write as _};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::load::Progress;

/// Prints the live counters until the task is aborted.
pub async fn progress_line(label: String, start: Instant, duration: Duration, p: Arc<Progress>) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let t = start.elapsed().as_secs_f64().min(duration.as_secs_f64());
        let line = format!(
            "{label}: {t:.1}/{:.1}s  requests {}  errors {}  sessions lost {}",
            duration.as_secs_f64(),
            p.requests.load(Ordering::Relaxed),
            p.errors.load(Ordering::Relaxed),
            p.lost.load(Ordering::Relaxed)
        );
        let mut err = std::io::stderr();
        if tty {
            let _ = write!(err, "\r{line}\x1b[K");
        } else {
            let _ = writeln!(err, "{line}");
        }
    }
}
