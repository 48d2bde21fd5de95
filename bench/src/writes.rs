//! What became of a cell's writes: how many the backends acknowledged, and how many a later
//! read of the same session came back without (lost updates).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::load::{LoadResult, Outcome};

/// A cell's writes.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Writes {
    /// Writes the backends acknowledged (2xx to a `write = true` step).
    #[serde(default)]
    pub writes_acked: u64,
    /// Acknowledged writes that a later read of the session came back without.
    #[serde(default)]
    pub lost_updates: u64,
}

/// The writes of a cell, from its record.
pub fn writes(r: &LoadResult) -> Writes {
    Writes {
        writes_acked: r
            .samples
            .iter()
            .filter(|x| x.write && x.outcome == Outcome::Ok)
            .count() as u64,
        lost_updates: r.samples.iter().map(|x| u64::from(x.missing)).sum(),
    }
}

/// What a read-modify-write store keeps of each burst of concurrent writes when every copy
/// reads before any writes back: the last write-back, holding one of the burst's items. The
/// writes it loses: over the bursts (acknowledged writes of one user sharing a step and an
/// intended time) that a successful read of the same session followed, acknowledged - 1.
pub fn rmw_losses(r: &LoadResult) -> u64 {
    let mut bursts: BTreeMap<(u32, u32, usize, u128), u64> = BTreeMap::new();
    for x in r
        .samples
        .iter()
        .filter(|x| x.write && x.outcome == Outcome::Ok)
    {
        *bursts
            .entry((x.identity, x.session, x.step, x.at.as_micros()))
            .or_default() += 1;
    }
    let read_after = |&(user, session, step, at): &(u32, u32, usize, u128)| {
        r.samples.iter().any(|x| {
            (x.identity, x.session) == (user, session)
                && x.step > step
                && !x.write
                && x.at.as_micros() >= at
                && x.outcome == Outcome::Ok
        })
    };
    bursts
        .iter()
        .filter(|(k, n)| **n > 1 && read_after(k))
        .map(|(_, n)| n - 1)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Sample;
    use std::time::Duration;

    fn req(step: usize, at_ms: u64, write: bool, missing: u32) -> Sample {
        let t = Duration::from_millis(at_ms);
        Sample {
            step,
            write,
            missing,
            ..Sample::timed(t, t, t)
        }
    }

    #[test]
    fn a_read_modify_write_keeps_one_add_per_burst_read_back() {
        let mut samples: Vec<Sample> = (0..5).map(|_| req(1, 100, true, 0)).collect();
        samples.push(req(2, 130, false, 4));
        // A second burst the run ended before reading back: nothing is known lost there.
        samples.extend((0..5).map(|_| req(1, 400, true, 0)));
        let r = LoadResult {
            samples,
            ..Default::default()
        };
        assert_eq!(rmw_losses(&r), 4);
        let w = writes(&r);
        assert_eq!((w.writes_acked, w.lost_updates), (10, 4));
    }
}
