//! One pool, immutable: its backends, the balancer and stickiness built for exactly them, and
//! its upstream settings. A change builds a new pool that keeps unchanged backends (see
//! [`crate::snapshot`]).

pub mod retry;
mod settings;
pub mod sticky;

pub use settings::PoolSettings;

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, Uri};

use crate::backend::{Backend, DrainPolicy, State};
use crate::balance::Balancer;
use crate::clock::now_ms;
use crate::config::{AllDown, PoolConfig};
use retry::RetryBudget;
use sticky::{Plan, Stickiness, Why};

/// An immutable pool snapshot.
#[derive(Debug)]
pub struct Pool {
    /// Pool name from the config.
    pub name: String,
    /// Backends: configured ones in config order, then ones lingering to drain after removal.
    /// Indices match the balancer's.
    pub backends: Vec<Arc<Backend>>,
    /// The selector built for exactly these backends.
    pub balancer: Balancer,
    /// Timeouts, drain, health and protocol toward the backends.
    pub settings: PoolSettings,
    /// Cookie / hash stickiness for exactly these backends.
    pub sticky: Stickiness,
    /// How many backends a request may try, and how many requests may retry at once.
    pub retry: RetryBudget,
}

impl Pool {
    /// Builds a pool, reusing backends from `previous` by id and address.
    pub fn build(name: &str, config: &PoolConfig, previous: Option<&Pool>) -> Self {
        // Every earlier instance of an id: the configured one first, then any still draining.
        let old_of = |id: &str| -> Vec<&Arc<Backend>> {
            previous.map_or_else(Vec::new, |p| {
                p.backends.iter().filter(|b| &*b.id == id).collect()
            })
        };
        // Resolved backends (DNS) follow the literal ones; an id both have is the literal's.
        let resolved = config
            .resolved
            .iter()
            .filter(|r| !config.backends.iter().any(|b| b.id == r.id));
        let mut backends: Vec<Arc<Backend>> = config
            .backends
            .iter()
            .chain(resolved)
            .map(|b| match old_of(&b.id)
                .into_iter()
                .find(|old| old.addr == b.addr && old.name.as_deref() == b.name.as_deref())
            {
                Some(old) => {
                    // Re-added while it drained after a removal: it takes its place again
                    // rather than serving beside a second instance of the same id.
                    if old.is_removing() {
                        old.revive();
                        tracing::info!(pool.name = %name, backend.id = %old.id, backend.addr = %old.addr, "backend re-added while draining; serving again");
                    }
                    old.set_weight(b.weight);
                    Arc::clone(old)
                }
                None => {
                    let mut fresh =
                        Backend::new(&b.id, b.addr, b.weight, config.max_idle_per_backend);
                    fresh.name = b.name.as_deref().map(Arc::from);
                    // A new address for a known id: the id's counters carry on.
                    if let Some(old) = old_of(&b.id).first() {
                        fresh.stats = Arc::clone(&old.stats);
                    }
                    // A backend added to a running pool with health checks proves itself first;
                    // without them it ramps up from now (with them, from its first pass).
                    if previous.is_some() {
                        fresh.start_ramp();
                        if config.health.is_some() {
                            fresh.set_healthy(false);
                        }
                    }
                    Arc::new(fresh)
                }
            })
            .collect();
        let drain = DrainPolicy {
            timeout: config.drain_timeout,
            quiet: config.drain_quiet,
        };
        // Backends that left the config (or changed address) drain before they disappear.
        if let Some(prev) = previous {
            for old in &prev.backends {
                let kept = backends.iter().any(|b| Arc::ptr_eq(b, old));
                if !kept && old.state(&drain) != State::Drained {
                    if !old.is_removing() {
                        old.mark_removing();
                        tracing::info!(pool.name = %name, backend.id = %old.id, backend.addr = %old.addr, "backend removed from config; draining");
                    }
                    // Listed after the configured backends, so lookups by id find a replacement
                    // with the same id (new address) first.
                    backends.push(Arc::clone(old));
                }
            }
        }
        let weights: Vec<u32> = backends.iter().map(|b| b.weight()).collect();
        Self {
            name: name.to_string(),
            balancer: Balancer::new(config.balance, &weights),
            sticky: Stickiness::build(name, config, &backends),
            retry: RetryBudget::new(
                config.max_attempts,
                config.retry_budget,
                config.min_retry_concurrency,
            ),
            backends,
            settings: PoolSettings {
                connect_timeout: config.connect_timeout,
                response_timeout: config.response_timeout,
                keepalive_timeout: config.keepalive_timeout,
                idle_release: config.idle_release,
                drain,
                slow_start: config.slow_start,
                all_down: config.all_down,
                passive: config.passive.clone(),
                health: config.health.clone(),
                upstream: settings::upstream_proto(config),
                retry_idempotent: config.retry_idempotent,
                max_connections: config.max_connections,
                max_pending: config.max_pending,
                queue_timeout: config.queue_timeout,
            },
        }
    }

