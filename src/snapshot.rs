//! The snapshot the request path reads: every pool with its backends and balancer, each
//! listener's routes to them, and the config they implement, swapped whole on change.
//!
//! Requests load one `Arc<Snapshot>` and use it to the end; a reload or an admin change builds
//! a new `Snapshot` off the hot path and stores it. Rebuilding keeps each `Arc<Backend>` whose
//! id and address are unchanged, so state, counters, in-flight accounting and idle connections
//! survive. A backend removed from the config lingers, draining, until it is drained.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::pool::Pool;
use crate::routing::RouteTable;

/// State shared by every request of the process.
#[derive(Debug)]
pub struct Shared {
    /// The current snapshot; replaced whole on reload or admin change.
    pub snapshot: ArcSwap<Snapshot>,
}

/// All pools by name, and the config they were built from: the one snapshot the request path
/// reads.
#[derive(Debug)]
pub struct Snapshot {
    /// Pools by name.
    pub pools: HashMap<String, Arc<Pool>>,
    /// Each listener's routes, by listener name.
    pub listeners: HashMap<String, RouteTable>,
    /// The config these pools implement (including admin API changes since the last reload).
    pub config: Config,
}

impl Snapshot {
    /// Builds the snapshot for `config`, carrying over backend state from `previous`.
    pub fn build(config: &Config, previous: Option<&Snapshot>) -> Self {
        let pools: HashMap<String, Arc<Pool>> = config
            .pools
            .iter()
            .map(|(name, pc)| {
                let old = previous.and_then(|r| r.pools.get(name)).map(Arc::as_ref);
                (name.clone(), Arc::new(Pool::build(name, pc, old)))
            })
            .collect();
        let listeners = config
            .listeners
            .iter()
            .map(|l| {
                let old = previous.and_then(|s| s.listeners.get(&l.name));
                (l.name.clone(), RouteTable::build(l, &pools, old))
            })
            .collect();
        Self {
            pools,
            listeners,
            config: config.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::State;

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
        let first = Snapshot::build(&config(&format!("{A}{B}")), None);
        let old_a = Arc::clone(&first.pools["p"].backends[0]);
        let _guard = old_a.start_request();
        let second = Snapshot::build(&config(&format!("{B}{A}")), Some(&first));
        let new_a = &second.pools["p"].backends[1];
        assert!(Arc::ptr_eq(&old_a, new_a));
        assert_eq!(new_a.in_flight(), 1);
    }

    #[test]
    fn removed_backends_drain_before_they_disappear() {
        let first = Snapshot::build(&config(&format!("{A}{B}")), None);
        let b = Arc::clone(&first.pools["p"].backends[1]);
        let guard = b.start_request();
        let second = Snapshot::build(&config(A), Some(&first));
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

    #[test]
    fn a_backend_re_added_while_draining_is_one_backend_again() {
        let first = Snapshot::build(&config(&format!("{A}{B}")), None);
        let b = Arc::clone(&first.pools["p"].backends[1]);
        let _guard = b.start_request();
        let removed = Snapshot::build(&config(A), Some(&first));
        assert!(b.is_removing());
        let back = Snapshot::build(&config(&format!("{A}{B}")), Some(&removed));
        let pool = &back.pools["p"];
        assert_eq!(pool.backends.len(), 2, "b once, not twice");
        assert!(
            Arc::ptr_eq(&pool.backends[1], &b),
            "the same backend takes its place"
        );
        assert!(!b.is_removing());
        assert_eq!(b.state(&pool.settings.drain), State::Up);
    }

    #[test]
    fn a_new_address_for_an_id_shares_its_counters_and_reports_once() {
        let first = Snapshot::build(&config(&format!("{A}{B}")), None);
        let old_b = Arc::clone(&first.pools["p"].backends[1]);
        let _guard = old_b.start_request();
        old_b.stats.count_pin();
        let moved = B.replace("127.0.0.1:2", "127.0.0.1:3");
        let second = Snapshot::build(&config(&format!("{A}{moved}")), Some(&first));
        let pool = &second.pools["p"];
        assert_eq!(
            pool.backends.len(),
            3,
            "the old instance drains behind the new one"
        );
        let groups = pool.by_id();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[1].current.addr.port(), 3);
        assert_eq!(groups[1].draining.len(), 1);
        assert_eq!(groups[1].in_flight(), 1);
        assert_eq!(
            groups[1].current.stats.snapshot().pins,
            1,
            "counters carried on"
        );
    }
}
