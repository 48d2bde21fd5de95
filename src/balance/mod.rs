//! Backend selection: one balancer per pool snapshot, built off the hot path.
//!
//! A balancer answers "which backend next?" from immutable tables plus atomics, never a lock.
//! The caller passes a `skip` predicate (backends already tried for this request, and later
//! unavailable ones) so that retries never hit the same backend twice.

pub mod hash;
mod least_conn;
mod random;
mod round_robin;

use std::sync::Arc;

use crate::backend::Backend;
use crate::config::Balance;

pub use least_conn::LeastConn;
pub use random::WeightedRandom;
pub use round_robin::RoundRobin;

/// The balancer of one pool snapshot.
#[derive(Debug)]
pub enum Balancer {
    /// Smooth weighted round robin.
    RoundRobin(RoundRobin),
    /// Weighted least in-flight requests.
    LeastConn(LeastConn),
    /// Weighted random.
    Random(WeightedRandom),
}

impl Balancer {
    /// Builds the balancer of `kind` for backends with these weights.
    pub fn new(kind: Balance, weights: &[u32]) -> Self {
        match kind {
            // Hash pools fall back to round robin for requests that lack the hash key.
            Balance::RoundRobin | Balance::Hash => Self::RoundRobin(RoundRobin::new(weights)),
            Balance::LeastConn => Self::LeastConn(LeastConn::new(weights.len())),
            Balance::Random => Self::Random(WeightedRandom::new(weights)),
        }
    }

    /// Picks the index of a backend for which `skip` is false, or `None` if there is none.
    pub fn pick(&self, backends: &[Arc<Backend>], skip: impl Fn(usize) -> bool) -> Option<usize> {
        match self {
            Self::RoundRobin(rr) => rr.pick(skip),
            Self::LeastConn(lc) => lc.pick(backends, skip),
            Self::Random(r) => r.pick(skip),
        }
    }
}
