//! The results table as cells of text: one header, one row per cell. The terminal, report.md and
//! index.html all lay out these same rows.

use crate::report::{CellReport, ScenarioReport};

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
        "lag p99",
        "sticky",
        "max/mean",
        "vs theory",
        "checks",
    ];
    let body = r
        .cells
        .iter()
        .map(|c| {
            if !c.ran {
                let mut row = vec![c.affinity.clone(), c.sessions.clone()];
                row.extend((0..12).map(|_| "-".to_string()));
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
            // A latency the generator's own lag dominates is not the proxy's: marked, and
            // explained under the table (`latency_notes`).
            let mark = if s.latency_measurable { "" } else { "*" };
            let ms = |v: f64| format!("{v:.1}{mark}");
            vec![
                c.affinity.clone(),
                c.sessions.clone(),
                s.requests.to_string(),
                s.errors.to_string(),
                format!("{} / {}", s.sessions_lost, s.sessions_started),
                pct(s.users_lost_ratio),
                ms(s.latency_ms.p50),
                ms(s.latency_ms.p99),
                ms(s.latency_ms.p999),
                ms(s.service_ms.p99),
                format!("{:.1}", s.send_lag_ms.p99),
                pct(s.sticky_ratio),
                format!("{:.2}", s.max_mean_load),
                match s.theory.iter().filter(|t| !t.holds).count() {
                    _ if s.theory.is_empty() => "no theory".into(),
                    0 => format!("ok ({})", s.theory.len()),
                    off => format!("OFF {off}/{}", s.theory.len()),
                },
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

/// What each timeline event cost a cell: one "after EVENT (from-to s): errors, losses" part
/// per phase.
pub fn phase_line(c: &CellReport) -> String {
    let parts: Vec<String> = c
        .stats
        .phases
        .iter()
        .map(|p| {
            format!(
                "{} ({:.1}-{:.1}s): {} req, {} errors, {} sessions lost",
                p.after, p.from_s, p.to_s, p.requests, p.errors, p.sessions_lost
            )
        })
        .collect();
    format!("phases {}: {}", c.name(), parts.join("; "))
}

/// One line per figure with a theory: measured, expected, tolerance, basis, verdict.
pub fn theory_lines(r: &ScenarioReport) -> Vec<String> {
    let mut out = Vec::new();
    for c in r.cells.iter().filter(|c| c.ran) {
        for t in &c.stats.theory {
            let v = |x: f64| {
                if t.metric.ends_with("_ratio") {
                    format!("{:.1}%", x * 100.0)
                } else {
                    format!("{x:.0}")
                }
            };
            out.push(format!(
                "theory {}: {} measured {} vs expected {} +/- {} ({}): {}",
                c.name(),
                t.metric,
                v(t.measured),
                v(t.expected),
                v(t.tolerance),
                t.basis,
                if t.holds { "holds" } else { "OFF" }
            ));
        }
    }
    out
}

/// One line per cell whose latency the generator's send lag dominates, saying so.
pub fn latency_notes(r: &ScenarioReport) -> Vec<String> {
    r.cells
        .iter()
        .filter(|c| c.ran && !c.stats.latency_measurable)
        .map(|c| {
            let s = &c.stats;
            format!(
                "* {}: latency not measurable on this machine: the load generator's send lag (p99 {:.1} ms) is {:.0}% of p99 {:.1} ms",
                c.name(),
                s.send_lag_ms.p99,
                s.lag_share_p99 * 100.0,
                s.latency_ms.p99
            )
        })
        .collect()
}
