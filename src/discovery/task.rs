//! One pool's lookups over time: the last good answer of each source kept (a failed or empty
//! lookup changes nothing), failures logged once per change and counted, and every change of
//! the pool's resolved backends sent to the control plane as an [`Update`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::answer::{backends, refresh_after, retry_after, Source};
use super::resolve::Resolver;
use crate::config::{BackendConfig, ResolverConfig};

/// Counters of one pool's discovery, for `/metrics`.
#[derive(Debug, Default)]
pub struct DiscoveryStats {
    /// Lookups that failed or came back empty.
    pub failures: AtomicU64,
    /// Backends the pool currently has from DNS.
    pub backends: AtomicU64,
}

/// Appends the discovery families to a Prometheus exposition (see `metrics.rs`).
pub fn write_metrics(out: &mut String, stats: &[(String, Arc<DiscoveryStats>)]) {
    use std::fmt::Write as _;
    for (name, kind, help, value) in [
        (
            "tether_discovery_failures_total",
            "counter",
            "DNS lookups of the pool's names that failed or came back empty (the last good answer kept serving).",
            (|s: &DiscoveryStats| s.failures.load(Ordering::Relaxed)) as fn(&DiscoveryStats) -> u64,
        ),
        (
            "tether_discovery_backends",
            "gauge",
            "Backends the pool has from DNS now (names in addr and discover).",
            |s: &DiscoveryStats| s.backends.load(Ordering::Relaxed),
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (pool, s) in stats {
            // Pool names are TOML keys: quotes and backslashes are possible, so escape them.
            let pool = pool.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let _ = writeln!(out, "{name}{{pool=\"{pool}\"}} {}", value(s));
        }
    }
}

/// A pool's resolved backends changed: the control plane stores them if the pool still has
/// exactly these sources (a reload may have changed them since the lookup began).
#[derive(Debug, Clone)]
pub struct Update {
    /// The pool.
    pub pool: String,
    /// The sources the lookups were for.
    pub sources: Vec<Source>,
    /// The backends they stand for now.
    pub resolved: Vec<BackendConfig>,
}

/// The lookup state of one pool's sources.
#[derive(Debug)]
pub struct Tracker {
    pool: String,
    sources: Vec<Source>,
    /// Per source: the backends of its last good answer.
    last: Vec<Vec<BackendConfig>>,
    /// Per source: the error last logged, so a failure is logged once per change.
    errors: Vec<Option<String>>,
    /// Per source: failures in a row, for the retry backoff.
    failures: Vec<u32>,
    floor: Duration,
    ceiling: Duration,
}

impl Tracker {
    /// Tracks `sources`, starting from the backends they resolved to before (`current`).
    pub fn new(
        pool: &str,
        sources: Vec<Source>,
        current: &[BackendConfig],
        resolver: &ResolverConfig,
    ) -> Self {
        let named_ids: Vec<&str> = sources
            .iter()
            .filter_map(|s| match s {
                Source::Named(n) => Some(n.id.as_str()),
                Source::Discover(_) => None,
            })
            .collect();
        let last = sources
            .iter()
            .map(|s| match s {
                Source::Named(n) => current.iter().filter(|b| b.id == n.id).cloned().collect(),
                Source::Discover(_) => current
                    .iter()
                    .filter(|b| !named_ids.contains(&b.id.as_str()))
                    .cloned()
                    .collect(),
            })
            .collect();
        let n = sources.len();
        Self {
            pool: pool.to_string(),
            sources,
            last,
            errors: vec![None; n],
            failures: vec![0; n],
            floor: resolver.min_ttl,
            ceiling: resolver.max_ttl,
        }
    }

    /// The backends of the last good answers, in source order, one per id.
    pub fn resolved(&self) -> Vec<BackendConfig> {
        let mut out: Vec<BackendConfig> = Vec::new();
        for b in self.last.iter().flatten() {
            if !out.iter().any(|o| o.id == b.id) {
                out.push(b.clone());
            }
        }
        out
    }

    /// The sources tracked.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Looks every source up once; returns when to look again.
    pub async fn pass(&mut self, resolver: &Resolver, stats: &DiscoveryStats) -> Duration {
        let mut next = Duration::MAX;
        for i in 0..self.sources.len() {
            let source = &self.sources[i];
            let ceiling = match source {
                Source::Discover(d) => d.interval.unwrap_or(self.ceiling),
                Source::Named(_) => self.ceiling,
            };
            let after = match resolver.lookup(source).await {
                Ok(answer) => {
                    if self.errors[i].take().is_some() {
                        tracing::info!(pool.name = %self.pool, dns.name = %source.name(), addresses = answer.targets.len(), "DNS lookup answers again");
                    }
                    self.failures[i] = 0;
                    self.last[i] = backends(source, &answer, &self.last[i]);
                    refresh_after(answer.ttl, self.floor, ceiling, fastrand::f64())
                }
                Err(error) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    self.failures[i] = self.failures[i].saturating_add(1);
                    if self.errors[i].as_deref() != Some(error.as_str()) {
                        tracing::warn!(pool.name = %self.pool, dns.name = %source.name(), error = %error, kept = self.last[i].len(), "DNS lookup failed; keeping the last good answer");
                        self.errors[i] = Some(error);
                    }
                    retry_after(self.failures[i], self.floor, ceiling, fastrand::f64())
                }
            };
            next = next.min(after);
        }
        stats
            .backends
            .store(self.resolved().len() as u64, Ordering::Relaxed);
        next
    }
}

/// Looks `tracker`'s sources up for as long as the control plane listens, first after
/// `first`, sending each change of the pool's resolved backends. Aborted when the pool's
/// sources or `[resolver]` change.
pub async fn run(
    mut tracker: Tracker,
    first: Duration,
    resolver: Arc<Resolver>,
    stats: Arc<DiscoveryStats>,
    updates: mpsc::UnboundedSender<Update>,
) {
    let mut sent = tracker.resolved();
    let mut wait = first;
    loop {
        tokio::time::sleep(wait).await;
        wait = tracker.pass(&resolver, &stats).await;
        let resolved = tracker.resolved();
        if resolved != sent {
            let update = Update {
                pool: tracker.pool.clone(),
                sources: tracker.sources.clone(),
                resolved: resolved.clone(),
            };
            if updates.send(update).is_err() {
                return;
            }
            sent = resolved;
        }
    }
}

/// Resolves a pool's sources once (at start, or when a reload changes them) within the
/// resolver's bounds, starting from `current`: the tracker, and when to look again.
pub async fn resolve_now(
    pool: &str,
    sources: Vec<Source>,
    current: &[BackendConfig],
    config: &ResolverConfig,
    resolver: &Resolver,
    stats: &DiscoveryStats,
) -> (Tracker, Duration) {
    let mut tracker = Tracker::new(pool, sources, current, config);
    let next = tracker.pass(resolver, stats).await;
    (tracker, next)
}
