//! The control plane: starting and reloading listeners and pools, admin changes to backends,
//! and the maintenance tick that finishes drains and runs health checkers.
//!
//! Every change goes through one async mutex (control plane only, never the request path):
//! it computes a new config, builds a new routing snapshot from it and the current one, and
//! stores it. A change that does not validate is refused whole and nothing is touched.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::diff::diff;
use super::discovered::{with_update, Discovery};
use super::edits;
use super::error::ControlError;
use super::listeners::{load_tls, same_socket};
use super::maintenance::{Transitions, TICK};
use crate::backend::{AdminState, State};
use crate::config::{self, Config, ListenerConfig};
use crate::discovery::{DiscoveryStats, Update};
use crate::snapshot::{Shared, Snapshot};

use crate::server::{self, ListenerEnv};
use crate::stats::ListenerStats;
use crate::workers::Workers;

struct RunningListener {
    cfg: ListenerConfig,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    tls: Option<Arc<ArcSwap<TlsAcceptor>>>,
}

struct Inner {
    listeners: HashMap<String, RunningListener>,
}

/// The running proxy's control plane.
pub struct Control {
    /// Routing state read by requests.
    pub shared: Arc<Shared>,
    config_path: Option<PathBuf>,
    inner: tokio::sync::Mutex<Inner>,
    /// Listener counters by name (kept after a listener is removed, for metrics continuity).
    listener_stats: Mutex<BTreeMap<String, Arc<ListenerStats>>>,
    health_tasks: Mutex<HashMap<String, JoinHandle<()>>>,
    drain_tx: watch::Sender<bool>,
    workers: Arc<Workers>,
    discovery: Discovery,
}

