//! One cell of a scenario: its backend and tether processes, the tether config written for
//! them, the load, and the timeline of events carried out while the load runs.

mod check;
mod config;
mod events;
mod fleet;
mod launch;
mod progress;
mod stop;
mod task;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use self::check::check;
use self::config::{check_config, tether_config};
use self::fleet::Fleet;
pub use self::launch::Launcher;
use self::progress::progress_line;
pub use self::stop::Stop;
use self::task::AbortOnDrop;
use crate::dns_server::DnsServer;
use crate::load::{self, LoadResult, LoadSpec, Probe, Progress};
use crate::redis_server::RedisServer;
use crate::report::{CellReport, EventRecord, ScenarioReport};
use crate::scenario::{self, demo_flow, Action, Scenario};
use crate::stats;
use crate::theory;

/// How often the lab looks for backends that exited on their own.
const CRASH_POLL: Duration = Duration::from_millis(250);

/// One cell: the scenario run with one affinity mode and one session store (or app variant).
pub struct Lab<'a> {
    sc: &'a Scenario,
    affinity: String,
    /// The second coordinate's name (a session store or an app variant).
    axis: String,
    /// Logs and the generated tether config go here.
    dir: PathBuf,
    /// The tether binary.
    tether: PathBuf,
    fleet: Fleet,
}

