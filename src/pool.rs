//! The routing snapshot: every pool with its backends and balancer, swapped whole on reload.
//!
//! Requests load one `Arc<Routes>` and use it to the end; a reload builds a new `Routes`
//! off the hot path and stores it. Rebuilding keeps each `Arc<Backend>` whose id, address and
//! weight are unchanged, so counters, in-flight accounting and idle connections survive.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Backend;
use crate::balance::Balancer;
use crate::config::{Config, PoolConfig};

/// Per-pool upstream settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Time to establish a TCP connection.
    pub connect_timeout: Duration,
    /// Time to receive response headers.
    pub response_timeout: Duration,
    /// Time an idle upstream connection may be reused.
    pub keepalive_timeout: Duration,
}

/// An immutable pool snapshot.
#[derive(Debug)]
pub struct Pool {
    /// Pool name from the config.
    pub name: String,
    /// Backends in config order; indices match the balancer's.
    pub backends: Vec<Arc<Backend>>,
    /// The selector built for exactly these backends.
    pub balancer: Balancer,
    /// Upstream settings.
    pub settings: PoolSettings,
}

impl Pool {
    /// Builds a pool, reusing backends from `previous` whose identity and address match.
    pub fn build(name: &str, config: &PoolConfig, previous: Option<&Pool>) -> Self {
        let backends: Vec<Arc<Backend>> = config
            .backends
            .iter()
            .map(|b| {
                previous
                    .and_then(|p| p.backends.iter().find(|old| *old.id == *b.id))
                    .filter(|old| old.addr == b.addr && old.weight == b.weight)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Backend::new(
                            &b.id,
                            b.addr,
                            b.weight,
                            config.max_idle_per_backend,
                        ))
                    })
            })
            .collect();
        let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
        Self {
            name: name.to_string(),
            balancer: Balancer::new(config.balance, &weights),
            backends,
            settings: PoolSettings {
                connect_timeout: config.connect_timeout,
                response_timeout: config.response_timeout,
                keepalive_timeout: config.keepalive_timeout,
            },
        }
    }
}

/// All pools, by name: the one snapshot the request path reads.
#[derive(Debug, Default)]
pub struct Routes {
    /// Pools by name.
    pub pools: HashMap<String, Arc<Pool>>,
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
        Self { pools }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuild_keeps_backends_by_id_not_position() {
        let text = |order: &str| {
            format!("[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\n{order}")
        };
        let a = "[[pool.p.backend]]\nid = \"a\"\naddr = \"127.0.0.1:1\"\n";
        let b = "[[pool.p.backend]]\nid = \"b\"\naddr = \"127.0.0.1:2\"\n";
        let first = Routes::build(
            &crate::config::parse(&text(&format!("{a}{b}"))).unwrap(),
            None,
        );
        let old_a = Arc::clone(&first.pools["p"].backends[0]);
        let _guard = old_a.start_request();
        let second = Routes::build(
            &crate::config::parse(&text(&format!("{b}{a}"))).unwrap(),
            Some(&first),
        );
        let new_a = &second.pools["p"].backends[1];
        assert!(Arc::ptr_eq(&old_a, new_a));
        assert_eq!(new_a.in_flight(), 1);
    }
}
