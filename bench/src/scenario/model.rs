//! The scenario file's model: topology, load, the affinity x sessions matrix, `--quick`
//! overrides, and the timeline and expectations it carries.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::app::AppSpec;
use super::duration::Dur;
use super::event::EventSpec;
use super::expect::Expect;
use super::flow::FlowStep;
use super::shop::{ShopSpec, ShopVariant};
use crate::sessions::SessionStore;

/// One scenario file, as parsed (see `validate` for what serde cannot check).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used in reports and output paths.
    pub name: String,
    /// What the scenario shows, one or two sentences.
    #[serde(default)]
    pub description: String,
    /// Other scenario files to run in turn (a suite such as matrix.toml); paths are relative
    /// to this file. A suite has no topology or events of its own.
    #[serde(default)]
    pub include: Vec<PathBuf>,
    /// How long the users act in each cell.
    #[serde(default = "default_duration")]
    pub duration: Dur,
    /// Width of the time buckets in charts and the timeline (default: duration / 60).
    pub bucket: Option<Dur>,
    /// Backends and proxies.
    #[serde(default)]
    pub topology: Topology,
    /// Virtual users.
    #[serde(default)]
    pub load: Load,
    /// The cells to run.
    #[serde(default)]
    pub matrix: Matrix,
    /// Overrides for `--quick`.
    #[serde(default)]
    pub quick: Quick,
    /// Timeline, applied in every cell.
    #[serde(default, rename = "event")]
    pub events: Vec<EventSpec>,
    /// Thresholds checked per cell.
    #[serde(default, rename = "expect")]
    pub expects: Vec<Expect>,
    /// The user's own service as the backends (absent: the demo shop).
    pub app: Option<AppSpec>,
    /// The demo shop's variants (`[[shop.variant]]`), in place of `[matrix] sessions`.
    #[serde(default)]
    pub shop: ShopSpec,
    /// What a virtual user does (required with an `[app]`; for the demo shop, in place of its
    /// own flow).
    #[serde(default, rename = "flow")]
    pub flow: Vec<FlowStep>,
    /// A flow file (only `[[flow]]` tables) instead of inline steps, relative to this file.
    pub flow_file: Option<PathBuf>,
}

fn default_duration() -> Dur {
    Dur(Duration::from_secs(30))
}

/// Backends, proxies and the pool settings passed through to tether.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Topology {
    /// Backends in the pool from the start: app-1 .. app-N.
    pub backends: usize,
    /// Backends that exist but are not started or pooled until an event (app-N+1 ..).
    pub spares: usize,
    /// tether instances with the same config; users alternate between them.
    pub proxies: usize,
    /// tether `balance`.
    pub balance: String,
    /// Extra tether pool keys (`health`, `drain_timeout`, `max_load`, ...), passed through
    /// unchanged into `[pool.app]` so scenarios can use any key tether accepts.
    pub pool: toml::Table,
    /// tether `[pool.app.cookie]` table, passed through for cookie and spread cells.
    pub cookie: Option<toml::Value>,
    /// Lifetime of the demo shop's sealed carts, renewed at each write (absent: no expiry);
    /// for `token-refresh`, the access token's lifetime.
    pub token_ttl: Option<Dur>,
    /// For `token-refresh` cells: the access token's lifetime (absent: `token_ttl`).
    pub access_ttl: Option<Dur>,
    /// tether `response_timeout` (a frozen backend holds requests this long).
    pub response_timeout: String,
    /// The pool finds its backends through DNS (`discover`) instead of a list: the lab starts
    /// a dnsmasq of the cell's own, binds every backend to its own 127.0.0.N on one port, and
    /// `dns-add` / `dns-remove` events change the answer.
    pub discover: bool,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            backends: 4,
            spares: 0,
            proxies: 1,
            balance: "round_robin".into(),
            pool: toml::Table::new(),
            cookie: None,
            token_ttl: None,
            access_ttl: None,
            response_timeout: "10s".into(),
            discover: false,
        }
    }
}

