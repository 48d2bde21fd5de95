//! What a rate limit let through, per user: requests admitted (2xx) and refused (429), the
//! mean admitted per user per second, and the most admitted to one user in any one second.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::load::LoadResult;

/// The status of a refused request.
const TOO_MANY: u16 = 429;

/// A cell's figures under a rate limit.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct RateFigures {
    /// Requests within a session answered 2xx.
    pub admitted: u64,
    /// Requests answered 429.
    pub limited: u64,
    /// Admitted requests per user per second of the user's activity (first to last request
    /// within a session).
    pub per_user_s: f64,
    /// The most requests admitted to one user within any one second (by send time).
    pub peak_1s: u64,
}

/// The figures of a cell whose backends refused something with a 429 (`None`: no limit hit).
pub fn rate_figures(r: &LoadResult) -> Option<RateFigures> {
    let limited = r
        .samples
        .iter()
        .filter(|x| x.status == Some(TOO_MANY))
        .count() as u64;
    if limited == 0 {
        return None;
    }
    let mut per_user: BTreeMap<u32, (Duration, Duration, Vec<Duration>)> = BTreeMap::new();
    for x in r.samples.iter().filter(|x| x.step > 0) {
        let e = per_user
            .entry(x.identity)
            .or_insert((x.at, x.at, Vec::new()));
        e.0 = e.0.min(x.at);
        e.1 = e.1.max(x.at);
        if x.status.is_some_and(|s| (200..300).contains(&s)) {
            e.2.push(x.sent);
        }
    }
    let mut f = RateFigures {
        limited,
        ..Default::default()
    };
    let mut active = 0.0;
    for (first, last, mut sent) in per_user.into_values() {
        active += (last - first).as_secs_f64();
        f.admitted += sent.len() as u64;
        sent.sort_unstable();
        let mut i = 0;
        for j in 0..sent.len() {
            while sent[j] - sent[i] >= Duration::from_secs(1) {
                i += 1;
            }
            f.peak_1s = f.peak_1s.max((j - i + 1) as u64);
        }
    }
    f.per_user_s = if active > 0.0 {
        f.admitted as f64 / active
    } else {
        0.0
    };
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Sample;

    fn at(ms: u64, status: u16) -> Sample {
        let t = Duration::from_millis(ms);
        Sample {
            step: 1,
            status: Some(status),
            ..Sample::timed(t, t, t)
        }
    }

    #[test]
    fn peak_counts_admissions_within_one_second() {
        let r = LoadResult {
            samples: vec![
                at(0, 200),
                at(100, 200),
                at(200, 429),
                at(1050, 200),
                at(2000, 200),
            ],
            ..Default::default()
        };
        let f = rate_figures(&r).unwrap();
        assert_eq!((f.admitted, f.limited, f.peak_1s), (4, 1, 2));
        assert!((f.per_user_s - 2.0).abs() < 1e-9);
    }
}
