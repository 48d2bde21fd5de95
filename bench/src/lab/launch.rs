//! How one backend process of a cell is started: the demo shop (`tether-bench backend`) with a
//! session store, or the user's own command with its placeholders filled in, then polled on
//! its `ready` path until it answers 2xx.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use hyper::Method;
use tokio::time::Instant;

use crate::procs::Proc;
use crate::scenario::{fill, AppSpec, ShopVariant, Variant};
use crate::util::free_port;

/// What a cell's backends are.
#[derive(Clone, Debug)]
pub enum Launcher {
    /// The demo shop: this executable's `backend` subcommand.
    Demo {
        /// This executable.
        bench: PathBuf,
        /// Its session store and options.
        variant: ShopVariant,
        /// `--token-ttl-ms` (0: tokens never expire).
        token_ttl_ms: u64,
    },
    /// The user's service, in one of its variants.
    App {
        /// Command, readiness path, environment.
        spec: AppSpec,
        /// Extra arguments of this cell.
        variant: Variant,
    },
}

/// One start of backend `id`: where, and with what around it.
pub struct StartAt<'a> {
    /// The backend id ("app-2").
    pub id: &'a str,
    /// Its 1-based position among the cell's backends.
    pub index: usize,
    /// Its address from an earlier start (a restart keeps it).
    pub addr: Option<SocketAddr>,
    /// Its log file.
    pub log: &'a Path,
    /// The cell's directory (per-backend data dirs go under it).
    pub dir: &'a Path,
    /// The lab's redis-server, if one runs.
    pub redis_url: Option<&'a str>,
}

impl Launcher {
    /// Whether the backends are the user's app.
    pub fn is_app(&self) -> bool {
        matches!(self, Launcher::App { .. })
    }

    /// Starts the process and waits until it serves; returns it with its address.
    pub async fn start(&self, at: StartAt<'_>) -> anyhow::Result<(Proc, SocketAddr)> {
        match self {
            Launcher::Demo {
                bench,
                variant,
                token_ttl_ms,
            } => {
                let listen = at.addr.map_or("127.0.0.1:0".into(), |a| a.to_string());
                let mut args = vec![
                    "backend".to_string(),
                    "--id".into(),
                    at.id.to_string(),
                    "--listen".into(),
                    listen,
                    "--sessions".into(),
                    variant.sessions.name().into(),
                    "--token-ttl-ms".into(),
                    token_ttl_ms.to_string(),
                ];
                args.extend(variant.args());
                if let Some(url) = at.redis_url {
                    args.extend(["--redis".to_string(), url.to_string()]);
                }
                let mut proc = Proc::spawn(at.id, bench, &args, at.log)?;
                let addr = proc.wait_listening(&["backend"]).await?["backend"];
                Ok((proc, addr))
            }
            Launcher::App { spec, variant } => start_app(spec, variant, at).await,
        }
    }
}

async fn start_app(
    spec: &AppSpec,
    variant: &Variant,
    at: StartAt<'_>,
) -> anyhow::Result<(Proc, SocketAddr)> {
    let port = match at.addr {
        Some(a) => a.port(),
        None => free_port().context("no free port")?,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let data_dir = at.dir.join("data").join(at.id);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let (port_s, index_s) = (port.to_string(), at.index.to_string());
    let data_s = data_dir.display().to_string();
    let values = [
        ("port", port_s.as_str()),
        ("id", at.id),
        ("index", index_s.as_str()),
        ("redis_url", at.redis_url.unwrap_or("")),
        ("data_dir", data_s.as_str()),
    ];
    let mut words = spec
        .command
        .iter()
        .chain(&variant.args)
        .map(|w| fill(w, &values));
    let program = words.next().context("app.command: empty")?;
    let args: Vec<String> = words.collect();
    let env: Vec<(String, String)> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), fill(v, &values)))
        .collect();
    let mut proc = Proc::spawn_in(
        at.id,
        Path::new(&program),
        &args,
        at.log,
        spec.dir.as_deref(),
        &env,
    )
    .with_context(|| {
        let dir = spec.dir.as_deref().unwrap_or(Path::new("."));
        format!("app.command: {program:?} {args:?} in {}", dir.display())
    })?;
    if let Err(e) = wait_ready(&mut proc, addr, &spec.ready, spec.ready_timeout.0).await {
        // Never leave a half-started process behind: it is ours, stop it by its PID now.
        let _ = proc.kill().await;
        return Err(e);
    }
    Ok((proc, addr))
}

/// Polls `GET ready` until it answers 2xx; fails when the process exits or time runs out.
async fn wait_ready(
    proc: &mut Proc,
    addr: SocketAddr,
    ready: &str,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let mut last = String::from("no attempt yet");
    // Bounded by the deadline; each attempt is itself bounded by one second.
    while Instant::now() < deadline {
        if let Some(status) = proc.exit_status() {
            anyhow::bail!(
                "app.command: {} (pid {}) exited ({status}) before GET {ready} answered:\n{}",
                proc.name,
                proc.pid,
                proc.log_tail()
            );
        }
        match crate::http::call(addr, Method::GET, ready, None, Duration::from_secs(1)).await {
            Ok((status, _)) if (200..300).contains(&status) => return Ok(()),
            Ok((status, body)) => last = format!("HTTP {status} {body:.80}"),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "app.ready: GET http://{addr}{ready} did not answer 2xx within {within:?} (last: {last}); is {} (pid {}) listening on {{port}}?\n{}",
        proc.name,
        proc.pid,
        proc.log_tail()
    )
}
