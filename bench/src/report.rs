//! The report model and its stable JSON schema, the terminal table, and writing a report
//! directory (report.json, report.md, charts, index.html).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use crate::backend::SessionStore;
use crate::charts;
use crate::pages;
use crate::scenario::Scenario;
use crate::stats::CellStats;

/// Version of the report.json layout; bumped only on incompatible changes.
pub const SCHEMA: u32 = 1;

/// One expectation checked against one cell.
#[derive(Serialize, Debug, Clone)]
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

/// One timeline event as it was carried out.
#[derive(Serialize, Debug, Clone)]
pub struct EventRecord {
    /// "affinity/sessions" of the cell.
    pub cell: String,
    /// Planned time (s since the load began).
    pub at_s: f64,
    /// When it actually started.
    pub actual_s: f64,
    /// kill, freeze, add, drain, ...
    pub action: String,
    /// Backend id.
    pub backend: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// What was done, or why it failed.
    pub detail: String,
}

/// One cell of the matrix.
#[derive(Serialize, Debug, Clone)]
pub struct CellReport {
    /// tether affinity mode.
    pub affinity: String,
    /// Session store.
    pub sessions: SessionStore,
    /// tether balance.
    pub balance: String,
    /// Whether it ran (false: skipped).
    pub ran: bool,
    /// Why it was skipped.
    pub skip_reason: Option<String>,
    /// The numbers.
    #[serde(flatten)]
    pub stats: CellStats,
    /// Expectations checked.
    pub checks: Vec<Check>,
    /// Timeline as carried out.
    pub events: Vec<EventRecord>,
}

impl CellReport {
    /// An empty cell about to run.
    pub fn new(affinity: &str, sessions: SessionStore, balance: &str) -> CellReport {
        CellReport {
            affinity: affinity.to_string(),
            sessions,
            balance: balance.to_string(),
            ran: false,
            skip_reason: None,
            stats: CellStats::default(),
            checks: Vec::new(),
            events: Vec::new(),
        }
    }

    /// "affinity/sessions".
    pub fn name(&self) -> String {
        format!("{}/{}", self.affinity, self.sessions.name())
    }

    /// File-name form of `name`.
    pub fn slug(&self) -> String {
        format!("{}-{}", self.affinity, self.sessions.name())
    }

