//! The routing snapshot: every pool with its backends and balancer, swapped whole on change.
//!
//! Requests load one `Arc<Routes>` and use it to the end; a reload or an admin change builds a
//! new `Routes` off the hot path and stores it. Rebuilding keeps each `Arc<Backend>` whose id
//! and address are unchanged, so state, counters, in-flight accounting and idle connections
//! survive. A backend removed from the config lingers, draining, until it is drained.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::affinity::sticky::Stickiness;
use crate::backend::{Backend, DrainPolicy, State};
use crate::balance::Balancer;
use crate::clock::now_ms;
use crate::config::{AllDown, Config, HealthConfig, PassiveConfig, PoolConfig};
use crate::upstream::{Protocol, UpstreamProto};
use rustls::pki_types::ServerName;

/// Per-pool upstream settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Time to establish a TCP connection.
    pub connect_timeout: Duration,
    /// Time to receive response headers.
    pub response_timeout: Duration,
    /// Time an idle upstream connection may be reused.
    pub keepalive_timeout: Duration,
    /// Idle time after which a plain HTTP/1.1 upstream connection is parked (`None`: never).
    pub idle_release: Option<Duration>,
    /// Drain timing.
    pub drain: DrainPolicy,
    /// Ramp-up after a backend comes up.
    pub slow_start: Duration,
    /// Behaviour when no backend is up.
    pub all_down: AllDown,
    /// Passive health policy.
    pub passive: PassiveConfig,
    /// Active health checks.
    pub health: Option<HealthConfig>,
    /// Protocol and TLS toward backends.
    pub upstream: UpstreamProto,
    /// Replay GET/HEAD/OPTIONS without a body on another backend after a reset.
    pub retry_idempotent: bool,
}

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
    /// Upstream settings.
    pub settings: PoolSettings,
    /// Cookie / hash stickiness for exactly these backends.
    pub sticky: Stickiness,
}

impl Pool {
    /// Builds a pool, reusing backends from `previous` by id and address.
    pub fn build(name: &str, config: &PoolConfig, previous: Option<&Pool>) -> Self {
        let find_old = |id: &str| previous.and_then(|p| p.backends.iter().find(|b| &*b.id == id));
        let mut backends: Vec<Arc<Backend>> = config
            .backends
            .iter()
            .map(|b| match find_old(&b.id) {
                Some(old) if old.addr == b.addr && !old.is_removing() => {
                    old.set_weight(b.weight);
                    Arc::clone(old)
                }
                _ => {
                    let fresh = Backend::new(&b.id, b.addr, b.weight, config.max_idle_per_backend);
                    // A backend added to a running pool with health checks proves itself first.
                    if config.health.is_some() && previous.is_some() {
                        fresh.set_healthy(false);
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
                        tracing::info!(pool = %name, backend.id = %old.id, backend.addr = %old.addr, "backend removed from config; draining");
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
                upstream: upstream_proto(config),
                retry_idempotent: config.retry_idempotent,
            },
        }
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

    /// Index of the backend with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.backends.iter().position(|b| &*b.id == id)
    }
}

/// The pool's upstream protocol and TLS client (certificates were checked by validation).
fn upstream_proto(config: &PoolConfig) -> UpstreamProto {
    let alpn: &[u8] = match config.protocol {
        Protocol::Http1 => b"http/1.1",
        Protocol::H2 => b"h2",
    };
    let tls = config.tls.as_ref().and_then(|t| {
        match crate::tls::connector(t.ca.as_deref(), alpn) {
            Ok(connector) => {
                let name = t
                    .sni
                    .as_ref()
                    .and_then(|s| ServerName::try_from(s.clone()).ok());
                Some((connector, name))
            }
            Err(e) => {
                // Validation loaded the same files moments ago. Never fall back to plain text:
                // every connect fails instead (and is logged) until a reload fixes it.
                tracing::error!(error = %e, "cannot set up TLS to backends; connections will fail");
                None
            }
        }
    });
    UpstreamProto {
        protocol: config.protocol,
        tls_broken: config.tls.is_some() && tls.is_none(),
        tls,
    }
}

/// All pools by name, and the config they were built from: the one snapshot the request path
/// reads.
#[derive(Debug)]
pub struct Routes {
    /// Pools by name.
    pub pools: HashMap<String, Arc<Pool>>,
    /// The config these pools implement (including admin API changes since the last reload).
    pub config: Config,
}

impl Routes {
    /// Builds the snapshot for `config`, carrying over backend state from `previous`.
    pub fn build(config: &Config, previous: Option<&Routes>) -> Self {
        let pools = config
            .pools
            .iter()
            .map(|(name, pc)| {
                let old = previous.and_then(|r| r.pools.get(name)).map(Arc::as_ref);
                (name.clone(), Arc::new(Pool::build(name, pc, old)))
            })
            .collect();
        Self {
            pools,
            config: config.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(backends: &str) -> Config {
        crate::config::parse(&format!(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\n{backends}"
        ))
        .unwrap()
    }

    const A: &str = "[[pool.p.backend]]\nid = \"a\"\naddr = \"127.0.0.1:1\"\n";
    const B: &str = "[[pool.p.backend]]\nid = \"b\"\naddr = \"127.0.0.1:2\"\n";

    #[test]
    fn rebuild_keeps_backends_by_id_not_position() {
        let first = Routes::build(&config(&format!("{A}{B}")), None);
        let old_a = Arc::clone(&first.pools["p"].backends[0]);
        let _guard = old_a.start_request();
        let second = Routes::build(&config(&format!("{B}{A}")), Some(&first));
        let new_a = &second.pools["p"].backends[1];
        assert!(Arc::ptr_eq(&old_a, new_a));
        assert_eq!(new_a.in_flight(), 1);
    }

    #[test]
    fn removed_backends_drain_before_they_disappear() {
        let first = Routes::build(&config(&format!("{A}{B}")), None);
        let b = Arc::clone(&first.pools["p"].backends[1]);
        let guard = b.start_request();
        let second = Routes::build(&config(A), Some(&first));
        let pool = &second.pools["p"];
        assert_eq!(pool.backends.len(), 2, "b lingers while it has work");
        assert_eq!(
            pool.backends[1].state(&pool.settings.drain),
            State::Draining
        );
        for _ in 0..10 {
            assert_eq!(
                pool.pick_new(&[]),
                Some(0),
                "no new clients for a leaving backend"
            );
        }
        drop(guard);
    }
}
