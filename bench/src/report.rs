//! The report's data model and its stable JSON schema (report.json): a scenario's cells, the
//! checks of each, and the timeline as it was carried out. Rendering it is `render`'s job.

use serde::{Deserialize, Serialize};

use crate::scenario::Scenario;
use crate::stats::CellStats;
use crate::theory::Setup;

/// Version of the report.json layout; bumped only on incompatible changes.
pub const SCHEMA: u32 = 1;

/// One expectation checked against one cell.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Check {
    /// The `METRIC_min` / `METRIC_max` key.
    pub expect: String,
    /// Its threshold.
    pub limit: f64,
    /// The measured value (`null`: never reached).
    pub value: Option<f64>,
    /// Whether it held.
    pub pass: bool,
    /// The claim it encodes.
    pub claim: String,
}

/// A cell's rate limit: L requests per user per sliding second, and where they are counted.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// L.
    pub per_s: u32,
    /// `memory` (each backend its own count) or `redis` (one shared count).
    pub store: String,
}

/// One timeline event as it was carried out.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct EventRecord {
    /// "affinity/sessions" of the cell.
    pub cell: String,
    /// Planned time (s since the load began).
    pub at_s: f64,
    /// When it actually started.
    pub actual_s: f64,
    /// kill, freeze, add, drain, ...
    pub action: String,
    /// The backend it acted on.
    pub backend: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// What was done, or why it failed.
    pub detail: String,
}

/// One cell of the matrix.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct CellReport {
    /// tether affinity mode.
    pub affinity: String,
    /// The matrix's second coordinate: where the demo backends kept their sessions
    /// (`local`, `shared`, `token`), or the app variant's name.
    pub sessions: String,
    /// tether balance.
    pub balance: String,
    /// Which run of the cell this is under `--repeat` (0: the first; each with its own seed).
    #[serde(default)]
    pub repeat: u32,
    /// The demo shop's rate limit in this cell, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// How the demo shop applies one user's concurrent cart adds in this cell, when the flow
    /// sends them (`concurrent`): `in-process` (local), `rmw` or `atomic` (shared), `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cart_write: Option<String>,
    /// Whether it ran (false: skipped).
    pub ran: bool,
    /// Why it was skipped.
    pub skip_reason: Option<String>,
    /// What was measured, flattened into the cell's own JSON object.
    #[serde(flatten)]
    pub stats: CellStats,
    /// Expectations checked (none for a skipped cell).
    pub checks: Vec<Check>,
    /// Timeline as carried out.
    pub events: Vec<EventRecord>,
}

impl CellReport {
    /// An empty cell about to run.
    pub fn new(affinity: &str, sessions: &str, balance: &str) -> CellReport {
        CellReport {
            affinity: affinity.to_string(),
            sessions: sessions.to_string(),
            balance: balance.to_string(),
            repeat: 0,
            rate_limit: None,
            cart_write: None,
            ran: false,
            skip_reason: None,
            stats: CellStats::default(),
            checks: Vec::new(),
            events: Vec::new(),
        }
    }

    /// "affinity/sessions".
    pub fn name(&self) -> String {
        match self.repeat {
            0 => format!("{}/{}", self.affinity, self.sessions),
            k => format!("{}/{}#{}", self.affinity, self.sessions, k + 1),
        }
    }

    /// File-name form of `name`.
    pub fn slug(&self) -> String {
        match self.repeat {
            0 => format!("{}-{}", self.affinity, self.sessions),
            k => format!("{}-{}-r{}", self.affinity, self.sessions, k + 1),
        }
    }

    /// Marks the cell skipped.
    pub fn skip(&mut self, why: &str) {
        self.ran = false;
        self.skip_reason = Some(why.to_string());
    }

    /// The events carried out, as (seconds, "action target"), for the phases of `stats`.
    pub fn marks(&self) -> Vec<(f64, String)> {
        self.events
            .iter()
            .map(|e| (e.actual_s, format!("{} {}", e.action, e.backend)))
            .collect()
    }

