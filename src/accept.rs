//! What an accept loop does when `accept` fails: pause, longer each time in a row, so that a
//! process out of file descriptors (EMFILE, ENFILE) or socket buffers (ENOBUFS) waits for some
//! to be freed instead of spinning on the error at full CPU, starving every other task of the
//! thread it runs on.

use std::io;
use std::time::Duration;

/// Exponential pause between failed accepts, reset by the next successful one.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    /// The pause after the last failure; `None` after a success.
    last: Option<Duration>,
}

impl AcceptBackoff {
    /// The first pause after a failure.
    pub const MIN: Duration = Duration::from_millis(10);
    /// The longest pause, however many failures in a row.
    pub const MAX: Duration = Duration::from_secs(1);

    /// An accept succeeded: the next failure starts again from [`Self::MIN`].
    pub fn succeeded(&mut self) {
        self.last = None;
    }

    /// An accept failed: the pause to take now (doubling from [`Self::MIN`] up to
    /// [`Self::MAX`]).
    pub fn failed(&mut self) -> Duration {
        let next = self
            .last
            .map_or(Self::MIN, |d| d.saturating_mul(2).min(Self::MAX));
        self.last = Some(next);
        next
    }

    /// Logs the failure (warn on the first of a run, debug after, so a long run is not a
    /// flood) and pauses.
    pub async fn pause(&mut self, listener: &str, error: &io::Error) {
        let first = self.last.is_none();
        let pause = self.failed();
        if first {
            tracing::warn!(listener.name = %listener, error = %error, "accept failed; backing off");
        } else {
            tracing::debug!(listener.name = %listener, error = %error, pause = ?pause, "accept failed again");
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_a_success_resets_them() {
        let mut b = AcceptBackoff::default();
        let pauses: Vec<u64> = (0..9).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), AcceptBackoff::MIN);
    }
}
