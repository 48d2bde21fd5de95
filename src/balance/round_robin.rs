//! Smooth weighted round robin, precomputed: O(1) per pick, lock-free, exactly proportional.
//!
//! The schedule is one full cycle of nginx's smooth weighted round robin (each step every
//! backend gains its weight, the richest is picked and pays the total), so weights 1:2 give
//! b a b, never a b b in a burst. nginx runs that under a lock per request; tether runs it once
//! when the pool is built and the hot path is a single `fetch_add` on a cursor.
//!
//! Building the cycle costs backends x total weight steps. For very large pools with uneven
//! weights that would be slow, so beyond a budget the cycle is built earliest-deadline-first
//! instead (backend `i`'s k-th pick due at `(k + 1/2) / w_i`): exact shares, nearly as smooth.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Largest schedule kept; bigger weight totals are scaled down proportionally to fit.
const MAX_SCHEDULE: u64 = 1 << 20;

/// Cursor steps a pick takes past skipped backends before it walks the cycle instead.
const SKIP_STEPS: usize = 8;

/// Most steps (backends x cycle length) spent simulating nginx's algorithm.
const SMOOTH_BUDGET: u64 = 1 << 24;

/// Smooth weighted round robin over a fixed set of weights.
#[derive(Debug)]
pub struct RoundRobin {
    schedule: Vec<u32>,
    cursor: AtomicUsize,
}

impl RoundRobin {
    /// Builds the cycle for these weights (each at least 1).
    pub fn new(weights: &[u32]) -> Self {
        Self {
            schedule: schedule(weights),
            cursor: AtomicUsize::new(0),
        }
    }

    /// Next backend index in the cycle for which `skip` is false.
    pub fn pick(&self, skip: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.schedule.len();
        if len == 0 {
            return None;
        }
        // A skipped backend's turn goes to whoever is next in the *global* sequence (another
        // cursor step), not always to its neighbour in the cycle, which would get double load.
        let mut at = 0;
        for _ in 0..SKIP_STEPS.min(len) {
            at = self.cursor.fetch_add(1, Ordering::Relaxed);
            let i = self.schedule[at % len] as usize;
            if !skip(i) {
                return Some(i);
            }
        }
        // Most backends are unavailable: walk the rest of the cycle without touching the cursor.
        (1..len)
            .map(|step| self.schedule[at.wrapping_add(step) % len] as usize)
            .find(|&i| !skip(i))
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn schedule(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().fold(0u64, |g, &w| gcd(g, u64::from(w)));
    if g == 0 {
        return Vec::new();
    }
    let mut reduced: Vec<u64> = weights.iter().map(|&w| u64::from(w) / g).collect();
    let total: u64 = reduced.iter().sum();
    if total > MAX_SCHEDULE {
        // Huge pools with uneven weights: keep proportions approximately, every backend >= 1.
        for w in &mut reduced {
            *w = (*w * MAX_SCHEDULE / total).max(1);
        }
    }
    let total: u64 = reduced.iter().sum();
    if total * reduced.len() as u64 <= SMOOTH_BUDGET {
        return smooth(&reduced);
    }
    earliest_deadline_first(&reduced)
}

/// One cycle of nginx's smooth weighted round robin; ties go to the earlier backend.
fn smooth(weights: &[u64]) -> Vec<u32> {
    let total: i64 = weights.iter().sum::<u64>() as i64;
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            let mut best = 0;
            for (i, &w) in weights.iter().enumerate() {
                current[i] += w as i64;
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            best as u32
        })
        .collect()
}

fn earliest_deadline_first(reduced: &[u64]) -> Vec<u32> {
    // Deadline of pick k of backend i is (2k + 1) / (2 w_i); compare fractions exactly by
    // cross-multiplying, ties broken by backend order so every instance builds the same cycle.
    let mut picks: Vec<(u64, u64, u32)> = Vec::with_capacity(reduced.iter().sum::<u64>() as usize);
    for (i, &w) in reduced.iter().enumerate() {
        for k in 0..w {
            picks.push((2 * k + 1, 2 * w, i as u32));
        }
    }
    picks.sort_by(|a, b| {
        (u128::from(a.0) * u128::from(b.1))
            .cmp(&(u128::from(b.0) * u128::from(a.1)))
            .then(a.2.cmp(&b.2))
    });
    picks.into_iter().map(|(_, _, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(weights: &[u32], n: usize) -> Vec<usize> {
        let rr = RoundRobin::new(weights);
        (0..n).map(|_| rr.pick(|_| false).unwrap()).collect()
    }

    #[test]
    fn weights_one_to_two_are_exact_and_interleaved() {
        let seq = run(&[1, 2], 300);
        assert_eq!(seq.iter().filter(|&&i| i == 0).count(), 100);
        for w in seq.windows(3) {
            assert_eq!(w.iter().filter(|&&i| i == 0).count(), 1, "{seq:?}");
        }
    }

    #[test]
    fn matches_nginx_documented_order() {
        // nginx's own example: weights a=5, b=1, c=1 give a a b a c a a.
        assert_eq!(run(&[5, 1, 1], 7), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn picks_are_spread_over_the_cycle() {
        // Each backend's picks are evenly spaced: the gap between two picks of backend i
        // never exceeds its fair spacing total/w_i by more than one slot.
        let weights = [5, 1, 1, 3];
        let total: u32 = weights.iter().sum();
        let seq = run(&weights, 3 * total as usize);
        for (i, &w) in weights.iter().enumerate() {
            let at: Vec<usize> = (0..seq.len()).filter(|&k| seq[k] == i).collect();
            assert_eq!(at.len() as u32, 3 * w);
            let max_gap = at.windows(2).map(|p| p[1] - p[0]).max().unwrap_or(0);
            assert!(
                max_gap as u32 <= total.div_ceil(w) + 1,
                "backend {i}: {seq:?}"
            );
        }
    }

    #[test]
    fn skip_moves_to_the_next_eligible() {
        let rr = RoundRobin::new(&[1, 1, 1]);
        for _ in 0..10 {
            let i = rr.pick(|i| i == 1).unwrap();
            assert_ne!(i, 1);
        }
        assert_eq!(rr.pick(|_| true), None);
    }

    #[test]
    fn a_skipped_backends_share_is_spread_not_dumped_on_its_neighbour() {
        let rr = RoundRobin::new(&[1, 1, 1]);
        let mut counts = [0; 3];
        for _ in 0..300 {
            counts[rr.pick(|i| i == 1).unwrap()] += 1;
        }
        assert!((140..=160).contains(&counts[0]), "{counts:?}");
        assert!((140..=160).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn huge_weight_totals_are_bounded() {
        let weights: Vec<u32> = (0..10_000).map(|i| 1 + (i % 1000)).collect();
        let s = schedule(&weights);
        assert!(s.len() as u64 <= MAX_SCHEDULE + 10_000);
        let mut seen = vec![false; weights.len()];
        for &i in &s {
            seen[i as usize] = true;
        }
        assert!(
            seen.iter().all(|&x| x),
            "every backend appears in the cycle"
        );
    }
}
