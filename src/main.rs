//! The `tether` command: `run` serves a config, `check` validates one.
//!
//! Signals: SIGTERM and SIGINT stop accepting and let in-flight requests finish for up to
//! `runtime.shutdown_timeout`, then exit 0. SIGHUP re-reads the config file and swaps the
//! pools in; a file that does not validate is refused and the running config keeps serving.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};
use hyper_util::server::graceful::GracefulShutdown;
use tether::config::{self, Config};
use tether::pool::Routes;
use tether::proxy::Shared;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

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
            init_tracing();
            match run(&config) {
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
            let backends: usize = c.pools.values().map(|p| p.backends.len()).sum();
            println!(
                "{}: ok ({} listener(s), {} pool(s), {} backend(s))",
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(path: &Path) -> anyhow::Result<()> {
    let config = config::load(path).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if config.runtime.threads > 0 {
        rt.worker_threads(config.runtime.threads);
    }
    rt.enable_all().build()?.block_on(serve(path, config))
}

async fn serve(path: &Path, config: Config) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        routes: ArcSwap::from_pointee(Routes::build(&config, None)),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let graceful = Arc::new(GracefulShutdown::new());
    let mut tasks = Vec::new();

    // Bind everything before serving anything: a port in use fails the start, not half of it.
    let mut bound = Vec::new();
    for l in &config.listeners {
        let tcp = TcpListener::bind(l.listen)
            .await
            .with_context(|| format!("listener {:?}: cannot bind {}", l.name, l.listen))?;
        bound.push((tcp, l.clone()));
    }
    let admin = match &config.admin {
        Some(a) => Some(
            TcpListener::bind(a.listen)
                .await
                .with_context(|| format!("admin: cannot bind {}", a.listen))?,
        ),
        None => None,
    };

    for (tcp, l) in bound {
        tracing::info!(listener.name = %l.name, listener.addr = %tcp.local_addr()?, pool = %l.pool, "listening");
        tasks.push(tokio::spawn(tether::server::serve(
            tcp,
            l,
            Arc::clone(&shared),
            Arc::clone(&graceful),
            stop_rx.clone(),
        )));
    }
    if let Some(tcp) = admin {
        tracing::info!(listener.name = %"admin", listener.addr = %tcp.local_addr()?, "listening");
        tokio::spawn(tether::admin::serve(
            tcp,
            Arc::clone(&shared),
            stop_rx.clone(),
        ));
    }

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut running = config;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!(signal = "SIGTERM", "shutting down"); break; }
            _ = int.recv() => { tracing::info!(signal = "SIGINT", "shutting down"); break; }
            _ = hup.recv() => reload(path, &mut running, &shared),
        }
    }

    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    // Every listener task has ended, so this is the last reference.
    let graceful =
        Arc::try_unwrap(graceful).map_err(|_| anyhow::anyhow!("listener still running"))?;
    let open = graceful.count();
    let deadline = running.runtime.shutdown_timeout;
    tracing::info!(connections = open, deadline = ?deadline, "waiting for in-flight requests");
    match tokio::time::timeout(deadline, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections closed; exiting"),
        Err(_) => {
            tracing::warn!(deadline = ?deadline, "shutdown deadline passed with requests still in flight; exiting")
        }
    }
    Ok(())
}

/// SIGHUP: validate the file, then swap the pools in; on any problem keep the running config.
fn reload(path: &Path, running: &mut Config, shared: &Shared) {
    match config::load(path) {
        Ok(new)
            if running
                .listeners
                .iter()
                .any(|l| !new.pools.contains_key(&l.pool)) =>
        {
            tracing::error!(config = %path.display(), "reload refused: a running listener's pool is missing from the new file; the running config keeps serving");
        }
        Ok(new) => {
            if new.listeners != running.listeners || new.admin != running.admin {
                tracing::warn!("listener and admin changes need a restart in this version; applying pool changes only");
            }
            let routes = Routes::build(&new, Some(&shared.routes.load()));
            shared.routes.store(Arc::new(routes));
            tracing::info!(config = %path.display(), "reloaded");
            *running = new;
        }
        Err(errors) => {
            tracing::error!(config = %path.display(), problems = %errors.0.join("; "), "reload refused; the running config keeps serving");
        }
    }
}
