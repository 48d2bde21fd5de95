//! Judges a cell that ran against the scenario's expectations, plus the one every cell carries:
//! every timeline event was carried out.

use crate::report::{CellReport, Check};
use crate::scenario::Scenario;

/// Checks the scenario's expectations against a cell that ran.
pub fn check(sc: &Scenario, cell: &mut CellReport) {
    let failed_events = cell.events.iter().filter(|e| !e.ok).count();
    cell.checks.push(Check {
        expect: "events_failed_max".into(),
        limit: 0.0,
        value: Some(failed_events as f64),
        pass: failed_events == 0,
        claim: "every timeline event was carried out".into(),
    });
    for x in sc
        .expects
        .iter()
        .filter(|x| x.matches(&cell.affinity, &cell.sessions))
    {
        for m in &x.within_theory {
            let key = format!("theory:{m}");
            let tolerance = cell
                .stats
                .theory
                .iter()
                .find(|t| t.metric == *m)
                .map_or(0.0, |t| t.tolerance);
            let (value, pass) = cell.stats.judge(&key, tolerance);
            cell.checks.push(Check {
                expect: key,
                limit: tolerance,
                value,
                pass,
                claim: x.claim.clone(),
            });
        }
        for (key, &limit) in &x.limits {
            let (value, pass) = cell.stats.judge(key, limit);
            cell.checks.push(Check {
                expect: key.clone(),
                limit,
                value,
                pass,
                claim: x.claim.clone(),
            });
        }
    }
}
