//! Rate-limited warnings: a backend that fails every request must not write a warning per
//! request (a flood at any real rate). Each backend may log a few warnings per second; the
//! rest are counted and summed up in one line when logging resumes. Per-request detail stays
//! in the access log; state changes (ejection, health) are logged apart and never limited.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::clock::now_ms;

/// Warnings one backend may log per second.
pub const PER_SECOND: u32 = 5;

/// One source's warning budget for the current second.
#[derive(Debug, Default)]
pub struct LogLimit {
    second: AtomicU64,
    logged: AtomicU32,
    suppressed: AtomicU64,
}

impl LogLimit {
    /// Whether a warning may be logged now. `Some(n)`: yes, and `n` were suppressed since the
    /// last one logged (the caller says so); `None`: suppressed and counted.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(now_ms() / 1000)
    }

    fn allow_at(&self, second: u64) -> Option<u64> {
        let seen = self.second.load(Ordering::Relaxed);
        if seen != second
            && self
                .second
                .compare_exchange(seen, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.logged.store(0, Ordering::Relaxed);
        }
        if self.logged.fetch_add(1, Ordering::Relaxed) < PER_SECOND {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_per_second_then_a_count_of_the_rest() {
        let limit = LogLimit::default();
        let first: Vec<_> = (0..8).map(|_| limit.allow_at(10)).collect();
        assert_eq!(&first[..5], &[Some(0); 5]);
        assert_eq!(&first[5..], &[None; 3]);
        assert_eq!(
            limit.allow_at(11),
            Some(3),
            "the next second says 3 were left out"
        );
        assert_eq!(limit.allow_at(11), Some(0));
    }
}
