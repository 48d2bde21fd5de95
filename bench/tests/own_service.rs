//! End to end, the lab on a service it knows nothing about: the Python notes example
//! (bench/examples/notes) through the failover scenario and through `verify`, with real
//! python3, redis-server and tether processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use serde_json::Value;

/// The lab's runs are timed: one at a time, so they do not slow each other on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn tether_bin() -> PathBuf {
    let tether = Path::new(env!("CARGO_BIN_EXE_tether-bench")).with_file_name("tether");
    assert!(
        tether.is_file(),
        "{} not found: build it first with `cargo build --workspace`",
        tether.display()
    );
    tether
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// Whether python3 and redis-server are installed; says how to get them when not.
fn tools_present() -> bool {
    let missing: Vec<&str> = ["python3", "redis-server"]
        .into_iter()
        .filter(|b| !on_path(b))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED: {} not installed (Debian/Ubuntu: apt-get install -y python3 redis-server)",
            missing.join(" and ")
        );
    }
    missing.is_empty()
}

fn notes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notes")
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tether-lab-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn bench(args: &[&str], dir: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_tether-bench"))
        .args(args)
        .arg("--tether")
        .arg(tether_bin())
        .current_dir(dir)
        .output()
        .expect("tether-bench runs");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn cell<'a>(report: &'a Value, affinity: &str, variant: &str) -> &'a Value {
    report["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .find(|c| c["affinity"] == affinity && c["sessions"] == variant)
        .unwrap_or_else(|| panic!("no cell {affinity}/{variant}"))
}

#[test]
fn notes_failover_memory_loses_sessions_redis_none() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !tools_present() {
        return;
    }
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/notes-failover.toml");
    let out = out_dir("notes-failover");
    let run = bench(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--quick",
            "--only",
            "none/memory,cookie/memory,none/redis,cookie/redis",
            "--out",
            out.to_str().unwrap(),
        ],
        Path::new(env!("CARGO_MANIFEST_DIR")),
    );
    let text = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    let report: Value = serde_json::from_str(&text).unwrap();
    for c in report["cells"].as_array().unwrap() {
        assert_eq!(
            c["ran"], true,
            "{}/{} did not run",
            c["affinity"], c["sessions"]
        );
        assert_eq!(c["events"][0]["action"], "kill");
        assert_eq!(c["events"][0]["ok"], true, "{}", c["events"][0]["detail"]);
        // tether's explain header tells the lab which instance answered.
        assert!(c["backends"]["app-2"]["requests"].as_u64().unwrap_or(0) > 0);
    }
    let f = |c: &Value, k: &str| c[k].as_f64().unwrap();
    let cookie_memory = cell(&report, "cookie", "memory");
    let lost = f(cookie_memory, "users_lost_ratio");
    assert!(
        (0.10..=0.45).contains(&lost),
        "cookie/memory: {lost} of users lost, expected about the killed instance's 1/4"
    );
    assert!(f(cell(&report, "none", "memory"), "sessions_lost_ratio") > 0.6);
    for a in ["none", "cookie"] {
        assert_eq!(
            f(cell(&report, a, "redis"), "sessions_lost"),
            0.0,
            "{a}/redis"
        );
    }
    assert!(run.status.success(), "expectations failed");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn verify_names_the_failing_step_for_memory_and_passes_redis() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !tools_present() {
        return;
    }
    let out = out_dir("verify");
    let junit = out.join("junit.xml");
    let memory = bench(
        &[
            "verify",
            "--app",
            "python3 notes.py --port {port} --id {id} --sessions memory",
            "--flow",
            "flow.toml",
            "--duration",
            "3s",
            "--out",
            out.join("memory").to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
        &notes_dir(),
    );
    let text = String::from_utf8_lossy(&memory.stdout);
    assert_eq!(memory.status.code(), Some(1), "memory must fail");
    assert!(text.contains("HIDDEN LOCAL STATE"), "{text}");
    assert!(
        text.contains("flow[1] (POST /notes): session not found"),
        "{text}"
    );
    assert!(text.contains("was answered by app-"), "{text}");
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<failure"));

    let redis = bench(
        &[
            "verify",
            "--app",
            "python3 notes.py --port {port} --id {id} --sessions redis",
            "--env",
            "STORE_URL={redis_url}",
            "--flow",
            "flow.toml",
            "--duration",
            "3s",
            "--out",
            out.join("redis").to_str().unwrap(),
        ],
        &notes_dir(),
    );
    let text = String::from_utf8_lossy(&redis.stdout);
    assert_eq!(redis.status.code(), Some(0), "redis must pass:\n{text}");
    assert!(text.contains("no hidden local state found"), "{text}");
    assert!(
        text.contains("kill app-2") && text.contains("restart app-3"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
