//! The results table as cells of text: one header, one row per cell. The terminal, report.md and
//! index.html all lay out these same rows.

use crate::report::{CellReport, ScenarioReport};

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// What each column of the table means, for the page's legend.
pub const LEGEND: [(&str, &str); 15] = [
    ("affinity", "tether's affinity mode: none, cookie (a sticky cookie), ip_hash (by client address)"),
    ("sessions", "where the backends keep sessions: local (process memory), shared (redis), token (a signed cookie; token-denylist and token-refresh add a revocation record in redis); or the app's variant; #k: the k-th run under --repeat"),
    ("requests", "requests the virtual users sent"),
    ("errors", "5xx, other unexpected statuses, transport failures and timeouts"),
    ("sessions lost", "lost / started: a user found its session unknown or a write missing, and logged in again"),
    ("users lost", "users (identities that acted) who lost at least one session"),
    ("p50 ms", "median latency, from the intended send time (open loop)"),
    ("p99 ms", "99th percentile latency, from the intended send time; * = dominated by the generator's own lag: not measurable on this machine"),
    ("p99.9 ms", "99.9th percentile latency, from the intended send time"),
    ("svc p99", "p99 from the actual send: what a closed-loop tool would report"),
    ("lag p99", "p99 of the load generator's own send lag (how late its timers fired); read every latency figure beside it"),
    ("sticky", "of consecutive requests within a session, the fraction answered by the same backend"),
    ("max/mean", "busiest backend's requests over the mean of the backends that answered"),
    ("vs theory", "figures with a theory (listed above the table) within their tolerance; no theory: the scenario predicts none"),
    ("checks", "the scenario's expectations that held; each encodes a claim, listed above"),
];

/// The sessions column: the store, and the run's number under `--repeat`.
fn sessions(c: &CellReport) -> String {
    match c.repeat {
        0 => c.sessions.clone(),
        k => format!("{}#{}", c.sessions, k + 1),
    }
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
                let mut row = vec![c.affinity.clone(), sessions(c)];
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
                sessions(c),
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
                } else if t.metric.ends_with("_s") {
                    format!("{x:.2}")
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
