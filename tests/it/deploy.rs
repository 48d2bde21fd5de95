//! The deployment files users start from stay in step with the binary: the systemd unit passes
//! `systemd-analyze verify` (when the tool is installed) against the binary the tests built,
//! reloads with SIGHUP and checks the file before starting; the container file builds with
//! the README's command and runs `tether run` on the config path the unit uses.

use std::path::Path;
use std::process::Command;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The value of `key=` in the unit (the last one, as systemd takes it).
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
}

#[test]
fn the_systemd_unit_checks_runs_and_reloads_tether() {
    let unit = repo_file("deploy/tether.service");
    assert_eq!(
        unit_value(&unit, "ExecStart"),
        "/usr/local/bin/tether run -c /etc/tether/tether.toml"
    );
    assert_eq!(
        unit_value(&unit, "ExecStartPre"),
        "/usr/local/bin/tether check -c /etc/tether/tether.toml"
    );
    assert_eq!(unit_value(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(unit_value(&unit, "KillSignal"), "SIGTERM");
    let stop: u64 = unit_value(&unit, "TimeoutStopSec").parse().unwrap();
    assert!(
        stop > 30,
        "systemd must wait longer than the default shutdown_timeout"
    );

    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIPPED systemd-analyze verify: systemd-analyze is not installed");
        return;
    };
    assert!(version.status.success());
    // Verified against this build's binary and a shipped config, which must both exist.
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/minimal.toml");
    let local = unit
        .replace("/usr/local/bin/tether", env!("CARGO_BIN_EXE_tether"))
        .replace("/etc/tether/tether.toml", config.to_str().unwrap());
    let path = dir.path().join("tether.service");
    std::fs::write(&path, local).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .expect("run systemd-analyze");
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn the_container_file_builds_with_the_readme_command_and_runs_tether() {
    let file = repo_file("deploy/Containerfile");
    let readme = repo_file("README.md");
    assert!(
        readme.contains("cargo build --release"),
        "the README's build command"
    );
    assert!(
        file.contains("RUN cargo build --release -p tether"),
        "{file}"
    );
    assert!(file.contains("COPY --from=build /src/target/release/tether /usr/local/bin/tether"));
    assert!(file.contains(r#"ENTRYPOINT ["/usr/local/bin/tether"]"#));
    assert!(file.contains(r#"CMD ["run", "-c", "/etc/tether/tether.toml"]"#));
    assert!(file.contains("USER tether"), "runs unprivileged");
    // Every instruction is one a container builder knows.
    let known = [
        "FROM",
        "WORKDIR",
        "COPY",
        "RUN",
        "USER",
        "EXPOSE",
        "STOPSIGNAL",
        "ENTRYPOINT",
        "CMD",
    ];
    for line in file
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let instruction = line.split_whitespace().next().unwrap();
        assert!(
            known.contains(&instruction),
            "unknown instruction in {line:?}"
        );
    }
}
