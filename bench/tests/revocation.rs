//! End to end: `tether-bench run scenarios/revocation.toml --quick`. Users log out and an
//! attacker replays the cookies captured just before: the revocation window of a plain signed
//! token is its lifetime, of a Redis denylist zero, of a short access token with a refresh
//! record at most the access lifetime. Skipped, saying so, when redis-server is not installed.

mod common;

use serde_json::Value;

use common::{redis_installed, run_quick};

/// (measured window max, logouts, still open) of cell none/`sessions`.
fn window(report: &Value, sessions: &str) -> (f64, u64, u64) {
    let c = common::ran(common::cell(report, None, Some(sessions)));
    let rv = &c["revocation"];
    (
        rv["window_max_ms"].as_f64().expect("window_max_ms"),
        rv["logouts"].as_u64().expect("logouts"),
        rv["still_open"].as_u64().expect("still_open"),
    )
}

#[test]
fn revocation_windows_follow_the_store() {
    if !redis_installed() {
        eprintln!("SKIPPED: redis-server is not installed (apt-get install -y redis-server)");
        return;
    }
    let (run, report, out) = run_quick("revocation");
    let stdout = String::from_utf8_lossy(&run.stdout);

    // Plain token: works until it expires (2 s, to within a replay interval and the write).
    let (plain, logouts, open) = window(&report, "token");
    assert!(logouts > 0 && open == 0, "{logouts} logouts, {open} open");
    assert!(
        (1800.0..=2100.0).contains(&plain),
        "plain token window {plain} ms"
    );
    // Denylist: the first replay after the logout is refused.
    let (deny, _, open) = window(&report, "token-denylist");
    assert_eq!((deny, open), (0.0, 0));
    // Refresh record: at most the 500 ms access lifetime.
    let (refresh, _, open) = window(&report, "token-refresh");
    assert!(refresh <= 550.0 && open == 0, "refresh window {refresh} ms");
    assert!(run.status.success(), "expectations failed:\n{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}
