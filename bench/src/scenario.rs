//! Scenario files: topology, load, the affinity x sessions matrix, a timeline of events and the
//! expectations that encode the lab's claims. `--quick` shrinks a scenario for CI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use crate::backend::SessionStore;
use crate::util::parse_duration;

/// A duration written as a human string ("500ms", "2s").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// One scenario file.
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
    /// tether `response_timeout` (a frozen backend holds requests this long).
    pub response_timeout: String,
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
            response_timeout: "10s".into(),
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
}

/// What an event does.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// SIGKILL the backend process.
    Kill,
    /// SIGSTOP: the process stops answering but its sockets stay open.
    Freeze,
    /// SIGCONT after a freeze.
    Resume,
    /// Start the backend process (again), at its old address if it had one.
    Start,
    /// SIGTERM the backend process and wait for it to exit.
    Stop,
    /// SIGTERM, then start a new process at the same address (a new version, empty memory).
    Restart,
    /// Start the process if needed, then `PUT` it into every proxy's pool.
    Add,
    /// Admin API: `POST .../drain`.
    Drain,
    /// Admin API: `POST .../enable`.
    Enable,
    /// Admin API: `POST .../disable`.
    Disable,
    /// Admin API: `DELETE` the backend from the pool.
    Remove,
    /// `POST /fault` on the backend itself (delay_ms, error_rate, hang).
    Fault,
}

impl Action {
    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Freeze => "freeze",
            Action::Resume => "resume",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Add => "add",
            Action::Drain => "drain",
            Action::Enable => "enable",
            Action::Disable => "disable",
            Action::Remove => "remove",
            Action::Fault => "fault",
        }
    }
}

/// One timeline entry.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// When, from the start of the load.
    pub at: Dur,
    /// What.
    pub action: Action,
    /// Which backend id.
    pub backend: String,
    /// `fault`: delay in ms.
    pub delay_ms: Option<u64>,
    /// `fault`: error rate 0..1.
    pub error_rate: Option<f64>,
    /// `fault`: never answer.
    pub hang: Option<bool>,
    /// `add`: weight.
    pub weight: Option<u32>,
}

/// Thresholds for the cells it matches: `METRIC_min` / `METRIC_max` keys.
#[derive(Deserialize, Debug, Clone)]
pub struct Expect {
    /// Affinity modes it applies to (empty: all).
    #[serde(default)]
    pub affinity: Vec<String>,
    /// Session stores it applies to (empty: all).
    #[serde(default)]
    pub sessions: Vec<SessionStore>,
    /// The claim, in words, shown next to a failed check.
    #[serde(default)]
    pub claim: String,
    /// `METRIC_min` / `METRIC_max` = number.
    #[serde(flatten)]
    pub limits: BTreeMap<String, f64>,
}

impl Expect {
    /// Whether this expectation applies to a cell.
    pub fn matches(&self, affinity: &str, sessions: SessionStore) -> bool {
        (self.affinity.is_empty() || self.affinity.iter().any(|a| a == affinity))
            && (self.sessions.is_empty() || self.sessions.contains(&sessions))
    }
}

/// Metrics an expectation may name (see `stats::CellStats::metric`).
pub const METRICS: &[&str] = &[
    "requests",
    "errors",
    "error_rate",
    "sessions_started",
    "sessions_lost",
    "sessions_lost_ratio",
    "users_lost_ratio",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "sticky_ratio",
    "max_mean_load",
    "fair_share_50_s",
    "fair_share_90_s",
    "send_lag_p99_ms",
    "service_p99_ms",
];

/// Loads a scenario; a suite (`include = [...]`) yields its members in order.
pub fn load(path: &Path) -> anyhow::Result<Vec<Scenario>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let sc: Scenario = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    if !sc.include.is_empty() {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut all = Vec::new();
        for inc in &sc.include {
            all.extend(load(&dir.join(inc))?);
        }
        return Ok(all);
    }
    validate(&sc).with_context(|| format!("{}", path.display()))?;
    Ok(vec![sc])
}

