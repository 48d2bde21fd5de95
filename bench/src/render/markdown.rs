//! report.md: the table, every check, every event, scale-out times.

use std::fmt::Write as _;

use super::figures::figure_lines;
use super::repeats::repeat_lines;
use super::rows::{latency_notes, phase_line, rows, theory_lines};
use crate::report::ScenarioReport;

/// report.md: the table, every check, every event, scale-out times.
pub fn markdown(r: &ScenarioReport) -> String {
    let (head, body) = rows(r);
    let mut out = format!(
        "# {}{}\n\n{}\n\n",
        r.scenario,
        if r.quick { " (quick)" } else { "" },
        r.description
    );
    let _ = writeln!(
        out,
        "{} users, think {:.0} ms, {:.0} s per cell, {} backends, {} proxy(ies).\n",
        r.users, r.think_ms, r.duration_s, r.backends, r.proxies
    );
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(head.len()));
    for row in body {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    let notes = latency_notes(r);
    if !notes.is_empty() {
        let _ = writeln!(out);
    }
    for note in notes {
        let _ = writeln!(out, "{}  ", note.replacen('*', "\\*", 1));
    }
    for line in repeat_lines(r) {
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(out, "\n## Every number beside its theory\n");
    let lines = theory_lines(r);
    if lines.is_empty() {
        let _ = writeln!(
            out,
            "No figure of this scenario has a theory the lab can derive."
        );
    }
    for line in lines {
        let _ = writeln!(out, "- {line}");
    }
    let figures = figure_lines(r);
    if !figures.is_empty() {
        let _ = writeln!(out, "\n## Figures\n");
    }
    for line in figures {
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(out, "\n## Checks\n");
    for c in &r.cells {
        if let Some(why) = &c.skip_reason {
            let _ = writeln!(out, "- {}: skipped: {why}", c.name());
        }
        for k in &c.checks {
            let _ = writeln!(
                out,
                "- {} {}: `{}` = {} (limit {}){}",
                if k.pass { "ok" } else { "**FAILED**" },
                c.name(),
                k.expect,
                k.value.map_or("never".into(), |v| format!("{v:.3}")),
                k.limit,
                if k.claim.is_empty() {
                    String::new()
                } else {
                    format!(": {}", k.claim)
                }
            );
        }
    }
    let _ = writeln!(out, "\n## Phases (between events, by intended send time)\n");
    for c in r.cells.iter().filter(|c| c.ran && c.stats.phases.len() > 1) {
        let _ = writeln!(out, "- {}", phase_line(c));
    }
    let _ = writeln!(out, "\n## Events\n");
    for e in &r.events {
        let _ = writeln!(
            out,
            "- {} at {:.2}s: {} {} -> {}{}",
            e.cell,
            e.actual_s,
            e.action,
            e.backend,
            if e.ok { "ok: " } else { "**FAILED**: " },
            e.detail
        );
    }
    for c in r.cells.iter().filter(|c| c.ran) {
        if let Some(so) = &c.stats.scale_out {
            let s = |v: Option<f64>| v.map_or("never".into(), |v| format!("{v:.1} s"));
            let _ = writeln!(
                out,
                "\n{}: {} added at {:.1} s reached 50% of its fair share ({:.0}%) after {}, 90% after {}; final share {:.0}%",
                c.name(), so.backend, so.added_at_s, so.fair_share * 100.0,
                s(so.fair_share_50_s), s(so.fair_share_90_s), so.final_share * 100.0
            );
        }
        if let Some(si) = &c.stats.scale_in {
            let _ = writeln!(out, "\n{}: {}", c.name(), si.describe());
        }
    }
    out
}
