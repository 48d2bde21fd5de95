//! The tether process under test: config in a tempfile, stderr captured, listeners found in its log.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long tether may take to log every listener's address after it is spawned.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

/// The tether binary cargo built for these tests.
pub const TETHER: &str = env!("CARGO_BIN_EXE_tether");

/// A running `tether run -c CONFIG`; killed on drop if it is still alive.
pub struct Tether {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    addrs: HashMap<String, SocketAddr>,
    exit: Option<ExitStatus>,
    config: tempfile::NamedTempFile,
}

impl Tether {
    /// Writes `config` (text, or a [`Config`](super::config::Config)) to a tempfile, spawns
    /// tether on it, and waits until every listener the config names (and `admin`, if
    /// configured) has logged the address it bound.
    pub async fn start(config: impl fmt::Display) -> Tether {
        let config = config.to_string();
        let names = listener_names(&config);
        let file = write_config(&config);
        let mut child = Command::new(TETHER)
            .arg("run")
            .arg("-c")
            .arg(file.path())
            // Pinned so a developer's RUST_LOG cannot hide the lines the harness reads.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tether");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut tether = Tether {
            child,
            lines,
            addrs: HashMap::new(),
            exit: None,
            config: file,
        };
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            tether.addrs = listening_addrs(&tether.stderr_lines());
            if names.iter().all(|name| tether.addrs.contains_key(name)) {
                return tether;
            }
            if let Some(status) = tether.child.try_wait().expect("try_wait") {
                tether.exit = Some(status);
                panic!(
                    "tether exited ({status}) before logging listeners {names:?}; stderr:\n{}",
                    tether.stderr_text()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "tether did not log `listening listener.name=NAME listener.addr=IP:PORT` \
                     for all of {names:?} within {STARTUP_DEADLINE:?}; stderr:\n{}",
                    tether.stderr_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The address the listener called `name` logged (`admin` for the admin listener).
    pub fn addr(&self, name: &str) -> SocketAddr {
        *self
            .addrs
            .get(name)
            .unwrap_or_else(|| panic!("no listener {name:?}; have {:?}", self.addrs))
    }

    /// The address the listener `name` logged most recently, waiting up to `within` for one
    /// to appear (for listeners a reload added or rebound).
    pub async fn wait_listener(&self, name: &str, within: Duration) -> SocketAddr {
        let deadline = Instant::now() + within;
        loop {
            if let Some(addr) = listening_addrs(&self.stderr_lines()).get(name) {
                return *addr;
            }
            if Instant::now() > deadline {
                panic!(
                    "listener {name:?} not logged as listening within {within:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replaces the config file's contents in place (same path), for reload tests.
    pub fn rewrite_config(&self, config: impl fmt::Display) {
        std::fs::write(self.config.path(), config.to_string()).expect("rewrite config file");
    }

    /// The tether process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stderr line tether has written so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// All of stderr so far, as one string for failure messages.
    pub fn stderr_text(&self) -> String {
        self.stderr_lines().join("\n")
    }

    /// Waits until some stderr line satisfies `pred` and returns it; panics at the deadline.
    pub async fn wait_for_line(&self, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.stderr_lines().into_iter().find(|l| pred(l)) {
                return line;
            }
            if Instant::now() > deadline {
                panic!(
                    "no matching stderr line within {within:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, ...) to this tether, and only to it.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg("-s")
            .arg(name)
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} {} failed", self.pid());
    }

    /// The exit status if tether has exited, without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit
    }

    /// Waits for tether to exit; panics if it is still running after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "tether still running {within:?} after being asked to stop; stderr:\n{}",
                    self.stderr_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Peak resident memory of tether so far, from `VmHWM` in /proc/PID/status, in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM in /proc/PID/status");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("VmHWM value in kB");
        kib * 1024
    }
}

impl Drop for Tether {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- tether stderr ---\n{}\n---", self.stderr_text());
        }
    }
}

/// Runs `tether check -c FILE` (or `--config` when `long_flag`) on `path`, with a deadline.
pub fn check_file(path: &std::path::Path, long_flag: bool) -> Output {
    let child = Command::new(TETHER)
        .arg("check")
        .arg(if long_flag { "--config" } else { "-c" })
        .arg(path)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tether check");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(output) => output.expect("wait for tether check"),
        Err(_) => {
            // Our own child, by PID: `check` must never hang.
            let _ = Command::new("kill")
                .args(["-s", "KILL", &pid.to_string()])
                .status();
            panic!("tether check {} did not finish within 10s", path.display());
        }
    }
}

/// Runs `tether check -c` on a config given as text or as a [`Config`](super::config::Config).
pub fn check_config(config: impl fmt::Display) -> Output {
    let file = write_config(&config.to_string());
    check_file(file.path(), false)
}

fn write_config(config: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .prefix("tether-test-")
        .suffix(".toml")
        .tempfile()
        .expect("create config tempfile");
    file.write_all(config.as_bytes()).expect("write config");
    file.flush().expect("flush config");
    file
}

/// Listener names a config declares, plus `admin` when it has an `[admin]` table.
fn listener_names(config: &str) -> Vec<String> {
    let table: toml::Table = config.parse().expect("test config is valid TOML");
    let mut names: Vec<String> = table
        .get("listener")
        .and_then(|l| l.as_array())
        .map(|listeners| {
            listeners
                .iter()
                .filter_map(|l| l.get("name")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if table.contains_key("admin") {
        names.push("admin".to_string());
    }
    names
}

/// `listener.name -> listener.addr` from every `listening` line seen so far.
fn listening_addrs(lines: &[String]) -> HashMap<String, SocketAddr> {
    let mut addrs = HashMap::new();
    for line in lines.iter().filter(|l| l.contains("listening")) {
        let name = field(line, "listener.name");
        let addr = field(line, "listener.addr").and_then(|a| a.parse().ok());
        if let (Some(name), Some(addr)) = (name, addr) {
            addrs.insert(name, addr);
        }
    }
    addrs
}

/// The value of `key=value` in a tracing fmt line, tolerating quotes and span braces; or of
/// `"key": value` in a JSON line (`[log] format = "json"`).
pub fn field(line: &str, key: &str) -> Option<String> {
    if line.starts_with('{') {
        let object: serde_json::Value = serde_json::from_str(line).ok()?;
        return match object.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
    }
    let needle = format!("{key}=");
    let start = line
        .match_indices(&needle)
        .map(|(i, _)| i)
        .find(|&i| i == 0 || !is_key_char(line.as_bytes()[i - 1]))?
        + needle.len();
    let value: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '}' | ',' | ';'))
        .collect();
    Some(value.trim_matches('"').to_string())
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}
