//! The results table as cells of text: one header, one row per cell. The terminal, report.md and
//! index.html all lay out these same rows.

use crate::report::ScenarioReport;

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
                let mut row = vec![c.affinity.clone(), c.sessions.clone()];
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
                c.sessions.clone(),
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
