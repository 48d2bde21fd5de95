//! End to end: `tether-bench run scenarios/failover.toml --quick` with real backends, a real
//! redis-server and a real tether, then the report's headline numbers against the claims.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// tether is built into the same target directory by `cargo test --workspace --all-targets`.
fn tether_bin() -> PathBuf {
    let bench = Path::new(env!("CARGO_BIN_EXE_tether-bench"));
    let tether = bench.with_file_name("tether");
    assert!(
        tether.is_file(),
        "{} not found: build it first with `cargo build --workspace` \
         (or run the workspace tests: `cargo test --workspace --all-targets`)",
        tether.display()
    );
    tether
}

fn redis_installed() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("redis-server").is_file()))
        .unwrap_or(false)
}

fn cell<'a>(report: &'a Value, affinity: &str, sessions: &str) -> &'a Value {
    report["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .find(|c| c["affinity"] == affinity && c["sessions"] == sessions)
        .unwrap_or_else(|| panic!("no cell {affinity}/{sessions} in the report"))
}

fn f(c: &Value, key: &str) -> f64 {
    c[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {}/{}", c["affinity"], c["sessions"]))
}

#[test]
fn quick_failover_matches_the_claims() {
    let tether = tether_bin();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/failover.toml");
    let out = std::env::temp_dir().join(format!("tether-lab-failover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_tether-bench"))
        .arg("run")
        .arg(&scenario)
        .arg("--quick")
        .arg("--out")
        .arg(&out)
        .arg("--junit")
        .arg(out.join("junit.xml"))
        .arg("--tether")
        .arg(&tether)
        .output()
        .expect("tether-bench runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    let text = std::fs::read_to_string(out.join("report.json"))
        .unwrap_or_else(|e| panic!("no report.json ({e}); stderr:\n{stderr}"));
    let report: Value = serde_json::from_str(&text).expect("report.json is JSON");
    assert_eq!(report["schema"], 1);
    assert_eq!(report["scenario"], "failover");
    assert!(out.join("index.html").is_file() && out.join("report.md").is_file());
    assert!(std::fs::read_to_string(out.join("junit.xml"))
        .unwrap()
        .contains("<testsuite"));

    // Every cell that ran really killed app-2 mid-run, and no request was lost beyond the
    // few in flight on it.
    let cells = report["cells"].as_array().unwrap();
    for c in cells.iter().filter(|c| c["ran"] == true) {
        let name = format!("{}/{}", c["affinity"], c["sessions"]);
        let ev = &c["events"][0];
        assert_eq!(ev["action"], "kill", "{name}");
        assert_eq!(ev["ok"], true, "{name}: kill failed: {}", ev["detail"]);
        assert!(f(c, "requests") > 500.0, "{name}: too few requests");
        assert!(
            f(c, "error_rate") <= 0.02,
            "{name}: error rate {}",
            c["error_rate"]
        );
        assert!(
            c["backends"]["app-2"]["requests"].as_u64().unwrap_or(0) > 0,
            "{name}: app-2 served nothing before the kill"
        );
        // The report's latency comes with its pacing precision.
        assert!(
            c["latency_ms"]["p99"].as_f64().is_some() && c["send_lag_ms"]["p99"].as_f64().is_some()
        );
    }

    // Stateless backends lose nothing, whatever the affinity.
    for affinity in ["none", "cookie", "ip_hash"] {
        for sessions in ["shared", "token"] {
            let c = cell(&report, affinity, sessions);
            if sessions == "shared" && !redis_installed() {
                assert_eq!(c["ran"], false, "shared cells need redis-server");
                eprintln!("redis-server is not installed (apt-get install -y redis-server): shared cells were skipped");
                continue;
            }
            if c["ran"] != true {
                eprintln!("{affinity}/{sessions} skipped: {}", c["skip_reason"]);
                continue;
            }
            assert_eq!(
                f(c, "sessions_lost"),
                0.0,
                "{affinity}/{sessions} lost sessions"
            );
            assert!(
                f(c, "sessions_started") >= 40.0,
                "{affinity}/{sessions}: every user logs in"
            );
        }
    }

    // In-memory sessions without stickiness: most sessions are lost at once.
    let none_local = cell(&report, "none", "local");
    assert_eq!(
        none_local["ran"], true,
        "none/local must run: {}",
        none_local["skip_reason"]
    );
    assert!(
        f(none_local, "sessions_lost_ratio") > 0.6,
        "none/local lost only {} of its sessions",
        none_local["sessions_lost_ratio"]
    );

    // In-memory sessions with stickiness: only the killed backend's users (about 1/4) lose.
    for affinity in ["cookie", "ip_hash"] {
        let c = cell(&report, affinity, "local");
        if c["ran"] != true {
            eprintln!("{affinity}/local skipped: {}", c["skip_reason"]);
            continue;
        }
        let ratio = f(c, "users_lost_ratio");
        assert!(
            (0.10..=0.45).contains(&ratio),
            "{affinity}/local: {ratio} of users lost their session, expected about 1/4 (is {affinity} affinity sticky?)"
        );
        assert!(f(c, "sticky_ratio") > 0.9, "{affinity}/local is not sticky");
        // Beside its theory: exactly the users tether had pinned to app-2 lose their session.
        let pinned = c["theory"]
            .as_array()
            .expect("theory")
            .iter()
            .find(|t| t["metric"] == "users_lost")
            .unwrap_or_else(|| panic!("{affinity}/local has no users_lost theory"));
        assert_eq!(
            pinned["measured"], pinned["expected"],
            "{affinity}/local: {pinned}"
        );
    }

    // The raw record re-derives the run's table, figure for figure.
    for c in cells.iter().filter(|c| c["ran"] == true) {
        let slug = format!(
            "{}-{}",
            c["affinity"].as_str().unwrap(),
            c["sessions"].as_str().unwrap()
        );
        let jsonl = out.join("cells").join(slug).join("requests.jsonl");
        let lines = std::fs::read_to_string(&jsonl).expect("every cell writes requests.jsonl");
        assert_eq!(
            lines.lines().count() as f64,
            f(c, "requests"),
            "{}",
            jsonl.display()
        );
    }
    let again = Command::new(env!("CARGO_BIN_EXE_tether-bench"))
        .arg("recompute")
        .arg(&out)
        .output()
        .expect("tether-bench recompute runs");
    let again = String::from_utf8_lossy(&again.stdout);
    let (table, verdict) = again
        .rsplit_once("\nrecomputed ")
        .unwrap_or_else(|| panic!("no verdict from recompute:\n{again}"));
    assert!(verdict.contains("agrees with report.json"), "{again}");
    assert!(
        stdout.contains(table),
        "recompute printed another table:\n{table}\nthan the run:\n{stdout}"
    );

    assert_eq!(
        run.status.success(),
        report["passed"] == true,
        "exit status and report disagree; stderr:\n{stderr}"
    );
    assert!(run.status.success(), "expectations failed:\n{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}