fn validate(sc: &Scenario) -> anyhow::Result<()> {
    anyhow::ensure!(
        sc.topology.backends >= 1,
        "topology.backends must be at least 1"
    );
    anyhow::ensure!(
        sc.topology.proxies >= 1,
        "topology.proxies must be at least 1"
    );
    anyhow::ensure!(sc.load.users >= 1, "load.users must be at least 1");
    anyhow::ensure!(!sc.load.think.0.is_zero(), "load.think must be above 0");
    let ids = backend_ids(sc);
    for (i, e) in sc.events.iter().enumerate() {
        anyhow::ensure!(
            ids.contains(&e.backend),
            "event[{i}]: backend {:?} is not in the topology (ids: {})",
            e.backend,
            ids.join(", ")
        );
        anyhow::ensure!(
            e.at.0 <= sc.duration.0,
            "event[{i}]: at = {:?} is after the end of the run",
            e.at.0
        );
    }
    for (i, x) in sc.expects.iter().enumerate() {
        for key in x.limits.keys() {
            let metric = key
                .strip_suffix("_min")
                .or_else(|| key.strip_suffix("_max"))
                .filter(|m| METRICS.contains(m));
            anyhow::ensure!(
                metric.is_some(),
                "expect[{i}].{key}: not METRIC_min or METRIC_max; metrics: {}",
                METRICS.join(", ")
            );
        }
    }
    Ok(())
}

/// Every backend id of the topology: pooled ones first, then spares.
pub fn backend_ids(sc: &Scenario) -> Vec<String> {
    (1..=sc.topology.backends + sc.topology.spares)
        .map(|i| format!("app-{i}"))
        .collect()
}

impl Scenario {
    /// The scenario as `--quick` runs it: shorter, fewer users, events scaled in time.
    pub fn quick(mut self) -> Scenario {
        if let Some(d) = self.quick.duration {
            let scale = d.0.as_secs_f64() / self.duration.0.as_secs_f64();
            for e in &mut self.events {
                e.at = Dur(e.at.0.mul_f64(scale));
            }
            if let Some(b) = &mut self.bucket {
                b.0 = b.0.mul_f64(scale);
            }
            self.duration = d;
        }
        if let Some(u) = self.quick.users {
            self.load.users = u;
        }
        if let Some(t) = self.quick.think {
            self.load.think = t;
        }
        if let Some(a) = self.quick.affinity.clone() {
            self.matrix.affinity = a;
        }
        if let Some(s) = self.quick.sessions.clone() {
            self.matrix.sessions = s;
        }
        self
    }

    /// Bucket width for timelines and charts.
    pub fn bucket(&self) -> Duration {
        let d = self.bucket.map(|b| b.0).unwrap_or_else(|| {
            let ms = (self.duration.0.as_millis() as u64 / 60).clamp(250, 5000);
            Duration::from_millis(ms / 250 * 250)
        });
        d.max(Duration::from_millis(100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenarios_load_and_shrink() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let all = load(&dir.join("matrix.toml")).unwrap();
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        for want in [
            "failover",
            "scale-out",
            "rolling-deploy",
            "hot-spot",
            "multi-proxy",
        ] {
            assert!(names.contains(&want), "matrix.toml lacks {want}");
        }
        for sc in all {
            let full: f64 = sc.matrix.affinity.len() as f64 * sc.duration.0.as_secs_f64();
            let q = sc.clone().quick();
            assert!(q.duration.0 <= sc.duration.0, "{}", sc.name);
            assert!(
                q.events.iter().all(|e| e.at.0 <= q.duration.0),
                "{}",
                sc.name
            );
            assert!(
                full > 0.0 && !sc.expects.is_empty(),
                "{} has no expectations",
                sc.name
            );
        }
    }

    #[test]
    fn bad_expectation_keys_are_refused() {
        let text = "name = \"x\"\n[[expect]]\nsessions_lots_max = 0\n";
        let sc: Scenario = toml::from_str(text).unwrap();
        let err = validate(&sc).unwrap_err().to_string();
        assert!(err.contains("sessions_lots_max"), "{err}");
    }

    #[test]
    fn events_must_name_a_known_backend() {
        let text = "name = \"x\"\n[[event]]\nat = \"1s\"\naction = \"kill\"\nbackend = \"app-9\"\n";
        let sc: Scenario = toml::from_str(text).unwrap();
        assert!(validate(&sc).unwrap_err().to_string().contains("app-9"));
    }
}