impl<'a> Lab<'a> {
    /// A cell with nothing started yet; `redis_url` is the lab's redis-server, for a `shared`
    /// cell or an app using `{redis_url}`.
    pub fn new(
        sc: &'a Scenario,
        affinity: &str,
        launcher: Launcher,
        dir: PathBuf,
        tether: &Path,
        redis_url: Option<String>,
    ) -> Lab<'a> {
        let ids = scenario::backend_ids(sc);
        let axis = match &launcher {
            Launcher::Demo { variant, .. } => variant.name.clone(),
            Launcher::App { variant, .. } => variant.name.clone(),
        };
        Lab {
            sc,
            affinity: affinity.to_string(),
            axis,
            fleet: Fleet::new(&ids, launcher, dir.clone(), redis_url),
            dir,
            tether: tether.to_path_buf(),
        }
    }

    /// Gives the cell a redis-server of its own (started before its backends, which get its
    /// address), for a scenario whose events act on redis.
    pub fn own_redis(&mut self, server: RedisServer) {
        self.fleet.own_redis(server);
    }

    /// Makes the cell's pool discover its backends through `dns`, a name server of its own.
    pub fn discover(&mut self, dns: DnsServer) -> anyhow::Result<()> {
        self.fleet.discover(dns)
    }

    /// Starts the processes, runs the load and the timeline, fills in `cell`; returns what
    /// the users saw.
    pub async fn run(
        &mut self,
        label: &str,
        cell: &mut CellReport,
        seed: u64,
    ) -> Result<LoadResult, Stop> {
        let ids = scenario::backend_ids(self.sc);
        let pooled = &ids[..self.sc.topology.backends];
        for id in pooled {
            if let Err(e) = self.fleet.start_backend(id).await {
                let why = format!("{id}: {e:#}");
                return Err(if self.fleet.is_app() {
                    Stop::Input(why)
                } else {
                    Stop::Broken(why)
                });
            }
        }
        // A discovering pool's first answer holds the pooled backends before tether starts.
        if self.fleet.dns_target().is_some() {
            for id in pooled {
                self.fleet.set_in_dns(id, true).await?;
            }
        }
        let config = self.dir.join("tether.toml");
        let text = tether_config(
            self.sc,
            &self.affinity,
            &self.axis,
            &self.fleet.pooled(self.sc.topology.backends),
            self.fleet.dns_target(),
        );
        std::fs::write(&config, text).map_err(anyhow::Error::from)?;
        check_config(&self.tether, &config).await?;
        for i in 1..=self.sc.topology.proxies {
            let name = format!("tether-{i}");
            self.fleet.start_proxy(&name, &self.tether, &config).await?;
        }

        let spec = LoadSpec {
            targets: self.fleet.web_addrs(),
            users: self.sc.load.users,
            think: self.sc.load.think.0,
            jitter: self.sc.load.jitter,
            actions_per_user: self.sc.load.actions_per_user,
            hot_users: self.sc.load.hot_users,
            hot_factor: self.sc.load.hot_factor,
            duration: self.sc.duration.0,
            timeout: self.sc.load.timeout.0,
            logout_after: self.sc.load.logout_after,
            seed,
            probe: Probe {
                every: self.sc.load.replay_every.0,
                give_up: self.sc.load.replay_for.0,
                timeout: self.sc.load.timeout.0,
            },
            flow: match self.sc.flow.is_empty() {
                false => self.sc.flow.clone(),
                true => demo_flow(),
            },
        };
        let progress = Arc::new(Progress::default());
        let start = Instant::now() + Duration::from_millis(100);
        let mut load = AbortOnDrop(tokio::spawn(load::run(spec, start, Arc::clone(&progress))));
        let ticker = AbortOnDrop(tokio::spawn(progress_line(
            label.to_string(),
            start,
            self.sc.duration.0,
            Arc::clone(&progress),
        )));

        let mut events = self.sc.events.clone();
        events.sort_by_key(|e| e.at.0);
        for e in &events {
            self.watch_until(start + e.at.0, start, cell).await;
            let actual = start.elapsed().as_secs_f64();
            let result = events::apply(&mut self.fleet, e).await;
            let (ok, detail) = match result {
                Ok(d) => (true, d),
                Err(err) => (false, format!("{err:#}")),
            };
            if !ok {
                eprintln!(
                    "\n{label}: event {} {} FAILED: {detail}",
                    e.action.name(),
                    e.backend
                );
            }
            cell.events.push(EventRecord {
                cell: cell.name(),
                at_s: e.at.0.as_secs_f64(),
                actual_s: actual,
                action: e.action.name().to_string(),
                backend: e.backend.clone(),
                ok,
                detail,
            });
        }
        let limit = self.sc.duration.0 + self.sc.load.timeout.0 + Duration::from_secs(30);
        let give_up = start + limit;
        // Bounded by `give_up`: one pass per CRASH_POLL.
        let result = loop {
            match tokio::time::timeout(CRASH_POLL, &mut load.0).await {
                Ok(r) => break r.map_err(|e| anyhow::anyhow!("load task failed: {e}"))?,
                Err(_) if Instant::now() > give_up => {
                    return Err(anyhow::anyhow!("load did not finish within {limit:?}").into())
                }
                Err(_) => self.note_crashes(start, cell),
            }
        };
        self.note_crashes(start, cell);
        drop(ticker);
        // Scale-out is about a spare joining, not a replaced backend coming back.
        let added = events
            .iter()
            .find(|e| {
                matches!(e.action, Action::Add | Action::DnsAdd) && !pooled.contains(&e.backend)
            })
            .map(|e| (e.backend.as_str(), e.at.0.as_secs_f64()));
        // Scale-in is a backend leaving for good, not one replaced in a rolling deploy.
        let removed = events
            .iter()
            .find(|e| {
                matches!(e.action, Action::Remove | Action::DnsRemove)
                    && !events.iter().any(|later| {
                        later.at.0 >= e.at.0
                            && later.backend == e.backend
                            && matches!(later.action, Action::Add | Action::DnsAdd)
                    })
            })
            .map(|e| (e.backend.as_str(), e.at.0.as_secs_f64()));
        let changes = stats::Changes { added, removed };
        cell.stats = stats::compute(&result, self.sc.bucket(), changes, &cell.marks());
        cell.stats.theory = theory::derive(
            &result,
            &cell.setup(&ScenarioReport::new(self.sc, false, Vec::new())),
        );
        cell.ran = true;
        check(self.sc, cell);
        eprintln!(
            "\r{label}: {} requests, {} errors, {} sessions lost, p99 {:.1} ms, checks {}",
            cell.stats.requests,
            cell.stats.errors,
            cell.stats.sessions_lost,
            cell.stats.latency_ms.p99,
            if cell.passed() { "ok" } else { "FAILED" }
        );
        Ok(result)
    }

    /// Sleeps until `t`, noting backends that crash meanwhile.
    async fn watch_until(&mut self, t: Instant, start: Instant, cell: &mut CellReport) {
        // Bounded by `t`: each pass sleeps CRASH_POLL or up to `t`.
        while Instant::now() < t {
            tokio::time::sleep_until(t.min(Instant::now() + CRASH_POLL)).await;
            self.note_crashes(start, cell);
        }
    }

    /// Records each backend that exited on its own as a `crashed` event: something the run
    /// shows about the app, not a failure of the lab.
    fn note_crashes(&mut self, start: Instant, cell: &mut CellReport) {
        for (id, detail) in self.fleet.crashed() {
            let at = start.elapsed().as_secs_f64();
            eprintln!("\n{}: {id} crashed at {at:.1}s: {detail}", cell.name());
            cell.events.push(EventRecord {
                cell: cell.name(),
                at_s: at,
                actual_s: at,
                action: "crashed".into(),
                backend: id,
                ok: true,
                detail,
            });
        }
    }

    /// Stops every process of the cell (tether gracefully, backends with SIGKILL).
    pub async fn shutdown(&mut self) {
        self.fleet.shutdown().await;
    }
}