    /// Marks the cell skipped.
    pub fn skip(&mut self, why: &str) {
        self.ran = false;
        self.skip_reason = Some(why.to_string());
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
#[derive(Serialize, Debug, Clone)]
pub struct ScenarioReport {
    /// Layout version.
    pub schema: u32,
    /// Scenario name.
    pub scenario: String,
    /// What it shows.
    pub description: String,
    /// Whether `--quick` shrank it.
    pub quick: bool,
    /// Load duration per cell (s).
    pub duration_s: f64,
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
    /// The cells.
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

/// Writes report.json, report.md, the charts and index.html into `dir`.
pub fn write(r: &ScenarioReport, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("charts"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(r)?)?;
    std::fs::write(dir.join("report.md"), pages::markdown(r))?;
    for c in r.cells.iter().filter(|c| c.ran) {
        charts::cell_charts(c, &r.events_of(c), &dir.join("charts"))
            .with_context(|| format!("charts for {}", c.name()))?;
    }
    std::fs::write(dir.join("index.html"), pages::html(r))?;
    Ok(())
}

impl ScenarioReport {
    fn events_of(&self, c: &CellReport) -> Vec<EventRecord> {
        let name = c.name();
        self.events
            .iter()
            .filter(|e| e.cell == name)
            .cloned()
            .collect()
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// The table's header and one row per cell (shared by the terminal, markdown and HTML).
pub fn rows(r: &ScenarioReport) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let head = vec![
        "affinity",
        "sessions",
        "requests",
        "errors",
        "sessions lost",
        "users lost",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "svc p99",
        "sticky",
        "max/mean",
        "checks",
    ];
    let body = r
        .cells
        .iter()
        .map(|c| {
            if !c.ran {
                let mut row = vec![c.affinity.clone(), c.sessions.name().to_string()];
                row.extend((0..10).map(|_| "-".to_string()));
                row.push(
                    if c.passed() {
                        "skipped"
                    } else {
                        "FAILED (broken)"
                    }
                    .into(),
                );
                return row;
            }
            let s = &c.stats;
            let failed = c.checks.iter().filter(|k| !k.pass).count();
            vec![
                c.affinity.clone(),
                c.sessions.name().to_string(),
                s.requests.to_string(),
                s.errors.to_string(),
                format!("{} / {}", s.sessions_lost, s.sessions_started),
                pct(s.users_lost_ratio),
                format!("{:.1}", s.latency_ms.p50),
                format!("{:.1}", s.latency_ms.p99),
                format!("{:.1}", s.latency_ms.p999),
                format!("{:.1}", s.service_ms.p99),
                pct(s.sticky_ratio),
                format!("{:.2}", s.max_mean_load),
                if failed == 0 {
                    format!("ok ({})", c.checks.len())
                } else {
                    format!("FAILED {failed}/{}", c.checks.len())
                },
            ]
        })
        .collect();
    (head, body)
}

/// The terminal table, with failed checks and events listed under it.
pub fn table(r: &ScenarioReport) -> String {
    let (head, body) = rows(r);
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in &body {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i < 2 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{}{}: {} users, {:.0}s per cell, {} backends, {} proxy(ies)",
        r.scenario,
        if r.quick { " (quick)" } else { "" },
        r.users,
        r.duration_s,
        r.backends,
        r.proxies
    );
    let _ = writeln!(
        out,
        "{}",
        line(head.iter().map(|h| h.to_string()).collect())
    );
    for row in body {
        let _ = writeln!(out, "{}", line(row));
    }
    if let Some(c) = r.cells.iter().find(|c| c.ran) {
        for e in r.events.iter().filter(|e| e.cell == c.name()) {
            let _ = writeln!(out, "event at {:.1}s: {} {}", e.at_s, e.action, e.backend);
        }
    }
    let ran: Vec<&CellReport> = r.cells.iter().filter(|c| c.ran).collect();
    if !ran.is_empty() {
        let worst = |f: fn(&CellReport) -> f64| ran.iter().map(|c| f(c)).fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "pacing: send lag p99 <= {:.1} ms, max {:.1} ms; {} sends late behind a slow response (charged to latency)",
            worst(|c| c.stats.send_lag_ms.p99),
            worst(|c| c.stats.send_lag_ms.max),
            ran.iter().map(|c| c.stats.late_sends).sum::<u64>()
        );
        // A generator whose own timers fire this late was starved of CPU: its latency numbers
        // include the starvation, so say so rather than let them pass for the proxy's.
        for c in ran.iter().filter(|c| c.stats.send_lag_ms.max > 50.0) {
            let _ = writeln!(
                out,
                "warning: {}: the load generator's timers fired up to {:.0} ms late (a busy machine?); its latency includes that",
                c.name(),
                c.stats.send_lag_ms.max
            );
        }
    }
    for c in r.cells.iter().filter(|c| c.ran) {
        if let Some(so) = &c.stats.scale_out {
            let s = |v: Option<f64>| v.map_or("never".into(), |v| format!("{v:.1}s"));
            let _ = writeln!(
                out,
                "scale-out {}: {} reached 50% of its fair share after {}, 90% after {}",
                c.name(),
                so.backend,
                s(so.fair_share_50_s),
                s(so.fair_share_90_s)
            );
        }
    }
    for c in &r.cells {
        if let Some(why) = &c.skip_reason {
            let _ = writeln!(out, "skipped {}: {why}", c.name());
        }
        for k in c.checks.iter().filter(|k| !k.pass) {
            let _ = writeln!(
                out,
                "FAILED {}: {} = {} (limit {}){}",
                c.name(),
                k.expect,
                k.value.map_or("never".into(), |v| format!("{v:.3}")),
                k.limit,
                if k.claim.is_empty() {
                    String::new()
                } else {
                    format!(" -- {}", k.claim)
                }
            );
        }
        for e in c.events.iter().filter(|e| !e.ok) {
            let _ = writeln!(
                out,
                "FAILED event {} {} {}: {}",
                c.name(),
                e.action,
                e.backend,
                e.detail
            );
        }
    }
    let _ = write!(
        out,
        "{}",
        if r.passed {
            "all expectations held"
        } else {
            "SOME EXPECTATIONS FAILED"
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_json_keeps_the_schema_keys() {
        let mut c = CellReport::new("cookie", SessionStore::Local, "round_robin");
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

    #[test]
    fn table_rows_are_as_wide_as_the_header() {
        let mut ran = CellReport::new("none", SessionStore::Token, "round_robin");
        ran.ran = true;
        ran.stats.send_lag_ms.max = 120.0;
        let mut skipped = CellReport::new("cookie", SessionStore::Shared, "round_robin");
        skipped.skip("no redis");
        let r = ScenarioReport {
            schema: SCHEMA,
            scenario: "t".into(),
            description: String::new(),
            quick: true,
            duration_s: 1.0,
            users: 1,
            think_ms: 1.0,
            backends: 1,
            proxies: 1,
            passed: true,
            cells: vec![ran, skipped],
            events: Vec::new(),
        };
        let (head, body) = rows(&r);
        assert!(body.iter().all(|row| row.len() == head.len()));
        let t = table(&r);
        assert!(t.contains("warning: none/token"), "{t}");
        assert!(t.contains("skipped cookie/shared: no redis"), "{t}");
    }
}
