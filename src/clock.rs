//! A cheap monotonic millisecond clock that fits in an atomic, for backend state timestamps.

use std::sync::OnceLock;
use std::time::Instant;

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Milliseconds since the process first asked; never 0, so 0 can mean "never".
pub fn now_ms() -> u64 {
    base().elapsed().as_millis() as u64 + 1
}
