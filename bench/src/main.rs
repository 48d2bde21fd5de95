//! `tether-bench`: the affinity lab. `backend` serves the demo shop; `run` runs a scenario
//! (real backends, redis-server and tether processes, a load generator, a report); `verify`
//! checks the user's own service for hidden local state.

#![forbid(unsafe_code)]

mod backend;
mod cart_write;
mod dns_server;
mod faults;
mod http;
mod lab;
mod limiter;
mod limits;
mod load;
mod metrics;
mod phases;
mod procs;
mod rate;
mod rate_theory;
mod recompute;
mod record;
mod redis_server;
mod render;
mod reply;
mod report;
mod resp;
mod revoke;
mod runner;
mod scale_in;
mod scenario;
mod sessions;
mod stats;
mod theory;
mod token;
mod util;
mod verify;
mod writes;
mod ws_echo;
mod ws_figures;
mod ws_theory;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tether-bench", version, about = "The tether affinity lab")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the demo shop (login, cart) with a chosen session store.
    Backend(backend::BackendArgs),
    /// Offer a fixed request rate to one address and report latency from the intended send
    /// time (the peer benchmark's latency measurement; see bench/peers).
    Rate(rate::RateArgs),
    /// Run a scenario file: every cell of its matrix, its timeline, its expectations.
    Run {
        /// Scenario file (bench/scenarios/*.toml).
        scenario: PathBuf,
        /// Shrink the scenario with its [quick] table (CI: under two minutes).
        #[arg(long)]
        quick: bool,
        /// Report directory.
        #[arg(long, default_value = "lab-report")]
        out: PathBuf,
        /// Also write JUnit XML here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// The tether binary (default: $TETHER_BIN, else `tether` next to this executable).
        #[arg(long, value_name = "PATH")]
        tether: Option<PathBuf>,
        /// Run only these cells, as affinity/sessions (repeatable, or comma-separated).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Run each cell N times, each with its own seed; the table adds medians and ranges.
        #[arg(long, default_value_t = 1, value_name = "N")]
        repeat: u32,
    },
    /// Re-derive a run's table from its raw record (cells/*/requests.jsonl) and say whether
    /// it agrees with the run's report.json. Exit 0: it agrees; 1: it differs; 2: unreadable.
    Recompute {
        /// The run's report directory (its --out).
        out: PathBuf,
    },
    /// Check that your own service keeps no hidden local state: three instances behind tether,
    /// anti-affinity, a SIGKILL and a restart. Exit 0: none found; 1: found (the first failure
    /// is named); 2: bad input.
    Verify {
        #[command(flatten)]
        args: verify::VerifyArgs,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Backend(args) => match backend::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tether-bench backend: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Rate(args) => match rate::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tether-bench rate: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            scenario,
            quick,
            out,
            junit,
            tether,
            only,
            repeat,
        } => {
            let opts = runner::RunOpts {
                quick,
                out,
                junit,
                tether: tether_or_default(tether),
                only,
                repeat,
            };
            match runner::run(&scenario, &opts) {
                Ok(true) => ExitCode::SUCCESS,
                // Expectations failed: the table above says which.
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("tether-bench run: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Recompute { out } => match recompute::run(&out) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("tether-bench recompute: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Verify { args } => {
            match verify::run(&args, &tether_or_default(args.tether.clone())) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("tether-bench verify: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// The tether binary given, else `$TETHER_BIN`, else the default.
fn tether_or_default(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os("TETHER_BIN").map(PathBuf::from))
        .unwrap_or_else(default_tether)
}

/// `tether` in the same target directory as this executable (target/debug or target/release).
fn default_tether() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("tether")))
        .unwrap_or_else(|| Path::new("tether").to_path_buf())
}
