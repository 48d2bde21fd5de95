//! `tether-bench run`: loads the scenarios, runs each cell of their matrices in a lab of its own
//! (see `lab`), shares one redis-server among the cells that need one (`shared` demo cells,
//! apps using `{redis_url}`), gives each cell of a discovering pool its own name server, and
//! writes the reports.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::dns_server::DnsServer;
use crate::lab::{Lab, Launcher, Stop};
use crate::record;
use crate::redis_server::RedisServer;
use crate::render;
use crate::report::{CellReport, RateLimit, ScenarioReport};
use crate::scenario::{self, Scenario};
use crate::sessions::SessionStore;

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
    /// Runs of each cell, each with its own seed (at least 1).
    pub repeat: u32,
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
        let needs_redis = scenarios.iter().any(Scenario::needs_redis);
        let redis = if needs_redis {
            RedisServer::start(&opts.out.join("logs")).await
        } else {
            Err("no scenario uses redis".into())
        };
        if let (true, Err(why)) = (needs_redis, &redis) {
            eprintln!("note: cells that need redis will be skipped: {why}");
        }
        let mut reports = Vec::new();
        let mut failed = None;
        let suite = scenarios.len() > 1;
        for sc in &scenarios {
            let dir = report_dir(opts, sc, suite);
            match run_scenario(sc, opts, &dir, redis.as_ref().ok()).await {
                Ok(r) => reports.push(r),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Ok(mut r) = redis {
            r.proc.stop(Duration::from_secs(2)).await;
        }
        match failed {
            Some(e) => Err(e),
            None => Ok::<_, anyhow::Error>(reports),
        }
    };
    // On Ctrl-C the work future is dropped, and with it every child process (kill on drop).
    let reports = rt.block_on(async {
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; child processes stopped")),
        }
    })?;
    let suite = reports.len() > 1;
    for (r, sc) in reports.iter().zip(&scenarios) {
        let dir = report_dir(opts, sc, suite);
        render::write(r, &dir)?;
        println!("{}", render::table(r));
        println!("report: {}", dir.join("index.html").display());
    }
    if suite {
        render::write_suite_index(&reports, &opts.out)?;
    }
    if let Some(j) = &opts.junit {
        std::fs::write(j, render::junit(&reports))
            .with_context(|| format!("cannot write {}", j.display()))?;
    }
    Ok(reports.iter().all(|r| r.passed))
}

/// Where a scenario's report goes: the output directory, or a directory of its own in a suite.
fn report_dir(opts: &RunOpts, sc: &Scenario, suite: bool) -> PathBuf {
    if suite {
        opts.out.join(&sc.name)
    } else {
        opts.out.clone()
    }
}

