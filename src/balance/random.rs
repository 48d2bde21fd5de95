//! Weighted random: a draw over cumulative weights, O(log n) by binary search.

/// Weighted random selector.
#[derive(Debug)]
pub struct WeightedRandom {
    /// Running sum of weights: backend `i` owns draws in `[cumulative[i-1], cumulative[i])`.
    cumulative: Vec<u64>,
}

impl WeightedRandom {
    /// A selector over these weights.
    pub fn new(weights: &[u32]) -> Self {
        let cumulative = weights
            .iter()
            .scan(0u64, |sum, &w| {
                *sum += u64::from(w);
                Some(*sum)
            })
            .collect();
        Self { cumulative }
    }

    /// A weighted draw among backends for which `skip` is false.
    pub fn pick(&self, skip: impl Fn(usize) -> bool) -> Option<usize> {
        let total = *self.cumulative.last()?;
        for _ in 0..4 {
            let x = fastrand::u64(..total);
            let i = self.cumulative.partition_point(|&c| c <= x);
            if !skip(i) {
                return Some(i);
            }
        }
        // Most backends are skipped: draw among the rest directly.
        let rest: Vec<(usize, u64)> = (0..self.cumulative.len())
            .filter(|&i| !skip(i))
            .map(|i| {
                (
                    i,
                    self.cumulative[i] - i.checked_sub(1).map_or(0, |p| self.cumulative[p]),
                )
            })
            .collect();
        let total: u64 = rest.iter().map(|r| r.1).sum();
        let mut x = fastrand::u64(..total.max(1));
        rest.into_iter()
            .find(|&(_, w)| {
                let hit = x < w;
                x = x.saturating_sub(w);
                hit
            })
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_weights() {
        let r = WeightedRandom::new(&[1, 3]);
        let n = 40_000;
        let ones = (0..n).filter(|_| r.pick(|_| false) == Some(1)).count();
        let share = ones as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.02, "share {share}");
    }

    #[test]
    fn skip_is_respected_even_when_most_are_skipped() {
        let r = WeightedRandom::new(&[1000, 1000, 1]);
        for _ in 0..100 {
            assert_eq!(r.pick(|i| i != 2), Some(2));
        }
        assert_eq!(r.pick(|_| true), None);
    }
}
