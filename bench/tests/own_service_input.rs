//! Bad input to the lab's own-service mode: a command that cannot start, a port never ready,
//! an unknown key, a flow without steps. Each is exit status 2 with the key named, and no
//! process left behind. And an app that crashes on its own: an event of the run, not a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

fn tether_bin() -> PathBuf {
    let tether = Path::new(env!("CARGO_BIN_EXE_tether-bench")).with_file_name("tether");
    assert!(
        tether.is_file(),
        "{} not found: `cargo build --workspace` first",
        tether.display()
    );
    tether
}

/// Writes `scenario` into a fresh directory and runs it; returns the output and the directory.
fn run_scenario(name: &str, scenario: &str) -> (Output, String, PathBuf) {
    let dir = std::env::temp_dir().join(format!("tether-lab-input-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.toml");
    std::fs::write(&file, scenario).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tether-bench"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.join("out"))
        .arg("--tether")
        .arg(tether_bin())
        .output()
        .expect("tether-bench runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("{stderr}");
    (out, stderr, dir)
}

const FLOW: &str = "[[flow]]\nmethod = \"POST\"\npath = \"/login\"\n[[flow]]\npath = \"/notes\"\n";

#[test]
fn a_command_that_cannot_start_is_exit_2_naming_the_key() {
    let sc = format!(
        "name = \"bad\"\nduration = \"2s\"\n[app]\ncommand = [\"no-such-program-xyz\", \"--port\", \"{{port}}\"]\n{FLOW}"
    );
    let (out, err, _) = run_scenario("nostart", &sc);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("app.command") && err.contains("no-such-program-xyz"),
        "{err}"
    );
}

#[test]
fn a_port_never_ready_is_exit_2_and_the_process_is_stopped() {
    if !on_path("python3") {
        eprintln!("SKIPPED: python3 not installed (apt-get install -y python3)");
        return;
    }
    let sc = format!(
        "name = \"bad\"\nduration = \"2s\"\n[app]\ncommand = [\"python3\", \"-c\", \"import time; time.sleep(30)\", \"{{port}}\"]\nready_timeout = \"1s\"\n{FLOW}"
    );
    let (out, err, _) = run_scenario("notready", &sc);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("app.ready") && err.contains("did not answer 2xx"),
        "{err}"
    );
    let pid = err
        .split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("the message names the pid");
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        !cmdline.contains("time.sleep"),
        "pid {pid} still runs: {cmdline}"
    );
}

#[test]
fn unknown_keys_and_placeholders_are_exit_2_naming_them() {
    let sc =
        format!("name = \"bad\"\n[app]\ncommand = [\"x\", \"{{port}}\"]\nredy = \"/\"\n{FLOW}");
    let (out, err, _) = run_scenario("key", &sc);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("redy"), "{err}");
    let sc = format!("name = \"bad\"\n[app]\ncommand = [\"x\", \"{{prot}}\"]\n{FLOW}");
    let (out, err, _) = run_scenario("placeholder", &sc);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("app.command[1]") && err.contains("{prot}"),
        "{err}"
    );
    let sc = "name = \"bad\"\n[app]\ncommand = [\"x\", \"{port}\"]\n";
    let (out, err, _) = run_scenario("noflow", sc);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("flow: no steps"), "{err}");
}

#[test]
fn verify_refuses_a_flow_without_steps() {
    let dir = std::env::temp_dir().join(format!("tether-lab-input-vflow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("flow.toml"), "# nothing yet\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tether-bench"))
        .args(["verify", "--app", "python3 app.py --port {port}", "--flow"])
        .arg(dir.join("flow.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--flow") && err.contains("no steps"), "{err}");
}

#[test]
fn an_app_that_crashes_on_its_own_is_an_event() {
    if !on_path("python3") {
        eprintln!("SKIPPED: python3 not installed (apt-get install -y python3)");
        return;
    }
    let notes = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notes/notes.py");
    // app-1 lives one second; app-2 stays.
    let sc = format!(
        "name = \"crash\"\nduration = \"3s\"\n[app]\ncommand = [\"sh\", \"-c\", \"if [ {{index}} = 1 ]; then exec timeout 1 python3 {n} --port {{port}}; else exec python3 {n} --port {{port}}; fi\"]\n[topology]\nbackends = 2\n[load]\nusers = 4\nthink = \"200ms\"\n{FLOW}",
        n = notes.display()
    );
    let (out, err, dir) = run_scenario("crash", &sc);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let report = std::fs::read_to_string(dir.join("out/report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let ev = &report["cells"][0]["events"][0];
    assert_eq!(ev["action"], "crashed", "{ev}");
    assert_eq!(ev["backend"], "app-1");
    assert_eq!(ev["ok"], true);
    let _ = std::fs::remove_dir_all(&dir);
}