impl Control {
    /// Builds the routing state for `config` and binds its listeners; fails without serving
    /// anything if any address cannot be bound.
    pub async fn start(
        mut config: Config,
        config_path: Option<PathBuf>,
    ) -> anyhow::Result<Arc<Self>> {
        // Names are resolved before the first snapshot, so pools start with their backends.
        let (discovery, updates) = Discovery::new();
        let prepared = discovery
            .prepare(&mut config, None)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        // Before the routing state: each backend keeps one idle stack per worker.
        let workers = Workers::start(config.runtime.threads)
            .map_err(|e| anyhow::anyhow!("cannot start worker threads: {e}"))?;
        tracing::info!(threads = workers.threads(), "workers started");
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(Snapshot::build(&config, None)),
        });
        let control = Arc::new(Self {
            shared,
            config_path,
            inner: tokio::sync::Mutex::new(Inner {
                listeners: HashMap::new(),
            }),
            listener_stats: Mutex::default(),
            health_tasks: Mutex::default(),
            drain_tx: watch::channel(false).0,
            workers,
            discovery,
        });
        let mut bound = Vec::new();
        for l in &config.listeners {
            let tls = load_tls(l).map_err(|e| anyhow::anyhow!(e))?;
            let tcp = TcpListener::bind(l.listen).await.map_err(|e| {
                anyhow::anyhow!("listener {:?}: cannot bind {}: {e}", l.name, l.listen)
            })?;
            bound.push((tcp, l.clone(), tls));
        }
        {
            let mut inner = control.inner.lock().await;
            for (tcp, l, tls) in bound {
                control.spawn_listener(&mut inner, tcp, l, tls);
            }
        }
        control.ensure_health_tasks();
        control.discovery.start(&config, prepared);
        tokio::spawn(maintain(Arc::downgrade(&control)));
        tokio::spawn(apply_discovered(Arc::downgrade(&control), updates));
        Ok(control)
    }

    fn spawn_listener(
        &self,
        inner: &mut Inner,
        tcp: TcpListener,
        cfg: ListenerConfig,
        tls: Option<TlsAcceptor>,
    ) {
        let addr = tcp
            .local_addr()
            .map_or_else(|_| cfg.listen.to_string(), |a| a.to_string());
        tracing::info!(listener.name = %cfg.name, listener.addr = %addr, pool.name = %cfg.pool.as_deref().unwrap_or("-"), routes = cfg.routes.len(), "listening");
        let stats = Arc::clone(
            self.listener_stats
                .lock()
                .expect("stats lock")
                .entry(cfg.name.clone())
                .or_default(),
        );
        let (stop, stop_rx) = watch::channel(false);
        let tls = tls.map(|a| Arc::new(ArcSwap::from_pointee(a)));
        let env = ListenerEnv {
            shared: Arc::clone(&self.shared),
            stats,
            stop: stop_rx,
            drain: self.drain_tx.subscribe(),
            tls: tls.clone(),
            workers: Arc::clone(&self.workers),
        };
        let task = tokio::spawn(server::serve(tcp, cfg.clone(), env));
        inner.listeners.insert(
            cfg.name.clone(),
            RunningListener {
                cfg,
                stop,
                task,
                tls,
            },
        );
    }

    /// Listener counters by name.
    pub fn listener_stats(&self) -> Vec<(String, Arc<ListenerStats>)> {
        let stats = self.listener_stats.lock().expect("stats lock");
        stats
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    /// Re-reads the config file and applies it: pools swap atomically (backends keep their
    /// state by id; removed ones drain), listeners are added, removed or rebound by name.
    pub async fn reload(&self) -> Result<String, ControlError> {
        let path = self.config_path.as_ref().ok_or_else(|| {
            ControlError::Invalid("tether was started without a config file".into())
        })?;
        let mut new = config::load(path).map_err(|e| ControlError::Invalid(e.to_string()))?;
        let mut inner = self.inner.lock().await;
        let running = self.shared.snapshot.load().config.clone();
        let prepared = self
            .discovery
            .prepare(&mut new, Some(&running))
            .await
            .map_err(ControlError::Apply)?;
        if new.admin != running.admin {
            tracing::warn!("[admin] changes take effect at the next restart");
        }
        if new.log != running.log {
            tracing::warn!("[log] changes take effect at the next restart");
        }
        if new.runtime.threads != running.runtime.threads {
            tracing::warn!("runtime.threads changes take effect at the next restart");
        }
        // Load certificates and bind new addresses first: if one fails, nothing has changed yet.
        let mut acceptors = HashMap::new();
        for l in &new.listeners {
            acceptors.insert(l.name.clone(), load_tls(l).map_err(ControlError::Apply)?);
        }
        let mut fresh = Vec::new();
        for l in &new.listeners {
            let same_addr = inner
                .listeners
                .get(&l.name)
                .is_some_and(|r| r.cfg.listen == l.listen)
                || inner
                    .listeners
                    .values()
                    .any(|r| r.cfg.listen == l.listen && l.listen.port() != 0);
            let unchanged = inner
                .listeners
                .get(&l.name)
                .is_some_and(|r| same_socket(&r.cfg, l));
            if !unchanged && !same_addr {
                let tcp = TcpListener::bind(l.listen).await.map_err(|e| {
                    ControlError::Apply(format!(
                        "listener {:?}: cannot bind {}: {e}",
                        l.name, l.listen
                    ))
                })?;
                fresh.push((tcp, l.clone()));
            }
        }
        let changes = diff(&running, &new);
        self.store_config(&new);
        self.discovery.start(&new, prepared);
        let mut failed = Vec::new();
        // Unchanged TLS listeners pick up re-read certificates for new handshakes.
        for (name, running) in &inner.listeners {
            if let (Some(slot), Some(Some(acceptor))) = (&running.tls, acceptors.get(name)) {
                slot.store(Arc::new(acceptor.clone()));
            }
        }
        // Stop listeners that are gone or changed; their open connections carry on.
        let names: Vec<String> = inner.listeners.keys().cloned().collect();
        for name in names {
            let wanted = new.listeners.iter().find(|l| l.name == name);
            if let Some(w) = wanted.filter(|w| same_socket(&inner.listeners[&name].cfg, w)) {
                // Its routes and default pool live in the snapshot stored above.
                inner.listeners.get_mut(&name).expect("listed above").cfg = w.clone();
                continue;
            }
            let old = inner.listeners.remove(&name).expect("listed above");
            let _ = old.stop.send(true);
            let _ = old.task.await;
        }
        // Changed listeners whose address was still held by the old socket bind now.
        let rebind: Vec<ListenerConfig> = new
            .listeners
            .iter()
            .filter(|l| !inner.listeners.contains_key(&l.name))
            .filter(|l| !fresh.iter().any(|(_, f)| f.name == l.name))
            .cloned()
            .collect();
        for l in rebind {
            match TcpListener::bind(l.listen).await {
                Ok(tcp) => fresh.push((tcp, l)),
                Err(e) => {
                    tracing::error!(listener.name = %l.name, error = %e, "cannot rebind changed listener");
                    failed.push(format!("listener {} failed to rebind: {e}", l.name));
                }
            }
        }
        for (tcp, l) in fresh {
            let tls = acceptors.remove(&l.name).flatten();
            self.spawn_listener(&mut inner, tcp, l, tls);
        }
        let summary = std::iter::once(changes.to_string())
            .chain(failed)
            .collect::<Vec<_>>()
            .join("; ");
        tracing::info!(config = %path.display(), changes = %summary, "reloaded");
        Ok(summary)
    }

    /// Builds and stores the routing snapshot for `config`.
    fn store_config(&self, config: &Config) {
        let routes = Snapshot::build(config, Some(&self.shared.snapshot.load()));
        self.shared.snapshot.store(Arc::new(routes));
        self.ensure_health_tasks();
    }

    /// Sets a backend's admin state (`drain`, `enable`, `disable`).
    pub async fn set_admin_state(
        &self,
        pool: &str,
        id: &str,
        to: AdminState,
    ) -> Result<State, ControlError> {
        let _inner = self.inner.lock().await;
        let routes = self.shared.snapshot.load();
        let p = routes
            .pools
            .get(pool)
            .ok_or_else(|| ControlError::UnknownPool(pool.into()))?;
        let backend = p
            .backends
            .iter()
            .find(|b| &*b.id == id && !b.is_removing())
            .ok_or_else(|| ControlError::UnknownBackend {
                pool: pool.into(),
                id: id.into(),
            })?;
        let before = backend.set_admin_state(to);
        if before != to {
            tracing::info!(pool.name = %pool, backend.id = %id, from = %before.as_str(), to = %to.as_str(), "admin state changed");
        }
        Ok(backend.state(&p.settings.drain))
    }

    /// Adds a backend or updates its address and weight. Returns true if it was added.
    pub async fn upsert_backend(
        &self,
        pool: &str,
        id: &str,
        addr: &str,
        weight: Option<i64>,
    ) -> Result<bool, ControlError> {
        let _inner = self.inner.lock().await;
        let mut config = self.shared.snapshot.load().config.clone();
        let added = edits::upsert_backend(&mut config, pool, id, addr, weight)?;
        self.store_config(&config);
        tracing::info!(pool.name = %pool, backend.id = %id, backend.addr = %addr, added, "backend set via admin API");
        Ok(added)
    }

    /// Removes a backend: it drains (keeping pinned clients and in-flight requests), then goes.
    pub async fn remove_backend(&self, pool: &str, id: &str) -> Result<(), ControlError> {
        let _inner = self.inner.lock().await;
        let mut config = self.shared.snapshot.load().config.clone();
        edits::remove_backend(&mut config, pool, id)?;
        self.store_config(&config);
        Ok(())
    }

    /// Stores what DNS now answers for a pool, as an edit of the running config: added
    /// addresses start like added backends, removed ones drain like an admin DELETE.
    async fn store_discovered(&self, update: Update) {
        let _inner = self.inner.lock().await;
        let running = self.shared.snapshot.load().config.clone();
        let pool = update.pool.clone();
        if let Some(config) = with_update(&running, update) {
            self.store_config(&config);
            let changes = diff(&running, &config);
            tracing::info!(pool.name = %pool, changes = %changes, "backends changed in DNS");
        }
    }

    /// Each discovering pool's lookup counters, by pool name.
    pub fn discovery_stats(&self) -> Vec<(String, Arc<DiscoveryStats>)> {
        self.discovery.stats()
    }

    /// Stops every listener (sockets close) and asks open connections to finish and close.
    pub async fn shutdown(&self) {
        let mut inner = self.inner.lock().await;
        for (_, l) in inner.listeners.drain() {
            let _ = l.stop.send(true);
            let _ = l.task.await;
        }
        let _ = self.drain_tx.send(true);
    }

    /// Client connections open on all listeners.
    pub fn open_connections(&self) -> usize {
        self.listener_stats()
            .iter()
            .map(|(_, s)| s.active.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// Starts a health checker for every pool that has checks and none running.
    fn ensure_health_tasks(&self) {
        let routes = self.shared.snapshot.load();
        let mut tasks = self.health_tasks.lock().expect("health lock");
        tasks.retain(|_, t| !t.is_finished());
        for (name, pool) in &routes.pools {
            if pool.settings.health.is_some() && !tasks.contains_key(name) {
                let task = tokio::spawn(crate::health::run(Arc::clone(&self.shared), name.clone()));
                tasks.insert(name.clone(), task);
            }
        }
    }
}

/// Runs the maintenance pass (see [`super::maintenance`]) every tick while the control plane
/// lives, and rebuilds the snapshot when a removed backend finished draining.
async fn maintain(control: std::sync::Weak<Control>) {
    let mut transitions = Transitions::default();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let Some(control) = control.upgrade() else {
            return;
        };
        let snapshot = control.shared.snapshot.load_full();
        if transitions.pass(&snapshot) {
            let _inner = control.inner.lock().await;
            let config = control.shared.snapshot.load().config.clone();
            control.store_config(&config);
            tracing::info!("removed backends that finished draining");
        }
    }
}

/// Applies DNS answers as they change, while the control plane lives.
async fn apply_discovered(
    control: std::sync::Weak<Control>,
    mut updates: tokio::sync::mpsc::UnboundedReceiver<Update>,
) {
    while let Some(update) = updates.recv().await {
        let Some(control) = control.upgrade() else {
            return;
        };
        control.store_discovered(update).await;
    }
}
