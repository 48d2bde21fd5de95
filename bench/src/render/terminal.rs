//! The terminal summary `tether-bench run` prints: the table, pacing, scale-out times, and every
//! skipped cell, failed check and failed event.

use std::fmt::Write as _;

use super::figures::figure_lines;
use super::repeats::repeat_lines;
use super::rows::{latency_notes, phase_line, rows, theory_lines};
use crate::report::{CellReport, ScenarioReport};

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
    for note in latency_notes(r) {
        let _ = writeln!(out, "{note}");
    }
    for line in theory_lines(r) {
        let _ = writeln!(out, "{line}");
    }
    for line in repeat_lines(r) {
        let _ = writeln!(out, "{line}");
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
    // Few events: what each cost, per cell (a long timeline's phases are in report.md).
    for c in r
        .cells
        .iter()
        .filter(|c| c.ran && (2..=5).contains(&c.stats.phases.len()))
    {
        let _ = writeln!(out, "{}", phase_line(c));
    }
    // The two ways a session is lost point at different fixes: an unknown session (the session
    // store) or a write that did not come back (the data store).
    for c in r
        .cells
        .iter()
        .filter(|c| c.ran && !c.stats.loss_reasons.is_empty())
    {
        let kinds: Vec<String> = c
            .stats
            .loss_reasons
            .iter()
            .map(|(why, n)| format!("{n} {why}"))
            .collect();
        let _ = writeln!(out, "sessions lost {}: {}", c.name(), kinds.join(", "));
    }
    for line in figure_lines(r) {
        let _ = writeln!(out, "{line}");
    }
    for c in r.cells.iter().filter(|c| c.ran) {
        if let Some(rv) = &c.stats.revocation {
            let _ = writeln!(
                out,
                "revocation {}: {} logouts replayed; window median {:.0} ms, max {:.0} ms; {} replays accepted; {} still open when the attacker gave up",
                c.name(), rv.logouts, rv.window_p50_ms, rv.window_max_ms, rv.replays_accepted, rv.still_open
            );
        }
        if let Some(so) = &c.stats.scale_out {
            let s = |v: Option<f64>| v.map_or("never".into(), |v| format!("{v:.1}s"));
            let _ = writeln!(
                out,
                "scale-out {}: {} reached 50% of its fair share after {}, 90% after {}; its steady share (last quarter) {:.0}% beside a fair share of {:.0}%",
                c.name(),
                so.backend,
                s(so.fair_share_50_s),
                s(so.fair_share_90_s),
                so.final_share * 100.0,
                so.fair_share * 100.0
            );
        }
        if let Some(si) = &c.stats.scale_in {
            let _ = writeln!(out, "scale-in {}: {}", c.name(), si.describe());
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
    use crate::report::SCHEMA;

    #[test]
    fn table_rows_are_as_wide_as_the_header() {
        let mut ran = CellReport::new("none", "token", "round_robin");
        ran.ran = true;
        ran.stats.send_lag_ms.max = 120.0;
        let mut skipped = CellReport::new("cookie", "shared", "round_robin");
        skipped.skip("no redis");
        let r = ScenarioReport {
            schema: SCHEMA,
            scenario: "t".into(),
            description: String::new(),
            quick: true,
            duration_s: 1.0,
            bucket_s: 0.25,
            token_ttl_s: None,
            access_ttl_s: None,
            replay_every_s: 0.1,
            drain_timeout_s: None,
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
