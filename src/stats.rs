//! Live counters for `/status` and `/metrics`: plain atomics, updated on the request path
//! without locks, read by the admin API.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the upstream latency histogram buckets; the last bucket is +Inf.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Why a request sent to (or meant for) a backend produced no response from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection could not be made.
    Connect,
    /// No response headers within `response_timeout`.
    Timeout,
    /// The backend failed after the request was sent.
    Upstream,
}

/// Per-backend counters.
#[derive(Debug, Default)]
pub struct BackendStats {
    /// Responses by status class: index 0 = 1xx ... 4 = 5xx.
    responses: [AtomicU64; 5],
    connect_errors: AtomicU64,
    timeouts: AtomicU64,
    upstream_errors: AtomicU64,
    health_transitions: AtomicU64,
    ejections: AtomicU64,
    pins: AtomicU64,
    redispatches: AtomicU64,
    pinned_while_draining: AtomicU64,
    queue_full: AtomicU64,
    retries_refused: AtomicU64,
    /// Cumulative-free bucket counts; rendered cumulatively.
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
}

/// A consistent-enough copy of a backend's counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BackendSnapshot {
    /// Responses received, all classes.
    pub requests: u64,
    /// Responses by class ("1xx".."5xx").
    pub responses: [u64; 5],
    /// Connect failures.
    pub connect_errors: u64,
    /// Response-header timeouts.
    pub timeouts: u64,
    /// Failures after the request was sent.
    pub upstream_errors: u64,
    /// Active health flips.
    pub health_transitions: u64,
    /// Passive ejections.
    pub ejections: u64,
    /// Clients newly pinned to this backend.
    pub pins: u64,
    /// Pinned clients moved away from this backend.
    pub redispatches: u64,
    /// Requests from pinned clients that arrived while it was draining.
    pub pinned_while_draining: u64,
    /// Requests answered 503 because it was at `max_connections` and its queue was full or
    /// the wait reached `queue_timeout` (tether's refusal, not the backend's failure).
    pub queue_full: u64,
    /// Failed attempts here that were not retried on another backend because the request
    /// reached `max_attempts` or the pool's retry budget was spent.
    pub retries_refused: u64,
}

impl BackendStats {
    /// Counts a response and its time to headers.
    pub fn count_response(&self, status: u16, latency: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        let secs = latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts a failed attempt.
    pub fn count_failure(&self, failure: Failure) {
        let counter = match failure {
            Failure::Connect => &self.connect_errors,
            Failure::Timeout => &self.timeouts,
            Failure::Upstream => &self.upstream_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an active health flip.
    pub fn count_health_transition(&self) {
        self.health_transitions.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a passive ejection.
    pub fn count_ejection(&self) {
        self.ejections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a client newly pinned here.
    pub fn count_pin(&self) {
        self.pins.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a pinned client moved away from here.
    pub fn count_redispatch(&self) {
        self.redispatches.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a pinned request that arrived while draining.
    pub fn count_pinned_while_draining(&self) {
        self.pinned_while_draining.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused at the backend's cap (queue full or `queue_timeout`).
    pub fn count_queue_full(&self) {
        self.queue_full.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed attempt that `max_attempts` or the retry budget kept from a retry.
    pub fn count_retry_refused(&self) {
        self.retries_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> BackendSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let responses = [0, 1, 2, 3, 4].map(|i| load(&self.responses[i]));
        BackendSnapshot {
            requests: responses.iter().sum(),
            responses,
            connect_errors: load(&self.connect_errors),
            timeouts: load(&self.timeouts),
            upstream_errors: load(&self.upstream_errors),
            health_transitions: load(&self.health_transitions),
            ejections: load(&self.ejections),
            pins: load(&self.pins),
            redispatches: load(&self.redispatches),
            pinned_while_draining: load(&self.pinned_while_draining),
            queue_full: load(&self.queue_full),
            retries_refused: load(&self.retries_refused),
        }
    }

    /// Latency bucket counts (non-cumulative, last = +Inf) and the sum in seconds.
    pub fn latency(&self) -> ([u64; LATENCY_BUCKETS.len() + 1], f64) {
        let mut out = [0; LATENCY_BUCKETS.len() + 1];
        for (o, c) in out.iter_mut().zip(&self.latency) {
            *o = c.load(Ordering::Relaxed);
        }
        let sum = self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        (out, sum)
    }
}

/// Per-listener counters.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub active: AtomicUsize,
    /// Idle HTTP/1 keep-alive connections that gave their parser and buffers back
    /// (`idle_release`) since start.
    pub idle_releases: AtomicU64,
}

/// Counts an open client connection until dropped.
#[derive(Debug)]
pub struct OpenConnection(std::sync::Arc<ListenerStats>);

impl OpenConnection {
    /// Counts a newly accepted connection.
    pub fn new(stats: &std::sync::Arc<ListenerStats>) -> Self {
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.active.fetch_add(1, Ordering::Relaxed);
        Self(std::sync::Arc::clone(stats))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}
