//! What the lab's end-to-end tests share: whether redis-server and dnsmasq are installed, one
//! quick run of a shipped scenario with the tether binary built beside `tether-bench`, and
//! finding a cell in its report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// True when `redis-server` is on the PATH.
#[allow(dead_code)]
pub fn redis_installed() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("redis-server").is_file()))
        .unwrap_or(false)
}

/// True when `dnsmasq` is installed (on the PATH or in an sbin directory, where it usually
/// lives).
#[allow(dead_code)]
pub fn dnsmasq_installed() -> bool {
    let path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path.into_iter()
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .any(|d| d.join("dnsmasq").is_file())
}

/// Runs `tether-bench run scenarios/NAME.toml --quick` into a fresh directory; its output, and
/// the report.json it wrote (stdout is printed for the test log), and the report directory.
pub fn run_quick(name: &str) -> (Output, Value, PathBuf) {
    let bench = Path::new(env!("CARGO_BIN_EXE_tether-bench"));
    let tether = bench.with_file_name("tether");
    assert!(
        tether.is_file(),
        "{} not found: `cargo build -p tether` first",
        tether.display()
    );
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{name}.toml"));
    let out = std::env::temp_dir().join(format!("tether-lab-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(bench)
        .arg("run")
        .arg(&scenario)
        .arg("--quick")
        .arg("--out")
        .arg(&out)
        .arg("--tether")
        .arg(&tether)
        .output()
        .expect("tether-bench runs");
    println!("{}", String::from_utf8_lossy(&run.stdout));
    let text = std::fs::read_to_string(out.join("report.json")).unwrap_or_else(|e| {
        panic!(
            "no report.json ({e}); stderr:\n{}",
            String::from_utf8_lossy(&run.stderr)
        )
    });
    (run, serde_json::from_str(&text).unwrap(), out)
}

/// The cell of `report` with this `affinity` and `sessions` (an app's variant), `None`
/// matching any; panics naming what it looked for.
#[allow(dead_code)]
pub fn cell<'a>(report: &'a Value, affinity: Option<&str>, sessions: Option<&str>) -> &'a Value {
    report["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .find(|c| {
            affinity.is_none_or(|a| c["affinity"] == a)
                && sessions.is_none_or(|s| c["sessions"] == s)
        })
        .unwrap_or_else(|| {
            let any = "*";
            panic!(
                "no cell {}/{} in the report",
                affinity.unwrap_or(any),
                sessions.unwrap_or(any)
            )
        })
}

/// `c`, asserting that it ran (it was not skipped).
#[allow(dead_code)]
pub fn ran(c: &Value) -> &Value {
    assert_eq!(
        c["ran"], true,
        "{}/{}: {}",
        c["affinity"], c["sessions"], c["skip_reason"]
    );
    c
}
