//! `tether-bench recompute OUT_DIR`: re-derives every cell's figures and checks from the raw
//! record (`cells/<cell>/requests.jsonl`) and the run's own report.json (for the scenario,
//! its events and its expectations), prints the same table the run printed, and says whether
//! the two agree.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use crate::record;
use crate::render;
use crate::report::ScenarioReport;
use crate::stats;
use crate::theory;

/// Relative difference under which two numbers of report.json count as equal (the JSON
/// round trip of an `f64` may move its last bit).
const EPS: f64 = 1e-9;

/// Recomputes every report under `dir` (one, or one per scenario of a suite); prints each
/// table; returns whether every recomputed report agrees with the one the run wrote.
pub fn run(dir: &Path) -> anyhow::Result<bool> {
    let mut agree = true;
    for d in report_dirs(dir)? {
        let text = std::fs::read_to_string(d.join("report.json"))
            .with_context(|| format!("cannot read {}", d.join("report.json").display()))?;
        let original: ScenarioReport = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a report.json of this version", d.display()))?;
        let again = recompute(&original, &d)?;
        println!("{}", render::table(&again));
        let diffs = differences(
            &serde_json::to_value(&original)?,
            &serde_json::to_value(&again)?,
            "",
        );
        let cells = again.cells.iter().filter(|c| c.ran).count();
        if diffs.is_empty() {
            println!(
                "recomputed {cells} cell(s) from {}: agrees with report.json",
                record::FILE
            );
        } else {
            agree = false;
            println!(
                "recomputed {cells} cell(s) from {}: DIFFERS from report.json at {}",
                record::FILE,
                diffs.join(", ")
            );
        }
    }
    Ok(agree)
}

/// `dir` itself when it holds a report.json, else its subdirectories that do (a suite).
fn report_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.join("report.json").is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("report.json").is_file())
        .collect();
    dirs.sort();
    anyhow::ensure!(!dirs.is_empty(), "no report.json in {}", dir.display());
    Ok(dirs)
}

/// The report with every ran cell's figures and checks derived again from its record.
pub fn recompute(original: &ScenarioReport, dir: &Path) -> anyhow::Result<ScenarioReport> {
    let mut r = original.clone();
    let bucket = Duration::from_secs_f64(r.bucket_s);
    // The scenario's own figures (lifetimes, backends) for the theory, without the cells.
    let meta = ScenarioReport {
        cells: Vec::new(),
        ..original.clone()
    };
    for c in r.cells.iter_mut().filter(|c| c.ran) {
        let path = dir.join("cells").join(c.slug()).join(record::FILE);
        let samples = record::read(&path)?;
        let added = c
            .stats
            .scale_out
            .as_ref()
            .map(|so| (so.backend.clone(), so.added_at_s));
        let removed = c
            .stats
            .scale_in
            .as_ref()
            .map(|si| (si.backend.clone(), si.removed_at_s));
        let changes = stats::Changes {
            added: added.as_ref().map(|(b, at)| (b.as_str(), *at)),
            removed: removed.as_ref().map(|(b, at)| (b.as_str(), *at)),
        };
        c.stats = stats::compute(&samples, bucket, changes, &c.marks());
        c.stats.theory = theory::derive(&samples, &c.setup(&meta));
        let failed_events = c.events.iter().filter(|e| !e.ok).count() as f64;
        for k in c.checks.iter_mut() {
            match k.expect.as_str() {
                "events_failed_max" => {
                    k.value = Some(failed_events);
                    k.pass = failed_events <= k.limit;
                }
                key => (k.value, k.pass) = c.stats.judge(key, k.limit),
            }
        }
    }
    r.passed = r.cells.iter().all(|c| c.passed());
    Ok(r)
}

/// The JSON paths where `a` and `b` differ (numbers compared to a relative `EPS`).
fn differences(a: &Value, b: &Value, at: &str) -> Vec<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let (va, vb) = (
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    );
                    differences(va, vb, &format!("{at}.{k}"))
                })
                .collect()
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .flat_map(|(i, (va, vb))| differences(va, vb, &format!("{at}[{i}]")))
            .collect(),
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            if (x - y).abs() <= EPS * x.abs().max(y.abs()).max(1.0) {
                Vec::new()
            } else {
                vec![format!("{at} ({x} vs {y})")]
            }
        }
        _ if a == b => Vec::new(),
        _ => vec![at.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_path_and_ignore_the_last_bit() {
        let a = serde_json::json!({"cells": [{"p99": 1.0, "n": 3}]});
        let b = serde_json::json!({"cells": [{"p99": 1.0 + 1e-13, "n": 4}]});
        assert_eq!(differences(&a, &b, ""), vec![".cells[0].n (3 vs 4)"]);
    }
}
