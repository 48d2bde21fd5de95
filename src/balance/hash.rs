//! Consistent hashing over backend ids: a weighted ring of virtual nodes with an O(1) bucket
//! index, skip-aware lookups and bounded load.
//!
//! Why a ring (the `measurements` test below prints the comparison, `cargo test --release
//! measurements -- --nocapture`; bench/RESULTS.md keeps the figures): of the three candidates,
//! a ring and rendezvous hashing give *exact* minimal disruption for all three events the proxy
//! sees. Removing, skipping (down, already tried) or adding a backend moves exactly that
//! backend's keys, because skipping a backend at lookup is the same walk as deleting its
//! points. Rendezvous costs O(n) per lookup, though, against O(1) for the ring's bucket index.
//! Maglev is O(1) but cannot skip a backend without a table rebuild, and a rebuild moves some
//! keys of other backends too. The ring pays in balance: with [`POINTS_PER_WEIGHT`] points per
//! unit of weight the busiest backend owns somewhat more than the mean arc, more so as the
//! pool grows, which bounded load then caps where it matters.
//!
//! Everything here is a fixed function of the backend ids and weights ([`hash_key`]: FNV-1a 64
//! finished with murmur3's fmix64), never of the pool order, the process or the time, so every
//! tether instance and restart maps every key identically.

/// Virtual nodes per unit of weight: the balance / memory trade-off (see the module doc).
pub const POINTS_PER_WEIGHT: u64 = 160;

/// Cap on the ring's size (12 bytes a point, plus the index). Past it point counts are scaled,
/// so a change of the pool may then move a few extra keys; 10,000 backends of weight 1 fit.
pub const MAX_POINTS: u64 = 1 << 21;

/// A weighted consistent-hash ring over backend ids, immutable once built.
#[derive(Debug, Clone)]
pub struct ConsistentHash {
    /// Point positions, sorted.
    points: Vec<u64>,
    /// Backend index of each point.
    owners: Vec<u32>,
    /// `buckets[b]` is the first point whose top bits are `>= b`: O(1) lookups on average.
    buckets: Vec<u32>,
    shift: u32,
    weights: Vec<u32>,
    mean_weight: f64,
}

impl ConsistentHash {
    /// ids and weights in pool order; the result refers to backends by their index in that
    /// order. Positions depend only on the ids, so reordering the pool moves no key. Panics if
    /// the two slices differ in length (a caller bug).
    pub fn new(ids: &[&str], weights: &[u32]) -> Self {
        assert_eq!(ids.len(), weights.len(), "one weight per backend id");
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let count = |w: u32| -> u64 {
            let w = u64::from(w);
            if total.saturating_mul(POINTS_PER_WEIGHT) <= MAX_POINTS {
                w * POINTS_PER_WEIGHT
            } else if w == 0 {
                0
            } else {
                // Every live backend keeps at least one point, so none silently vanishes.
                (w * MAX_POINTS / total).max(1)
            }
        };
        let mut ring: Vec<(u64, u32)> = Vec::new();
        for (i, (id, &w)) in ids.iter().zip(weights).enumerate() {
            let base = fnv1a(FNV_OFFSET, id.as_bytes());
            // 0xff never occurs in UTF-8, so (id, replica) encodes without ambiguity.
            let base = fnv1a(base, &[0xff]);
            for replica in 0..count(w) as u32 {
                ring.push((fmix64(fnv1a(base, &replica.to_le_bytes())), i as u32));
            }
        }
        ring.sort_unstable();
        // Equal positions (vanishingly rare) must break on the id, never on the pool order.
        for run in ring.chunk_by_mut(|a, b| a.0 == b.0) {
            run.sort_by_key(|&(_, i)| (ids[i as usize], i));
        }
        let (points, owners): (Vec<u64>, Vec<u32>) = ring.into_iter().unzip();

        // One to two points per bucket: O(1) lookups for a sixth to a third of the ring's memory.
        let bits = (points.len() / 2)
            .max(2)
            .next_power_of_two()
            .trailing_zeros();
        let shift = 64 - bits;
        let mut buckets = Vec::with_capacity((1 << bits) + 1);
        let mut next = 0;
        for b in 0..=(1u64 << bits) {
            while next < points.len() && (points[next] >> shift) < b {
                next += 1;
            }
            buckets.push(next as u32);
        }
        let live = weights.iter().filter(|&&w| w > 0).count().max(1);
        Self {
            points,
            owners,
            buckets,
            shift,
            weights: weights.to_vec(),
            mean_weight: (total as f64 / live as f64).max(1.0),
        }
    }

