//! Validation of a pool's retry limits: `max_attempts`, `retry_budget` and
//! `min_retry_concurrency`.

use super::problems::Problems;
use super::raw::RawPool;

/// The retry limits, checked.
pub(super) struct Retry {
    pub(super) max_attempts: usize,
    pub(super) budget: f64,
    pub(super) min_concurrency: usize,
}

pub(super) fn validate(p: &mut Problems<'_>, key: &str, rp: &RawPool) -> Retry {
    let max_attempts = match &rp.max_attempts {
        None => 3,
        Some(n) => match usize::try_from(*n.get_ref()) {
            Ok(n @ 1..=100) => n,
            _ => {
                p.add(
                    &format!("{key}.max_attempts"),
                    n,
                    "must be from 1 (no retry) to 100 backends per request",
                );
                3
            }
        },
    };
    let budget = match &rp.retry_budget {
        None => 0.2,
        Some(r) if (0.0..=1.0).contains(r.get_ref()) => *r.get_ref(),
        Some(r) => {
            p.add(
                &format!("{key}.retry_budget"),
                r,
                "must be a share from 0.0 to 1.0 of the requests in flight (e.g. 0.2)",
            );
            0.2
        }
    };
    Retry {
        max_attempts,
        budget,
        min_concurrency: rp.min_retry_concurrency.unwrap_or(3),
    }
}
