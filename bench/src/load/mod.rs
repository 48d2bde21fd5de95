//! The load generator: virtual users with their own cookie jar and source address, paced on an
//! open-loop schedule, each running the flow (the demo shop's or the user's) and checking that
//! its session and its writes are still there.
//!
//! Latency is measured from the *intended* send time, so a stalled backend that delays a user's
//! next action is charged to that action (no coordinated omission). Pacing sleeps until just
//! before the intended time and then yields until it arrives, because tokio's timer wakes up to
//! a millisecond late; the lag that remains is measured and reported.

mod outcome;
mod pacing;
mod progress;
mod replay;
mod send;
mod spec;
mod user;
mod ws;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use tokio::time::Instant;

pub use self::outcome::{LoadResult, Loss, Outcome, Sample};
pub use self::progress::Progress;
pub use self::replay::{revocation, Probe, Replay, Revocation};
pub use self::spec::LoadSpec;
use self::user::User;
pub use self::ws::WS_KINDS;

/// Runs `spec` to its end and returns what the users saw.
/// Users start acting at `start` (so the caller can time events against the same clock).
pub async fn run(spec: LoadSpec, start: Instant, progress: Arc<Progress>) -> LoadResult {
    let spec = Arc::new(spec);
    let next_identity = Arc::new(AtomicU32::new(0));
    let hot = (spec.users as f64 * spec.hot_users).round() as usize;
    let mut tasks = Vec::with_capacity(spec.users);
    for i in 0..spec.users {
        let user = User::new(
            Arc::clone(&spec),
            start,
            Arc::clone(&next_identity),
            i < hot,
            Arc::clone(&progress),
            i,
        );
        tasks.push(tokio::spawn(user.run()));
    }
    let mut all = LoadResult::default();
    for t in tasks {
        if let Ok(r) = t.await {
            all.samples.extend(r.samples);
            all.losses.extend(r.losses);
            all.replays.extend(r.replays);
        }
    }
    all.samples.sort_by_key(|s| s.at);
    all.losses.sort_by_key(|l| l.at);
    all
}