    /// The backend for `key` (a u64 from [`hash_key`]), skipping indices where `skip(i)` is
    /// true (unavailable or already tried): the walk continues clockwise, so only skipped
    /// backends' keys move, and they move back once `skip` clears.
    pub fn pick(&self, key: u64, skip: impl Fn(usize) -> bool) -> Option<usize> {
        self.walk(key).find(|&i| !skip(i))
    }

    /// Bounded load (Mirrokni et al., "Consistent hashing with bounded loads"): also passes
    /// over backends whose in-flight `load(i)` has reached `factor` x the mean, counting the
    /// request being placed; `total` is the pool's in-flight sum and `available` the number of
    /// eligible backends. With weights, a backend's bound scales with its weight over the
    /// pool's mean weight. A `factor` below 1 (or NaN) counts as 1. Returns the backend and
    /// whether it spilled past the first choice; when every eligible backend is full (racy
    /// counters can claim that) the first choice is returned unspilled.
    pub fn pick_bounded(
        &self,
        key: u64,
        factor: f64,
        total: usize,
        available: usize,
        load: impl Fn(usize) -> usize,
        skip: impl Fn(usize) -> bool,
    ) -> Option<(usize, bool)> {
        let factor = if factor >= 1.0 { factor } else { 1.0 };
        let per_weight =
            factor * (total as f64 + 1.0) / (available.max(1) as f64 * self.mean_weight);
        let mut first = None;
        for i in self.walk(key).filter(|&i| !skip(i)) {
            let first = *first.get_or_insert(i);
            let capacity = (per_weight * f64::from(self.weights[i])).ceil();
            if (load(i) as f64) < capacity {
                return Some((i, i != first));
            }
        }
        first.map(|i| (i, false))
    }

    /// Owners of the points clockwise from `key`, once round the ring.
    fn walk(&self, key: u64) -> impl Iterator<Item = usize> + '_ {
        let b = (key >> self.shift) as usize;
        let (lo, hi) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
        let start = lo + self.points[lo..hi].partition_point(|&p| p < key);
        let (head, tail) = self.owners.split_at(start.min(self.owners.len()));
        tail.iter().chain(head).map(|&o| o as usize)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Fixed, documented 64-bit hash of key bytes (same on every instance and restart): FNV-1a 64
/// over the bytes, then murmur3's fmix64, because FNV alone leaves the high bits (which place a
/// key on the ring) poorly mixed for short keys such as IPv4 addresses.
pub fn hash_key(bytes: &[u8]) -> u64 {
    fmix64(fnv1a(FNV_OFFSET, bytes))
}

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Instant;