async fn run_scenario(
    sc: &Scenario,
    opts: &RunOpts,
    report_dir: &Path,
    redis: Option<&RedisServer>,
) -> anyhow::Result<ScenarioReport> {
    let mut cells = Vec::new();
    let plan: Vec<(String, String, u32)> = sc
        .matrix
        .affinity
        .iter()
        .flat_map(|a| sc.axis().into_iter().map(move |s| (a.clone(), s)))
        .filter(|(a, s)| opts.only.is_empty() || opts.only.iter().any(|o| *o == format!("{a}/{s}")))
        .flat_map(|(a, s)| (0..opts.repeat.max(1)).map(move |k| (a.clone(), s.clone(), k)))
        .collect();
    eprintln!(
        "== {}{}: {} cell(s), {:?} each, {} users",
        sc.name,
        if opts.quick { " (quick)" } else { "" },
        plan.len(),
        sc.duration.0,
        sc.load.users
    );
    for (i, (affinity, axis, k)) in plan.iter().enumerate() {
        let mut cell = CellReport::new(affinity, axis, &sc.topology.balance);
        cell.repeat = *k;
        let label = format!("[{}/{}] {} {}", i + 1, plan.len(), sc.name, cell.name());
        let dir = opts.out.join("logs").join(&sc.name).join(cell.slug());
        std::fs::create_dir_all(&dir)?;
        let launcher = launcher(sc, axis)?;
        if let Launcher::Demo { variant, .. } = &launcher {
            cell.cart_write = sc
                .flow
                .iter()
                .any(|f| f.write && f.concurrent > 1)
                .then(|| {
                    match variant.sessions {
                        SessionStore::Local => "in-process",
                        SessionStore::Shared => variant.cart_write.name(),
                        _ => "token",
                    }
                    .to_string()
                });
            cell.rate_limit = (variant.rate_limit > 0).then(|| RateLimit {
                per_s: variant.rate_limit,
                store: variant.rate_store.name().into(),
            });
        }
        let needs_redis = !sc.targets_redis()
            && match &launcher {
                Launcher::Demo { variant, .. } => variant.uses_redis(),
                Launcher::App { spec, variant } => spec.variant_uses_redis(variant),
            };
        let redis_url = match (needs_redis, redis) {
            (true, None) => {
                cell.skip("redis-server is not installed (apt-get install -y redis-server)");
                eprintln!(
                    "{label}: SKIPPED: {}",
                    cell.skip_reason.as_deref().unwrap_or("")
                );
                cells.push(cell);
                continue;
            }
            (true, Some(r)) => {
                r.client.flushall().await.context("redis FLUSHALL")?;
                Some(r.url.clone())
            }
            (false, _) => None,
        };
        let (own, dns) = match cell_servers(sc, &dir).await {
            Ok(servers) => servers,
            Err(why) => {
                eprintln!("{label}: SKIPPED: {why}");
                cell.skip(&why);
                cells.push(cell);
                continue;
            }
        };
        let redis_url = own.as_ref().map(|r| r.url.clone()).or(redis_url);
        let mut lab = Lab::new(sc, affinity, launcher, dir, &opts.tether, redis_url);
        if let Some(r) = own {
            lab.own_redis(r);
        }
        if let Some(d) = dns {
            lab.discover(d)?;
        }
        let outcome = lab.run(&label, &mut cell, u64::from(*k)).await;
        // Every process of the cell is stopped before anything else happens, bad input included.
        lab.shutdown().await;
        match outcome {
            Ok(result) => {
                let path = report_dir
                    .join("cells")
                    .join(cell.slug())
                    .join(record::FILE);
                record::write(&path, &result)?;
            }
            Err(Stop::Skip(why)) => {
                eprintln!("{label}: SKIPPED: {why}");
                cell.skip(&why);
            }
            Err(Stop::Broken(why)) => {
                eprintln!("{label}: FAILED: {why}");
                cell.broken(&why);
            }
            Err(Stop::Input(why)) => anyhow::bail!("scenario {:?}: {why}", sc.name),
        }
        cells.push(cell);
    }
    Ok(ScenarioReport::new(sc, opts.quick, cells))
}

/// How the backends of cell `axis` start: the demo shop with that store, or the app with that
/// variant.
fn launcher(sc: &Scenario, axis: &str) -> anyhow::Result<Launcher> {
    Ok(match &sc.app {
        Some(spec) => Launcher::App {
            spec: spec.clone(),
            variant: spec
                .variants()
                .into_iter()
                .find(|v| v.name == axis)
                .context("unknown variant")?,
        },
        None => {
            let variant = sc
                .shop_variants()
                .into_iter()
                .find(|v| v.name == axis)
                .context("unknown shop variant")?;
            Launcher::Demo {
                bench: bench_exe()?,
                token_ttl_ms: sc
                    .token_ttl(variant.sessions.name())
                    .map_or(0, |d| d.as_millis() as u64),
                variant,
            }
        }
    })
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

/// The servers a cell runs of its own: a redis-server when its events kill or freeze redis
/// (so that the next cell starts with a store that is up), a name server when its pool
/// discovers its backends. `Err` says why the cell cannot run.
async fn cell_servers(
    sc: &Scenario,
    dir: &Path,
) -> Result<(Option<RedisServer>, Option<DnsServer>), String> {
    let redis = match sc.targets_redis() {
        true => Some(RedisServer::start(dir).await?),
        false => None,
    };
    let dns = match sc.topology.discover {
        true => Some(DnsServer::start(dir).await?),
        false => None,
    };
    Ok((redis, dns))
}
