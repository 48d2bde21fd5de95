//! `tether-bench run`: for each cell of a scenario's matrix, starts real backends and tether
//! processes, drives the load, applies the timeline of events, and checks the expectations.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::Instant;

use crate::backend::SessionStore;
use crate::lab::{Lab, Stop};
use crate::load::Progress;
use crate::pages;
use crate::procs::Proc;
use crate::report::{self, CellReport, Check, ScenarioReport};
use crate::resp::Redis;
use crate::scenario::{self, Scenario};
use crate::util::free_port;

/// Options of `tether-bench run`.
#[derive(Clone, Debug)]
pub struct RunOpts {
    /// Shrink each scenario with its `[quick]` table.
    pub quick: bool,
    /// Report directory.
    pub out: PathBuf,
    /// Also write a JUnit XML file here.
    pub junit: Option<PathBuf>,
    /// The tether binary.
    pub tether: PathBuf,
    /// Only cells whose "affinity/sessions" is listed (empty: all).
    pub only: Vec<String>,
}

/// Runs every scenario in `path`; returns whether every expectation held.
pub fn run(path: &Path, opts: &RunOpts) -> anyhow::Result<bool> {
    let mut scenarios = scenario::load(path)?;
    if opts.quick {
        scenarios = scenarios.into_iter().map(Scenario::quick).collect();
    }
    anyhow::ensure!(
        opts.tether.is_file(),
        "tether binary not found at {}: run `cargo build --workspace` first (or pass --tether PATH / set TETHER_BIN)",
        opts.tether.display()
    );
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let work = async {
        let needs_redis = scenarios
            .iter()
            .any(|s| s.matrix.sessions.contains(&SessionStore::Shared));
        let redis = if needs_redis {
            RedisServer::start(&opts.out.join("logs")).await
        } else {
            Err("no scenario uses shared sessions".into())
        };
        if let (true, Err(why)) = (needs_redis, &redis) {
            eprintln!("note: shared-session cells will be skipped: {why}");
        }
        let mut reports = Vec::new();
        for sc in &scenarios {
            reports.push(run_scenario(sc, opts, redis.as_ref().ok()).await?);
        }
        if let Ok(mut r) = redis {
            r.proc.stop(Duration::from_secs(2)).await;
        }
        Ok::<_, anyhow::Error>(reports)
    };
    // On Ctrl-C the work future is dropped, and with it every child process (kill on drop).
    let reports = rt.block_on(async {
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; child processes stopped")),
        }
    })?;
    let suite = reports.len() > 1;
    for r in &reports {
        let dir = if suite {
            opts.out.join(&r.scenario)
        } else {
            opts.out.clone()
        };
        report::write(r, &dir)?;
        println!("{}", report::table(r));
        println!("report: {}", dir.join("index.html").display());
    }
    if suite {
        pages::write_suite_index(&reports, &opts.out)?;
    }
    if let Some(j) = &opts.junit {
        std::fs::write(j, pages::junit(&reports))
            .with_context(|| format!("cannot write {}", j.display()))?;
    }
    Ok(reports.iter().all(|r| r.passed))
}

/// A redis-server the lab started on a free port.
struct RedisServer {
    proc: Proc,
    url: String,
    client: Redis,
}

impl RedisServer {
    async fn start(logs: &Path) -> Result<RedisServer, String> {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("redis-server").is_file()))
            .unwrap_or(false);
        if !found {
            return Err(
                "redis-server is not installed (Debian/Ubuntu: apt-get install -y redis-server)"
                    .into(),
            );
        }
        let port = free_port().map_err(|e| e.to_string())?;
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
        let proc = Proc::spawn(
            "redis",
            Path::new("redis-server"),
            &args,
            &logs.join("redis.log"),
        )
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

