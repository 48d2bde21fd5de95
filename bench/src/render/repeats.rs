//! `--repeat`: the runs of one cell side by side, as medians and ranges, so run-to-run
//! variation reads as what it is.

use crate::report::{CellReport, ScenarioReport};

/// A figure of a cell that ran.
type Figure = fn(&CellReport) -> f64;

/// The figures summarised, as (label, value of a cell, unit).
const FIGURES: [(&str, Figure, &str); 6] = [
    ("users lost", |c| c.stats.users_lost_ratio * 100.0, "%"),
    ("sessions lost", |c| c.stats.sessions_lost as f64, ""),
    ("errors", |c| c.stats.errors as f64, ""),
    ("p99", |c| c.stats.latency_ms.p99, " ms"),
    ("svc p99", |c| c.stats.service_ms.p99, " ms"),
    ("lag p99", |c| c.stats.send_lag_ms.p99, " ms"),
];

/// One line per cell run more than once: each figure's median and [min-max] over the runs.
pub fn repeat_lines(r: &ScenarioReport) -> Vec<String> {
    let mut out = Vec::new();
    for first in r.cells.iter().filter(|c| c.repeat == 0) {
        let runs: Vec<&CellReport> = r
            .cells
            .iter()
            .filter(|c| c.ran && c.affinity == first.affinity && c.sessions == first.sessions)
            .collect();
        if runs.len() < 2 {
            continue;
        }
        let parts: Vec<String> = FIGURES
            .iter()
            .map(|(label, f, unit)| {
                let mut v: Vec<f64> = runs.iter().map(|c| f(c)).collect();
                v.sort_by(f64::total_cmp);
                let median = if v.len() % 2 == 1 {
                    v[v.len() / 2]
                } else {
                    (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
                };
                format!(
                    "{label} {median:.1}{unit} [{:.1}-{:.1}]",
                    v[0],
                    v[v.len() - 1]
                )
            })
            .collect();
        out.push(format!(
            "repeat {}/{} ({} runs, median [min-max]): {}",
            first.affinity,
            first.sessions,
            runs.len(),
            parts.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::SCHEMA;

    #[test]
    fn runs_of_one_cell_give_a_median_and_a_range() {
        let cells: Vec<CellReport> = [0.2, 0.3, 0.25]
            .iter()
            .enumerate()
            .map(|(k, lost)| {
                let mut c = CellReport::new("cookie", "local", "round_robin");
                c.repeat = k as u32;
                c.ran = true;
                c.stats.users_lost_ratio = *lost;
                c
            })
            .collect();
        assert_eq!(cells[2].name(), "cookie/local#3");
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
            backends: 4,
            proxies: 1,
            passed: true,
            cells,
            events: Vec::new(),
        };
        let lines = repeat_lines(&r);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("cookie/local (3 runs")
                && lines[0].contains("users lost 25.0% [20.0-30.0]"),
            "{}",
            lines[0]
        );
    }
}
