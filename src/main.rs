//! The `tether` command: `run` serves a config, `check` validates one.
//!
//! Signals: SIGTERM and SIGINT stop accepting and let in-flight requests finish for up to
//! `runtime.shutdown_timeout`, then exit 0. SIGHUP re-reads the config file and applies it
//! (as `POST /reload` does); a file that does not validate is refused and the running config
//! keeps serving.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tether::config::{self, Config, LogFormat};
use tether::control::Control;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "tether", version, about = "L7 load balancer and reverse proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a config file.
    Run {
        /// Path to the TOML config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a config file and print every problem with its key path.
    Check {
        /// Path to the TOML config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => {
            // The file says how to log, so it is read first; a bad one is reported in text.
            let loaded = config::load(&config);
            init_tracing(loaded.as_ref().map_or(LogFormat::Text, |c| c.log.format));
            match run(&config, loaded) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("warning: {w}");
            }
            let backends: usize = c
                .pools
                .values()
                .map(|p| p.backends.len() + p.named.len())
                .sum();
            // Names are not looked up here: `check` needs no network.
            let discover = c.pools.values().filter(|p| p.discover.is_some()).count();
            let discover = match discover {
                0 => String::new(),
                n => format!(", {n} pool(s) discovering backends by DNS"),
            };
            println!(
                "{}: ok ({} listener(s), {} pool(s), {} backend(s){discover})",
                path.display(),
                c.listeners.len(),
                c.pools.len(),
                backends
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("{}: {} problem(s)", path.display(), errors.0.len());
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
        // One object per line with the event's fields at the top level (`"request.id": ...`),
        // as log shippers expect; the connection span's fields come along under "span".
        LogFormat::Json => fmt.json().flatten_event(true).with_span_list(false).init(),
    }
}

fn run(path: &Path, loaded: Result<Config, config::ConfigErrors>) -> anyhow::Result<()> {
    let config = loaded.map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
    tracing::info!(version = %env!("CARGO_PKG_VERSION"), config = %path.display(), "tether starting");
    // The same warnings `check` prints (e.g. a derived cookie key anyone with the file can forge).
    for warning in &config.warnings {
        tracing::warn!(config = %path.display(), "{warning}");
    }
    // The control plane runs on this thread's runtime; with `threads = 1` it serves the
    // connections too, otherwise `Control::start` starts one current-thread runtime per worker
    // thread (see `tether::workers`): no work-stealing scheduler's cross-thread bookkeeping on
    // any wake-up (measured in bench/RESULTS.md).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(path, config))
}

async fn serve(path: &Path, config: Config) -> anyhow::Result<()> {
    let shutdown_timeout = config.runtime.shutdown_timeout;
    let admin = match &config.admin {
        Some(a) => Some((
            TcpListener::bind(a.listen)
                .await
                .with_context(|| format!("admin: cannot bind {}", a.listen))?,
            a.token.clone(),
        )),
        None => None,
    };
    let control = Control::start(config, Some(path.to_path_buf())).await?;
    let (admin_stop, admin_stop_rx) = watch::channel(false);
    if let Some((tcp, token)) = admin {
        tracing::info!(listener.name = %"admin", listener.addr = %tcp.local_addr()?, "listening");
        tokio::spawn(tether::admin::serve(
            tcp,
            Arc::clone(&control),
            token,
            admin_stop_rx,
        ));
    }

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!(signal = "SIGTERM", "shutting down"); break; }
            _ = int.recv() => { tracing::info!(signal = "SIGINT", "shutting down"); break; }
            _ = hup.recv() => {
                if let Err(e) = control.reload().await {
                    // One problem per line in the file's order; one log line, so it stays one event.
                    let problems = e.to_string().replace('\n', " | ");
                    tracing::error!(config = %path.display(), %problems, "reload refused; the running config keeps serving");
                }
            }
        }
    }

    control.shutdown().await;
    let _ = admin_stop.send(true);
    let deadline = tokio::time::Instant::now() + shutdown_timeout;
    tracing::info!(connections = control.open_connections(), deadline = ?shutdown_timeout, "waiting for in-flight requests");
    while control.open_connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match control.open_connections() {
        0 => tracing::info!("all connections closed; exiting"),
        n => {
            tracing::warn!(connections = n, deadline = ?shutdown_timeout, "shutdown deadline passed with requests still in flight; exiting")
        }
    }
    Ok(())
}
