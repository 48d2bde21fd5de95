//! Live counters of a running load, for the progress line.

use std::sync::atomic::AtomicU64;

/// Live counters for the progress line.
#[derive(Default, Debug)]
pub struct Progress {
    /// Requests finished.
    pub requests: AtomicU64,
    /// Of which errors.
    pub errors: AtomicU64,
    /// Sessions lost so far.
    pub lost: AtomicU64,
}