async fn run_scenario(
    sc: &Scenario,
    opts: &RunOpts,
    redis: Option<&RedisServer>,
) -> anyhow::Result<ScenarioReport> {
    let mut cells = Vec::new();
    let plan: Vec<(String, SessionStore)> = sc
        .matrix
        .affinity
        .iter()
        .flat_map(|a| sc.matrix.sessions.iter().map(move |s| (a.clone(), *s)))
        .filter(|(a, s)| {
            opts.only.is_empty() || opts.only.iter().any(|o| *o == format!("{a}/{}", s.name()))
        })
        .collect();
    eprintln!(
        "== {}{}: {} cell(s), {:?} each, {} users",
        sc.name,
        if opts.quick { " (quick)" } else { "" },
        plan.len(),
        sc.duration.0,
        sc.load.users
    );
    for (i, (affinity, sessions)) in plan.iter().enumerate() {
        let label = format!(
            "[{}/{}] {} {affinity}/{}",
            i + 1,
            plan.len(),
            sc.name,
            sessions.name()
        );
        let dir = opts
            .out
            .join("logs")
            .join(&sc.name)
            .join(format!("{affinity}-{}", sessions.name()));
        std::fs::create_dir_all(&dir)?;
        let mut cell = CellReport::new(affinity, *sessions, &sc.topology.balance);
        let redis_url = match (sessions, redis) {
            (SessionStore::Shared, None) => {
                cell.skip("redis-server is not installed (apt-get install -y redis-server)");
                eprintln!(
                    "{label}: SKIPPED: {}",
                    cell.skip_reason.as_deref().unwrap_or("")
                );
                cells.push(cell);
                continue;
            }
            (SessionStore::Shared, Some(r)) => {
                r.client.flushall().await.context("redis FLUSHALL")?;
                Some(r.url.clone())
            }
            _ => None,
        };
        let mut lab = Lab::new(sc, affinity, *sessions, dir, bench_exe()?, &opts.tether);
        lab.redis_url = redis_url;
        match lab.run(&label, &mut cell).await {
            Ok(()) => {}
            Err(Stop::Skip(why)) => {
                eprintln!("{label}: SKIPPED: {why}");
                cell.skip(&why);
            }
            Err(Stop::Broken(why)) => {
                eprintln!("{label}: FAILED: {why}");
                cell.broken(&why);
            }
        }
        lab.shutdown().await;
        cells.push(cell);
    }
    Ok(ScenarioReport::new(sc, opts.quick, cells))
}

/// Checks the scenario's expectations against a cell that ran.
pub fn check(sc: &Scenario, cell: &mut CellReport) {
    let failed_events = cell.events.iter().filter(|e| !e.ok).count();
    cell.checks.push(Check {
        expect: "events_failed_max".into(),
        limit: 0.0,
        value: Some(failed_events as f64),
        pass: failed_events == 0,
        claim: "every timeline event was carried out".into(),
    });
    for x in sc
        .expects
        .iter()
        .filter(|x| x.matches(&cell.affinity, cell.sessions))
    {
        for (key, &limit) in &x.limits {
            let (metric, is_min) = match key.strip_suffix("_min") {
                Some(m) => (m, true),
                None => (key.strip_suffix("_max").unwrap_or(key), false),
            };
            let value = cell.stats.metric(metric);
            let pass = match value {
                Some(v) if is_min => v >= limit,
                Some(v) => v <= limit,
                // Only "never reached" has no value: slower than any minimum, over any maximum.
                None => is_min,
            };
            cell.checks.push(Check {
                expect: key.clone(),
                limit,
                value,
                pass,
                claim: x.claim.clone(),
            });
        }
    }
}

pub async fn progress_line(label: String, start: Instant, duration: Duration, p: Arc<Progress>) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let t = start.elapsed().as_secs_f64().min(duration.as_secs_f64());
        let line = format!(
            "{label}: {t:.1}/{:.1}s  requests {}  errors {}  sessions lost {}",
            duration.as_secs_f64(),
            p.requests.load(Ordering::Relaxed),
            p.errors.load(Ordering::Relaxed),
            p.lost.load(Ordering::Relaxed)
        );
        let mut err = std::io::stderr();
        if tty {
            let _ = write!(err, "\r{line}\x1b[K");
        } else {
            let _ = writeln!(err, "{line}");
        }
    }
}

/// This executable, to start backends with. After a rebuild during a run Linux reports the
/// old file as "PATH (deleted)"; the new binary at PATH serves as well.
fn bench_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if !exe.exists() {
        if let Some(s) = exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
            return Ok(PathBuf::from(s));
        }
    }
    Ok(exe)
}
