//! End to end: `tether-bench run scenarios/rate-limit.toml --quick`. A per-user limit of L
//! requests per second, counted in each backend's memory or in redis: round robin lets the
//! in-memory limiter admit several times L, redis holds L, cookie affinity holds L until a
//! backend dies and its users get a fresh count. Skipped, saying so, when redis-server is not
//! installed.

mod common;

use serde_json::Value;

use common::{redis_installed, run_quick};

fn cell<'a>(report: &'a Value, affinity: &str, sessions: &str) -> &'a Value {
    common::ran(common::cell(report, Some(affinity), Some(sessions)))
}

/// (admitted per user per second, most admitted to one user within one second).
fn admitted(c: &Value) -> (f64, u64) {
    let r = &c["rate"];
    (
        r["per_user_s"].as_f64().expect("rate.per_user_s"),
        r["peak_1s"].as_u64().expect("rate.peak_1s"),
    )
}

#[test]
fn where_the_count_lives_decides_what_a_limit_admits() {
    if !redis_installed() {
        eprintln!("SKIPPED: redis-server is not installed (apt-get install -y redis-server)");
        return;
    }
    let (run, report, out) = run_quick("rate-limit");
    let stdout = String::from_utf8_lossy(&run.stdout);
    // The scenario's limit: 2 per user per second, users asking 20 times a second.
    let l = 2.0;

    let (spread, spread_peak) = admitted(cell(&report, "none", "memory"));
    assert!(spread >= 1.5 * l, "round robin, in memory: {spread}/s");
    assert!(
        spread_peak >= 5,
        "round robin, in memory: peak {spread_peak}"
    );
    for affinity in ["none", "cookie"] {
        let (rate, peak) = admitted(cell(&report, affinity, "redis"));
        assert!(rate <= 1.25 * l, "{affinity}/redis admitted {rate}/s");
        assert!(
            peak <= 3,
            "{affinity}/redis admitted {peak} within a second"
        );
    }
    let (pinned, pinned_peak) = admitted(cell(&report, "cookie", "memory"));
    assert!(pinned <= 1.25 * l, "cookie, in memory: {pinned}/s");
    // The kill re-pins app-2's users to a backend that never counted them.
    assert!(
        pinned_peak >= 4,
        "cookie, in memory: failover peak {pinned_peak}"
    );
    assert!(
        stdout.contains("theory cookie/memory: admitted_peak_1s"),
        "{stdout}"
    );
    assert!(run.status.success(), "expectations failed:\n{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}