    /// Requests in flight on every backend of the pool.
    pub fn in_flight(&self) -> usize {
        self.backends.iter().map(|b| b.in_flight()).sum()
    }

    /// Picks a backend for a new client (not pinned): an `up` one the balancer chooses, skipping
    /// `tried`; during slow start a backend is accepted with its ramp probability. When no
    /// backend is up and the pool fails open, any down-but-enabled backend is tried.
    pub fn pick_new(&self, tried: &[usize]) -> Option<usize> {
        let now = now_ms();
        let s = &self.settings;
        let up = |i: usize| self.backends[i].state_at(now, &s.drain) == State::Up;
        let ramp_ok = |i: usize| {
            let f = self.backends[i].slow_start_factor(now, s.slow_start);
            f >= 1.0 || fastrand::f64() < f
        };
        let pick = self.balancer.pick(&self.backends, |i| {
            tried.contains(&i) || !up(i) || !ramp_ok(i)
        });
        // Slow start may have refused every candidate by chance: retry without it.
        let pick = pick.or_else(|| {
            self.balancer
                .pick(&self.backends, |i| tried.contains(&i) || !up(i))
        });
        pick.or_else(|| match s.all_down {
            AllDown::Fail => None,
            AllDown::Route => self.balancer.pick(&self.backends, |i| {
                tried.contains(&i) || self.backends[i].state_at(now, &s.drain) != State::Down
            }),
        })
    }

    /// Decides where a request goes first (see [`Stickiness::plan`]) and records what the
    /// decision says happened: a client moved off its pinned backend, a draining backend's
    /// pinned client seen. For spread, the balancer picks a backend other than the last one.
    pub fn plan(&self, headers: &HeaderMap, uri: &Uri, peer: IpAddr, now_secs: u64) -> Plan {
        let drain = &self.settings.drain;
        let mut plan = self
            .sticky
            .plan(&self.backends, drain, headers, uri, peer, now_secs);
        if let Some(i) = plan.moved_from {
            self.backends[i].stats.count_redispatch();
        }
        if let Some(i) = plan.pinned_draining {
            self.backends[i].note_pinned_while_draining();
        }
        if plan.why == Why::Spread {
            plan.first = plan
                .avoid
                .and_then(|last| self.pick_new(&[last]))
                .or_else(|| self.pick_new(&[]));
        }
        plan
    }

    /// The next backend for a hashed request after `tried` failed: the ring's next choice.
    pub fn retry_hash(&self, key: u64, tried: &[usize]) -> Option<usize> {
        self.sticky
            .retry_hash(&self.backends, &self.settings.drain, key, tried)
    }

    /// Backends grouped by id, in list order: one entry per id, as `/status` and `/metrics`
    /// report them.
    pub fn by_id(&self) -> Vec<IdGroup<'_>> {
        let mut groups: Vec<IdGroup<'_>> = Vec::with_capacity(self.backends.len());
        for b in &self.backends {
            match groups.iter_mut().find(|g| g.current.id == b.id) {
                Some(g) => g.draining.push(b),
                None => groups.push(IdGroup {
                    current: b,
                    draining: Vec::new(),
                }),
            }
        }
        groups
    }

    /// Index of the backend with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.backends.iter().position(|b| &*b.id == id)
    }
}

/// The instances of one backend id in a pool.
#[derive(Debug)]
pub struct IdGroup<'a> {
    /// The configured instance (or, for a removed id, the first that lingers).
    pub current: &'a Arc<Backend>,
    /// Earlier instances of the id (another address) that linger only to drain; they share
    /// `current`'s counters.
    pub draining: Vec<&'a Arc<Backend>>,
}

impl IdGroup<'_> {
    /// Every instance, current first.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Backend>> {
        std::iter::once(self.current).chain(self.draining.iter().copied())
    }

    /// Requests in flight on every instance of the id.
    pub fn in_flight(&self) -> usize {
        self.all().map(|b| b.in_flight()).sum()
    }
}
