//! Open-loop pacing: waiting for an intended send time more precisely than tokio's timer does,
//! and saying how late the wait ended.

use std::time::Duration;

use tokio::time::Instant;

/// The part of the wait spent yielding instead of sleeping, to beat the timer's granularity.
const SPIN: Duration = Duration::from_micros(1500);

/// Waits until `t`. Returns the lag past `t` when the wait started early enough to be on time,
/// `None` when `t` had already passed (the user was busy).
pub async fn wait_until(t: Instant) -> Option<Duration> {
    let now = Instant::now();
    if now >= t {
        return None;
    }
    if t - now > SPIN {
        tokio::time::sleep_until(t - SPIN).await;
    }
    while Instant::now() < t {
        tokio::task::yield_now().await;
    }
    Some(Instant::now() - t)
}
