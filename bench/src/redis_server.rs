//! The redis-server the lab starts on a free port for `shared` cells.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::procs::Proc;
use crate::resp::Redis;
use crate::util::free_port;

/// A redis-server the lab started on a free port.
pub struct RedisServer {
    /// Its process, stopped when the run ends.
    pub proc: Proc,
    /// `redis://127.0.0.1:PORT`, for the backends.
    pub url: String,
    /// The lab's own connection, to empty the store between cells.
    pub client: Redis,
}

impl RedisServer {
    /// Starts redis-server without persistence, logging into `logs`; the error says why it
    /// could not (not installed, did not answer), for the note that skips shared cells.
    pub async fn start(logs: &Path) -> Result<RedisServer, String> {
        let port = free_port().map_err(|e| e.to_string())?;
        Self::start_at(logs, port, "redis.log").await
    }

    /// Starts a new, empty redis-server on the same port (after a SIGKILL: nothing persists),
    /// logging into `logs/log`. The backends' connections find it at the old address.
    pub async fn restart(&mut self, logs: &Path, log: &str) -> Result<(), String> {
        if self.proc.running() {
            return Err("redis is still running".into());
        }
        let port = self.client.port();
        *self = Self::start_at(logs, port, log).await?;
        Ok(())
    }

    async fn start_at(logs: &Path, port: u16, log: &str) -> Result<RedisServer, String> {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("redis-server").is_file()))
            .unwrap_or(false);
        if !found {
            return Err(
                "redis-server is not installed (Debian/Ubuntu: apt-get install -y redis-server)"
                    .into(),
            );
        }
        std::fs::create_dir_all(logs).map_err(|e| e.to_string())?;
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let proc = Proc::spawn("redis", Path::new("redis-server"), &args, &logs.join(log))
            .map_err(|e| format!("{e:#}"))?;
        let url = format!("redis://127.0.0.1:{port}");
        let client = Redis::new(&url).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !client.ping().await {
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server did not answer PING:\n{}",
                    proc.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(RedisServer { proc, url, client })
    }
}
