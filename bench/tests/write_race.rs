//! End to end: `tether-bench run scenarios/write-race.toml --quick`. One user's concurrent cart
//! adds: a read-modify-write of a shared session loses all but one of each burst, an atomic
//! update in Redis and a sticky in-process session lose none. Skipped, saying so, when
//! redis-server is not installed.

mod common;

use serde_json::Value;

use common::{redis_installed, run_quick};

fn cell<'a>(report: &'a Value, sessions: &str) -> &'a Value {
    common::ran(common::cell(report, None, Some(sessions)))
}

/// (writes acknowledged, writes a later read came back without).
fn writes(c: &Value) -> (u64, u64) {
    (
        c["writes_acked"].as_u64().expect("writes_acked"),
        c["lost_updates"].as_u64().expect("lost_updates"),
    )
}

#[test]
fn only_a_read_modify_write_loses_concurrent_updates() {
    if !redis_installed() {
        eprintln!("SKIPPED: redis-server is not installed (apt-get install -y redis-server)");
        return;
    }
    let (run, report, out) = run_quick("write-race");
    let stdout = String::from_utf8_lossy(&run.stdout);

    let (acked, lost) = writes(cell(&report, "rmw"));
    // Bursts of 5 that all read before any writes back keep one add each.
    assert!(
        acked > 0 && lost * 2 >= acked,
        "rmw: {lost} of {acked} lost"
    );
    for sessions in ["atomic", "local"] {
        let c = cell(&report, sessions);
        let (acked, lost) = writes(c);
        assert!(acked > 0, "{sessions}: no write acknowledged");
        assert_eq!(lost, 0, "{sessions} lost updates");
        assert_eq!(c["sessions_lost"], 0, "{sessions} lost sessions");
    }
    assert!(stdout.contains("writes cookie/rmw (rmw):"), "{stdout}");
    assert!(run.status.success(), "expectations failed:\n{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}
