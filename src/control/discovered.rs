//! Discovery on the control plane: the resolver for `[resolver]`, one lookup task per pool
//! with DNS sources, their counters, and the resolved backends filled into a config before it
//! is stored (at start and on reload), so a pool never starts from an empty answer it could
//! have had.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::{Config, ResolverConfig};
use crate::discovery::answer::{sources, Source};
use crate::discovery::{self, DiscoveryStats, Resolver, Tracker, Update};

/// A pool's lookup task and what it was started for.
struct Running {
    sources: Vec<Source>,
    resolver: ResolverConfig,
    task: JoinHandle<()>,
}

/// Trackers resolved for a config about to be stored, started by [`Discovery::start`].
pub(super) struct Prepared(Vec<(String, Tracker, Duration)>);

/// Discovery state owned by the control plane.
pub(super) struct Discovery {
    resolver: Mutex<Option<(ResolverConfig, Arc<Resolver>)>>,
    tasks: Mutex<HashMap<String, Running>>,
    /// Kept after a pool stops discovering, for metrics continuity.
    stats: Mutex<BTreeMap<String, Arc<DiscoveryStats>>>,
    updates: mpsc::UnboundedSender<Update>,
}

impl Discovery {
    /// No tasks yet; updates from the tasks arrive on the receiver.
    pub(super) fn new() -> (Self, mpsc::UnboundedReceiver<Update>) {
        let (updates, rx) = mpsc::unbounded_channel();
        let discovery = Self {
            resolver: Mutex::default(),
            tasks: Mutex::default(),
            stats: Mutex::default(),
            updates,
        };
        (discovery, rx)
    }

