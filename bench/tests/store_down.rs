//! End to end: `tether-bench run scenarios/store-down.toml --quick`. The redis-server of the
//! `shared` sessions is frozen, then killed and started again empty: shared sessions see
//! errors and a forced re-login, token and local sessions see nothing. Skipped, saying so, when
//! redis-server is not installed.

mod common;

use serde_json::Value;

use common::{redis_installed, run_quick};

fn cell<'a>(report: &'a Value, sessions: &str) -> &'a Value {
    common::cell(report, None, Some(sessions))
}

/// The phase that followed the event `after` ("kill redis", ...).
fn phase<'a>(c: &'a Value, after: &str) -> &'a Value {
    c["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["after"] == after)
        .unwrap_or_else(|| panic!("no phase after {after}"))
}

#[test]
fn a_dead_store_costs_shared_sessions_only() {
    if !redis_installed() {
        eprintln!("SKIPPED: redis-server is not installed (apt-get install -y redis-server)");
        return;
    }
    let (run, report, out) = run_quick("store-down");
    let stdout = String::from_utf8_lossy(&run.stdout);

    let shared = cell(&report, "shared");
    assert_eq!(shared["ran"], true, "{}", shared["skip_reason"]);
    for e in shared["events"].as_array().unwrap() {
        assert_eq!(
            e["ok"], true,
            "event {} {} failed: {}",
            e["action"], e["backend"], e["detail"]
        );
    }
    // Frozen: requests wait out the store timeout and fail, but the data is still there.
    let frozen = phase(shared, "freeze redis");
    assert!(frozen["errors"].as_u64().unwrap() > 0, "{frozen}");
    assert_eq!(frozen["sessions_lost"], 0, "{frozen}");
    // Killed: every request fails at once; started again empty: every user logs in again.
    let down = phase(shared, "kill redis");
    // (A request intended just before the restart may go out after it.)
    let (errors, requests) = (
        down["errors"].as_f64().unwrap(),
        down["requests"].as_f64().unwrap(),
    );
    assert!(errors >= 0.9 * requests, "{down}");
    assert!(
        shared["users_lost_ratio"].as_f64().unwrap() >= 0.9,
        "{shared}"
    );
    assert!(
        phase(shared, "start redis")["sessions_lost"]
            .as_u64()
            .unwrap()
            > 0
    );

    for sessions in ["token", "local"] {
        let c = cell(&report, sessions);
        assert_eq!(c["ran"], true, "{}", c["skip_reason"]);
        assert_eq!(c["errors"], 0, "{sessions} noticed redis");
        assert_eq!(c["sessions_lost"], 0, "{sessions} lost sessions");
    }
    assert!(run.status.success(), "expectations failed:\n{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}
