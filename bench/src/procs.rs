//! Child processes the lab runs (backends, tether, redis-server): spawned with their stderr
//! captured to a log file, addresses read from their `listening` lines, signalled by PID, and
//! killed when dropped so a failed run never leaves one behind.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::util::parse_listening;

/// How long a process may take to log that it listens.
pub const START_DEADLINE: Duration = Duration::from_secs(10);

/// A running child process.
pub struct Proc {
    /// Name in logs and events ("app-2", "tether-1", "redis").
    pub name: String,
    /// Its PID (kept after exit for messages).
    pub pid: u32,
    child: Child,
    log: PathBuf,
    listening: mpsc::UnboundedReceiver<(String, SocketAddr)>,
}

impl Proc {
    /// Starts `program args`, stderr (and stdout) to `log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> anyhow::Result<Proc> {
        Proc::spawn_in(name, program, args, log, None, &[])
    }

    /// `spawn` in working directory `dir` (if given) with extra environment `env`.
    pub fn spawn_in(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        dir: Option<&Path>,
        env: &[(String, String)],
    ) -> anyhow::Result<Proc> {
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create log {}", log.display()))?;
        let mut cmd = Command::new(program);
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let mut child = cmd
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let pid = child.id().unwrap_or(0);
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut file = file;
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = writeln!(file, "{line}");
                if let Some(found) = parse_listening(&line) {
                    let _ = tx.send(found);
                }
            }
        });
        Ok(Proc {
            name: name.to_string(),
            pid,
            child,
            log: log.to_path_buf(),
            listening: rx,
        })
    }

    /// Waits until the process has logged a listening line for each of `names`.
    pub async fn wait_listening(
        &mut self,
        names: &[&str],
    ) -> anyhow::Result<HashMap<String, SocketAddr>> {
        let mut found = HashMap::new();
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        while names.iter().any(|n| !found.contains_key(*n)) {
            match tokio::time::timeout_at(deadline, self.listening.recv()).await {
                Ok(Some((name, addr))) => {
                    found.insert(name, addr);
                }
                Ok(None) => anyhow::bail!(
                    "{} (pid {}) exited before listening:\n{}",
                    self.name,
                    self.pid,
                    self.log_tail()
                ),
                Err(_) => anyhow::bail!(
                    "{} (pid {}) did not log `listening` for {names:?} within {START_DEADLINE:?}:\n{}",
                    self.name,
                    self.pid,
                    self.log_tail()
                ),
            }
        }
        Ok(found)
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`) with the system `kill` command.
    pub async fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let out = Command::new("kill")
            .args(["-s", sig, &self.pid.to_string()])
            .output()
            .await
            .context("cannot run kill")?;
        anyhow::ensure!(
            out.status.success(),
            "kill -s {sig} {}: {}",
            self.pid,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    /// SIGKILL, then reap.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.start_kill().context("SIGKILL")?;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        Ok(())
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns how it ended.
    pub async fn stop(&mut self, grace: Duration) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had already exited ({status})");
        }
        // A frozen process cannot act on SIGTERM; thaw it first.
        let _ = self.signal("CONT").await;
        if self.signal("TERM").await.is_ok() {
            if let Ok(Ok(status)) = tokio::time::timeout(grace, self.child.wait()).await {
                return format!("exited on SIGTERM ({status})");
            }
        }
        let _ = self.kill().await;
        format!("killed after {grace:?}")
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How the process ended, once it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n");
        format!("{tail}\n(full log: {})", self.log.display())
    }
}
