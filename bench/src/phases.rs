//! A cell's timeline cut at its events: what the users saw between one event and the next
//! (requests, errors, sessions lost, by intended send time), so each event's cost reads off.

use serde::{Deserialize, Serialize};

use crate::load::{LoadResult, Outcome, Sample};

/// What the users saw between one timeline event and the next (by intended send time).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Phase {
    /// The event that opened it ("start" for the first).
    pub after: String,
    /// From (s since the load began).
    pub from_s: f64,
    /// To (s; the last request's intended time for the last phase).
    pub to_s: f64,
    /// Requests intended in it.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Sessions lost by its requests.
    pub sessions_lost: u64,
    /// Distinct users that lost a session in it.
    pub users_lost: u64,
}

/// The phases of `r` between `marks` (seconds, "action target"), the first after "start".
pub fn phases(r: &LoadResult, marks: &[(f64, String)]) -> Vec<Phase> {
    let end = r.samples.last().map_or(0.0, |x| x.at.as_secs_f64());
    let mut bounds = vec![(0.0, "start".to_string())];
    bounds.extend(marks.iter().cloned());
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    (0..bounds.len())
        .map(|i| {
            let (from, after) = bounds[i].clone();
            let to = bounds.get(i + 1).map_or(end.max(from), |b| b.0);
            let last = i + 1 == bounds.len();
            let inside: Vec<&Sample> = r
                .samples
                .iter()
                .filter(|x| {
                    let t = x.at.as_secs_f64();
                    t >= from && (t < to || last)
                })
                .collect();
            let mut lost: Vec<u32> = inside
                .iter()
                .filter(|x| x.lost.is_some())
                .map(|x| x.identity)
                .collect();
            let sessions_lost = lost.len() as u64;
            lost.sort_unstable();
            lost.dedup();
            Phase {
                after,
                from_s: from,
                to_s: to,
                requests: inside.len() as u64,
                errors: inside
                    .iter()
                    .filter(|x| matches!(x.outcome, Outcome::Error(_)))
                    .count() as u64,
                sessions_lost,
                users_lost: lost.len() as u64,
            }
        })
        .collect()
}