    const KEYS: u32 = 20_000;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("app-{i}")).collect()
    }

    fn ring(ids: &[String]) -> ConsistentHash {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        ConsistentHash::new(&refs, &vec![1; ids.len()])
    }

    fn keys() -> impl Iterator<Item = u64> {
        // Client addresses, hashed the way ip_hash hashes them.
        (0..KEYS).map(|i| hash_key(&(0x0a00_0000 + i).to_be_bytes()))
    }

    /// The backend id each key maps to.
    fn assign(ids: &[String], ring: &ConsistentHash, skip: impl Fn(usize) -> bool) -> Vec<String> {
        keys()
            .map(|k| ids[ring.pick(k, &skip).unwrap()].clone())
            .collect()
    }

    fn counts(assigned: Vec<String>) -> HashMap<String, usize> {
        let mut c = HashMap::new();
        for id in assigned {
            *c.entry(id).or_default() += 1;
        }
        c
    }

    #[test]
    fn distribution_within_tolerance() {
        // Tolerance: every backend within [0.6, 1.45] x its fair share, for 3 to 100 backends.
        for n in [3, 5, 10, 30, 100] {
            let ids = ids(n);
            let c = counts(assign(&ids, &ring(&ids), |_| false));
            let mean = f64::from(KEYS) / n as f64;
            for id in &ids {
                let r = *c.get(id).unwrap_or(&0) as f64 / mean;
                assert!((0.6..=1.45).contains(&r), "n={n} {id}: {r:.2} x mean");
            }
        }
    }

    #[test]
    fn removal_and_skip_move_only_the_lost_backends_keys_and_back() {
        for n in [3, 4, 7, 10, 25, 50, 100] {
            let ids = ids(n);
            let full = ring(&ids);
            let before = assign(&ids, &full, |_| false);
            let gone = n / 2;
            let fewer: Vec<String> = ids.iter().filter(|id| **id != ids[gone]).cloned().collect();
            let removed = assign(&fewer, &ring(&fewer), |_| false);
            let skipped = assign(&ids, &full, |i| i == gone);
            let mut moved = 0;
            for ((b, r), s) in before.iter().zip(&removed).zip(&skipped) {
                assert_eq!(r, s, "skipping must equal removing");
                if b != r {
                    assert_eq!(*b, ids[gone], "n={n}: a key of {b} moved to {r}");
                    moved += 1;
                }
            }
            let fraction = moved as f64 / f64::from(KEYS);
            let fair = 1.0 / n as f64;
            assert!(
                (0.6 * fair..=1.45 * fair).contains(&fraction),
                "n={n}: {fraction}"
            );
            assert_eq!(assign(&ids, &full, |_| false), before, "keys come back");
        }
    }

    #[test]
    fn addition_moves_keys_only_to_the_new_backend() {
        for n in [3, 10, 50, 100] {
            let old = ids(n);
            let mut new = old.clone();
            new.insert(n / 2, "newcomer".to_string());
            let before = assign(&old, &ring(&old), |_| false);
            let after = assign(&new, &ring(&new), |_| false);
            let moved = before.iter().zip(&after).filter(|(b, a)| b != a);
            assert!(moved.clone().all(|(_, a)| a == "newcomer"), "n={n}");
            let fraction = moved.count() as f64 / f64::from(KEYS);
            let fair = 1.0 / (n + 1) as f64;
            assert!(
                (0.6 * fair..=1.45 * fair).contains(&fraction),
                "n={n}: {fraction}"
            );
        }
    }

    #[test]
    fn pool_order_does_not_matter() {
        let ids = ids(20);
        let mut reversed = ids.clone();
        reversed.reverse();
        assert_eq!(
            assign(&ids, &ring(&ids), |_| false),
            assign(&reversed, &ring(&reversed), |_| false)
        );
    }

    #[test]
    fn weights_are_honoured() {
        let ids = ids(4);
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let weights = [1, 2, 3, 4];
        let ring = ConsistentHash::new(&refs, &weights);
        let c = counts(assign(&ids, &ring, |_| false));
        for (id, w) in ids.iter().zip(weights) {
            let share = c[id] as f64 / f64::from(KEYS);
            let fair = f64::from(w) / 10.0;
            assert!((0.8 * fair..=1.2 * fair).contains(&share), "{id}: {share}");
        }
        let zero = ConsistentHash::new(&["a", "b"], &[0, 1]);
        assert!(keys().all(|k| zero.pick(k, |_| false) == Some(1)));
    }

    #[test]
    fn bounded_load_caps_every_backend_and_spills_only_when_needed() {
        let n = 10;
        let ring = ring(&ids(n));
        for factor in [1.0, 1.25, 2.0] {
            let mut load = vec![0usize; n];
            // A hot spot: one key in three is the same client.
            for (j, k) in keys().take(5_000).enumerate() {
                let k = if j % 3 == 0 { 42 } else { k };
                let down = 7; // one backend unavailable throughout
                let total: usize = load.iter().sum();
                let (i, spilled) = ring
                    .pick_bounded(k, factor, total, n - 1, |i| load[i], |i| i == down)
                    .unwrap();
                let first = ring.pick(k, |i| i == down).unwrap();
                let cap = (factor * (total + 1) as f64 / (n - 1) as f64).ceil() as usize;
                assert_eq!(spilled, i != first);
                assert_eq!(spilled, load[first] >= cap, "spill exactly when needed");
                load[i] += 1;
                let mean = (total + 1) as f64 / (n - 1) as f64;
                let bound = (factor * mean).ceil() as usize + 1;
                assert!(load.iter().all(|&l| l <= bound), "{factor}: {load:?}");
                assert_eq!(load[down], 0);
            }
        }
        // No pressure, no spill: the answer is the plain pick.
        for k in keys().take(1_000) {
            let bounded = ring.pick_bounded(k, 1.25, 0, n, |_| 0, |_| false);
            assert_eq!(bounded, ring.pick(k, |_| false).map(|i| (i, false)));
        }
        // Racy counters claiming everyone is full: the first choice, unspilled.
        let full = ring.pick_bounded(1, 1.25, 0, n, |_| usize::MAX, |_| false);
        assert_eq!(full, ring.pick(1, |_| false).map(|i| (i, false)));
    }

    #[test]
    fn empty_and_all_skipped() {
        let empty = ConsistentHash::new(&[], &[]);
        assert_eq!(empty.pick(1, |_| false), None);
        assert_eq!(empty.pick_bounded(1, 1.25, 0, 0, |_| 0, |_| false), None);
        let ring = ring(&ids(3));
        assert_eq!(ring.pick(1, |_| true), None);
        assert_eq!(ring.pick(u64::MAX, |_| false).map(|i| i < 3), Some(true));
    }

    #[test]
    fn deterministic_across_builds_and_releases() {
        // Hard-coded (and reproduced by an independent Python model of the documented layout): a
        // change of the hash or the point layout re-maps every client, so it must be deliberate.
        assert_eq!(hash_key(b""), 17_280_346_270_528_514_342);
        assert_eq!(hash_key(b"127.0.0.1"), 14_906_417_390_966_373_154);
        let ring = ConsistentHash::new(&["app-1", "app-2", "app-3"], &[1, 1, 2]);
        let picked: Vec<usize> = [b"10.0.0.1".as_slice(), b"10.0.0.2", b"10.0.0.10", b"alice"]
            .iter()
            .map(|k| ring.pick(hash_key(k), |_| false).unwrap())
            .collect();
        assert_eq!(picked, [0, 2, 1, 2]);
    }

    /// Prints what the choice of a ring rests on; timings are informative, never asserted.
    /// Slow in debug builds: `cargo test --release -p tether measurements -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn measurements() {
        // Debug builds only smoke-test this; the numbers worth reading come from --release.
        let scale = if cfg!(debug_assertions) { 10 } else { 1 };
        for n in [3, 100, 10_000] {
            let ids = ids(n);
            let mut more = ids.clone();
            more.push("newcomer".to_string());
            let started = Instant::now();
            let ring = ring(&ids);
            let build = started.elapsed();
            // Exact expected load: the arc of the ring each backend owns.
            let mut share = vec![0.0; n];
            for j in 0..ring.points.len() {
                let prev = ring.points[(j + ring.points.len() - 1) % ring.points.len()];
                share[ring.owners[j] as usize] += ring.points[j].wrapping_sub(prev) as f64;
            }
            let mean = share.iter().sum::<f64>() / n as f64;
            let max = share.iter().fold(0.0f64, |a, &b| a.max(b)) / mean;
            let min = share.iter().fold(f64::MAX, |a, &b| a.min(b)) / mean;
            let sample = 200_000 / scale;
            let moved = |other: &ConsistentHash, skip: &dyn Fn(usize) -> bool| {
                let keys = (0..sample).map(|k| fmix64(k as u64));
                let moved = keys.filter(|&k| {
                    let a = ring.pick(k, |_| false).map(|i| &ids[i]);
                    a != other.pick(k, skip).map(|i| &more[i])
                });
                moved.count() as f64 / sample as f64
            };
            let removed = moved(&ring, &|i| i == n / 2);
            let added = moved(&self::ring(&more), &|_| false);
            let lookups = 1_000_000 / scale as u64;
            let started = Instant::now();
            let sink = (0..lookups).fold(0, |a, k| a ^ ring.pick(fmix64(k), |_| false).unwrap());
            let ns = started.elapsed().as_nanos() as f64 / lookups as f64;
            println!(
                "n={n:>5} points={:>7} build={build:>9.2?} arc max/mean={max:.2} min/mean={min:.2} \
                 moved: removal={removed:.5} (1/n={:.5}) addition={added:.5} (1/(n+1)={:.5}) \
                 lookup={ns:.0} ns, rendezvous={:.0} ns [{sink}]",
                ring.points.len(),
                1.0 / n as f64,
                1.0 / (n + 1) as f64,
                time_rendezvous(&ids),
            );
        }
        let ids = ids(10_000);
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let weights: Vec<u32> = (0..10_000).map(|i| 1 + i % 1000).collect();
        let started = Instant::now();
        let ring = ConsistentHash::new(&refs, &weights);
        println!(
            "n=10000 weights 1..=1000: points={} build={:.2?}",
            ring.points.len(),
            started.elapsed()
        );
    }

    /// Rendezvous (highest random weight) lookup cost, for comparison: O(n) hashes per key.
    fn time_rendezvous(ids: &[String]) -> f64 {
        let seeds: Vec<u64> = ids.iter().map(|id| hash_key(id.as_bytes())).collect();
        let lookups = (10_000_000 / ids.len()).clamp(100, 100_000) as u64;
        let started = Instant::now();
        let mut sink = 0;
        for k in 0..lookups {
            sink ^= seeds.iter().map(|s| fmix64(s ^ k)).max().unwrap();
        }
        assert_ne!(sink, 1);
        started.elapsed().as_nanos() as f64 / lookups as f64
    }
}