/// Virtual users (see `load::LoadSpec`).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Load {
    /// Concurrent users.
    pub users: usize,
    /// Mean time between one user's actions.
    pub think: Dur,
    /// Think time varies by this fraction either way.
    pub jitter: f64,
    /// Actions before a user leaves and a new one arrives; 0 = users stay.
    pub actions_per_user: u32,
    /// Fraction of hot users (long-lived, more active).
    pub hot_users: f64,
    /// How much more active a hot user is.
    pub hot_factor: f64,
    /// Per-request timeout.
    pub timeout: Dur,
    /// Actions per session before the user logs out and an attacker replays its cookies
    /// (0: never).
    pub logout_after: u32,
    /// Time between the attacker's replays.
    pub replay_every: Dur,
    /// The attacker gives up after this long.
    pub replay_for: Dur,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            users: 100,
            think: Dur(Duration::from_millis(500)),
            jitter: 0.2,
            actions_per_user: 0,
            hot_users: 0.0,
            hot_factor: 1.0,
            timeout: Dur(Duration::from_secs(5)),
            logout_after: 0,
            replay_every: Dur(Duration::from_millis(100)),
            replay_for: Dur(Duration::from_secs(5)),
        }
    }
}

/// The affinity x sessions matrix.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Matrix {
    /// tether `affinity` values.
    pub affinity: Vec<String>,
    /// Session stores.
    pub sessions: Vec<SessionStore>,
}

impl Default for Matrix {
    fn default() -> Self {
        Matrix {
            affinity: vec!["none".into()],
            sessions: vec![SessionStore::Local],
        }
    }
}

/// `--quick` overrides; event times scale with the duration.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Quick {
    /// Shorter duration.
    pub duration: Option<Dur>,
    /// Fewer users.
    pub users: Option<usize>,
    /// Different think time.
    pub think: Option<Dur>,
    /// Fewer affinity modes.
    pub affinity: Option<Vec<String>>,
    /// Fewer session stores.
    pub sessions: Option<Vec<SessionStore>>,
    /// Fewer app or shop variants (by name).
    pub variants: Option<Vec<String>>,
}

impl Scenario {
    /// Bucket width for timelines and charts.
    pub fn bucket(&self) -> Duration {
        let d = self.bucket.map(|b| b.0).unwrap_or_else(|| {
            let ms = (self.duration.0.as_millis() as u64 / 60).clamp(250, 5000);
            Duration::from_millis(ms / 250 * 250)
        });
        d.max(Duration::from_millis(100))
    }

    /// The matrix's second axis: the app's variant names, or the demo's session stores.
    pub fn axis(&self) -> Vec<String> {
        match &self.app {
            Some(app) => app.variants().into_iter().map(|v| v.name).collect(),
            None => self.shop_variants().into_iter().map(|v| v.name).collect(),
        }
    }

    /// The demo shop's variants: `[[shop.variant]]`, else one per `[matrix] sessions` store.
    pub fn shop_variants(&self) -> Vec<ShopVariant> {
        if self.shop.variants.is_empty() {
            let plain = self.matrix.sessions.iter().copied();
            plain.map(ShopVariant::of_store).collect()
        } else {
            self.shop.variants.clone()
        }
    }

    /// Whether a redis-server must run for some cell (a `shared` store, or an app using
    /// `{redis_url}`).
    /// The token lifetime the demo shop gets in cells with session store `sessions`: the
    /// access lifetime for `token-refresh`, else `token_ttl`.
    pub fn token_ttl(&self, sessions: &str) -> Option<Duration> {
        let t = &self.topology;
        let ttl = match sessions {
            "token-refresh" => t.access_ttl.as_ref().or(t.token_ttl.as_ref()),
            _ => t.token_ttl.as_ref(),
        };
        ttl.map(|d| d.0)
    }

    /// Whether an event acts on the redis-server (`backend = "redis"`): each cell then gets a
    /// redis-server of its own, so killing it leaves the other cells alone.
    pub fn targets_redis(&self) -> bool {
        self.events.iter().any(|e| e.backend == REDIS)
    }

    /// Whether some cell needs the run's shared redis-server (a scenario whose events target
    /// redis gives each cell one of its own instead).
    pub fn needs_redis(&self) -> bool {
        !self.targets_redis()
            && match &self.app {
                Some(app) => app.uses_redis(),
                None => self.shop_variants().iter().any(ShopVariant::uses_redis),
            }
    }
}

/// The name events use for the cell's redis-server in `backend = ...`.
pub const REDIS: &str = "redis";

/// Every backend id of the topology: pooled ones first, then spares.
pub fn backend_ids(sc: &Scenario) -> Vec<String> {
    (1..=sc.topology.backends + sc.topology.spares)
        .map(|i| format!("app-{i}"))
        .collect()
}