    /// What the theory needs to know about this cell besides its record.
    pub fn setup(&self, r: &ScenarioReport) -> Setup<'_> {
        Setup {
            affinity: &self.affinity,
            sessions: &self.sessions,
            backends: r.backends,
            token_ttl: match self.sessions.as_str() {
                "token-refresh" => r.access_ttl_s,
                _ => r.token_ttl_s,
            },
            replay_every: r.replay_every_s,
            rate_limit: self
                .rate_limit
                .as_ref()
                .map(|l| (f64::from(l.per_s), l.store.as_str())),
            cart_write: self.cart_write.as_deref(),
            drain_timeout: r.drain_timeout_s,
            duration: r.duration_s,
            think: r.think_ms / 1000.0,
            events: self
                .events
                .iter()
                .map(|e| (e.actual_s, e.action.as_str(), e.backend.as_str()))
                .collect(),
        }
    }

    /// Marks a cell that broke while running: it fails, with the reason as its check.
    pub fn broken(&mut self, why: &str) {
        self.ran = false;
        self.checks.push(Check {
            expect: "cell_ran".into(),
            limit: 1.0,
            value: Some(0.0),
            pass: false,
            claim: format!("the cell ran to its end: {why}"),
        });
    }

    /// Whether every check held (a skipped cell has none).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }
}

/// A scenario's report.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ScenarioReport {
    /// The report.json layout version, [`SCHEMA`].
    pub schema: u32,
    /// The scenario's name; a suite run writes its report under this directory.
    pub scenario: String,
    /// What it shows.
    pub description: String,
    /// Whether `--quick` shrank it.
    pub quick: bool,
    /// Load duration per cell (s).
    pub duration_s: f64,
    /// Timeline bucket width (s), for re-deriving the timeline from the raw record.
    pub bucket_s: f64,
    /// Token lifetime of the `token` and `token-denylist` cells (s; `null`: none).
    #[serde(default)]
    pub token_ttl_s: Option<f64>,
    /// Access token lifetime of `token-refresh` cells (s).
    #[serde(default)]
    pub access_ttl_s: Option<f64>,
    /// Time between an attacker's replays (s).
    #[serde(default)]
    pub replay_every_s: f64,
    /// The pool's `drain_timeout` (s), when the scenario sets one.
    #[serde(default)]
    pub drain_timeout_s: Option<f64>,
    /// Concurrent users.
    pub users: usize,
    /// Mean think time (ms).
    pub think_ms: f64,
    /// Backends pooled at the start.
    pub backends: usize,
    /// tether instances.
    pub proxies: usize,
    /// Every expectation of every cell that ran held.
    pub passed: bool,
    /// One per cell of the matrix, in run order, skipped ones included.
    pub cells: Vec<CellReport>,
    /// Every event of every cell.
    pub events: Vec<EventRecord>,
}

impl ScenarioReport {
    /// Assembles the report of a finished scenario.
    pub fn new(sc: &Scenario, quick: bool, cells: Vec<CellReport>) -> ScenarioReport {
        ScenarioReport {
            schema: SCHEMA,
            scenario: sc.name.clone(),
            description: sc.description.clone(),
            quick,
            duration_s: sc.duration.0.as_secs_f64(),
            bucket_s: sc.bucket().as_secs_f64(),
            token_ttl_s: sc.token_ttl("token").map(|d| d.as_secs_f64()),
            access_ttl_s: sc.token_ttl("token-refresh").map(|d| d.as_secs_f64()),
            replay_every_s: sc.load.replay_every.0.as_secs_f64(),
            drain_timeout_s: sc
                .topology
                .pool
                .get("drain_timeout")
                .and_then(|v| v.as_str())
                .and_then(|v| crate::util::parse_duration(v).ok())
                .map(|d| d.as_secs_f64()),
            users: sc.load.users,
            think_ms: sc.load.think.0.as_secs_f64() * 1000.0,
            backends: sc.topology.backends,
            proxies: sc.topology.proxies,
            passed: cells.iter().all(CellReport::passed),
            events: cells.iter().flat_map(|c| c.events.clone()).collect(),
            cells,
        }
    }
}

impl ScenarioReport {
    /// The events of cell `c`.
    pub fn events_of(&self, c: &CellReport) -> Vec<EventRecord> {
        let name = c.name();
        self.events
            .iter()
            .filter(|e| e.cell == name)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_json_keeps_the_schema_keys() {
        let mut c = CellReport::new("cookie", "local", "round_robin");
        c.stats.sessions_started = 7;
        c.stats.sessions_lost = 2;
        let v = serde_json::to_value(&c).unwrap();
        // Flattened stats must not shadow the cell's own keys.
        assert_eq!(v["sessions"], "local");
        assert_eq!(v["affinity"], "cookie");
        assert_eq!(v["balance"], "round_robin");
        assert_eq!(v["sessions_started"], 7);
        assert_eq!(v["sessions_lost"], 2);
        for k in ["p50", "p90", "p99", "p999"] {
            assert!(v["latency_ms"][k].is_number(), "latency_ms.{k}");
        }
        assert!(v["backends"].is_object() && v["requests"].is_number() && v["errors"].is_number());
    }
}