    /// Each discovering pool's counters, by pool name.
    pub(super) fn stats(&self) -> Vec<(String, Arc<DiscoveryStats>)> {
        let stats = self.stats.lock().expect("discovery stats lock");
        stats
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    fn stats_of(&self, pool: &str) -> Arc<DiscoveryStats> {
        let mut stats = self.stats.lock().expect("discovery stats lock");
        Arc::clone(stats.entry(pool.to_string()).or_default())
    }

    /// The resolver for `config`, built once per distinct `[resolver]`.
    fn resolver(&self, config: &ResolverConfig) -> Result<Arc<Resolver>, String> {
        let mut slot = self.resolver.lock().expect("resolver lock");
        if let Some((built_for, resolver)) = slot.as_ref() {
            if built_for == config {
                return Ok(Arc::clone(resolver));
            }
        }
        let resolver = Arc::new(Resolver::new(config)?);
        *slot = Some((config.clone(), Arc::clone(&resolver)));
        Ok(resolver)
    }

    /// Fills in the resolved backends of `config`'s pools: a pool whose sources a running
    /// task already tracks keeps the running answer; the others are looked up now, all at
    /// once (a failed lookup leaves what the pool had, if its sources are unchanged).
    pub(super) async fn prepare(
        &self,
        config: &mut Config,
        running: Option<&Config>,
    ) -> Result<Prepared, String> {
        let wanted: Vec<(String, Vec<Source>)> = config
            .pools
            .iter()
            .map(|(name, pc)| (name.clone(), sources(pc)))
            .filter(|(_, s)| !s.is_empty())
            .collect();
        if wanted.is_empty() {
            return Ok(Prepared(Vec::new()));
        }
        let resolver = self.resolver(&config.resolver)?;
        let mut lookups = JoinSet::new();
        for (name, srcs) in wanted {
            let before = running.and_then(|r| r.pools.get(&name));
            let same_sources = before.is_some_and(|b| sources(b) == srcs);
            let tracked = self
                .tasks
                .lock()
                .expect("discovery lock")
                .get(&name)
                .is_some_and(|t| {
                    t.sources == srcs && t.resolver == config.resolver && !t.task.is_finished()
                });
            let current = match before {
                Some(b) if same_sources => b.resolved.clone(),
                _ => Vec::new(),
            };
            if tracked && same_sources {
                if let Some(pc) = config.pools.get_mut(&name) {
                    pc.resolved = current;
                }
                continue;
            }
            let (resolver, settings, stats) = (
                Arc::clone(&resolver),
                config.resolver.clone(),
                self.stats_of(&name),
            );
            lookups.spawn(async move {
                let (tracker, next) =
                    discovery::resolve_now(&name, srcs, &current, &settings, &resolver, &stats)
                        .await;
                (name, tracker, next)
            });
        }
        let mut prepared = Vec::new();
        while let Some(done) = lookups.join_next().await {
            let (name, tracker, next) = done.map_err(|e| format!("DNS lookup task: {e}"))?;
            let resolved = tracker.resolved();
            if let Some(pc) = config.pools.get_mut(&name) {
                if resolved.is_empty() {
                    // Not fatal: the name may not exist yet (a service still starting).
                    tracing::warn!(pool.name = %name, other_backends = pc.backends.len(), "no backend from DNS yet; looking again while running");
                }
                pc.resolved = resolved;
            }
            prepared.push((name, tracker, next));
        }
        Ok(Prepared(prepared))
    }

    /// After `config` is stored: stops the tasks of pools that no longer discover (or whose
    /// sources changed) and starts the prepared ones.
    pub(super) fn start(&self, config: &Config, prepared: Prepared) {
        let mut tasks = self.tasks.lock().expect("discovery lock");
        tasks.retain(|name, t| {
            let replaced = prepared.0.iter().any(|(p, _, _)| p == name);
            let keep = config
                .pools
                .get(name)
                .is_some_and(|pc| sources(pc) == t.sources && config.resolver == t.resolver)
                && !replaced;
            if !keep {
                t.task.abort();
            }
            if !keep && !replaced {
                // The pool no longer discovers: it has no backend from DNS to report.
                if let Some(stats) = self.stats.lock().expect("discovery stats lock").get(name) {
                    stats
                        .backends
                        .store(0, std::sync::atomic::Ordering::Relaxed);
                }
            }
            keep
        });
        let Ok(resolver) = self.resolver(&config.resolver) else {
            return;
        };
        for (name, tracker, next) in prepared.0 {
            let running = Running {
                sources: tracker.sources().to_vec(),
                resolver: config.resolver.clone(),
                task: tokio::spawn(discovery::run(
                    tracker,
                    next,
                    Arc::clone(&resolver),
                    self.stats_of(&name),
                    self.updates.clone(),
                )),
            };
            tasks.insert(name, running);
        }
    }
}

/// `running` with `update`'s answer stored, or `None` when that changes nothing or the pool's
/// sources changed since the lookup began (a reload).
pub(super) fn with_update(running: &Config, update: Update) -> Option<Config> {
    let pc = running.pools.get(&update.pool)?;
    if sources(pc) != update.sources || pc.resolved == update.resolved {
        return None;
    }
    let mut config = running.clone();
    config.pools.get_mut(&update.pool)?.resolved = update.resolved;
    Some(config)
}

impl Drop for Discovery {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            for t in tasks.values() {
                t.task.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::parse(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n\
             [pool.p]\ndiscover = { dns = \"app.internal\", port = 80 }\n",
        )
        .unwrap()
    }

    fn backend(addr: &str) -> crate::config::BackendConfig {
        crate::config::BackendConfig {
            id: addr.into(),
            addr: addr.parse().unwrap(),
            weight: 1,
            name: None,
        }
    }

    #[test]
    fn an_update_applies_only_to_the_sources_it_was_looked_up_for() {
        let running = config();
        let update = |sources| Update {
            pool: "p".into(),
            sources,
            resolved: vec![backend("10.0.0.5:80")],
        };
        let current = sources(&running.pools["p"]);
        let applied = with_update(&running, update(current.clone())).expect("a change");
        assert_eq!(applied.pools["p"].resolved, [backend("10.0.0.5:80")]);
        assert!(
            with_update(&applied, update(current)).is_none(),
            "no change"
        );
        assert!(
            with_update(&running, update(Vec::new())).is_none(),
            "a reload changed them"
        );
        let mut gone = update(Vec::new());
        gone.pool = "nope".into();
        assert!(with_update(&running, gone).is_none());
    }
}
