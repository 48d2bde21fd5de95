//! One cell of a scenario: its backend and tether processes, the tether config written for
//! them, the load, and the timeline of events carried out while the load runs.

mod check;
mod config;
mod events;
mod fleet;
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
use self::progress::progress_line;
pub use self::stop::Stop;
use self::task::AbortOnDrop;
use crate::load::{self, LoadSpec, Progress};
use crate::report::{CellReport, EventRecord};
use crate::scenario::{self, Action, Scenario};
use crate::sessions::SessionStore;
use crate::stats;

/// One cell: the scenario run with one affinity mode and one session store.
pub struct Lab<'a> {
    sc: &'a Scenario,
    affinity: String,
    sessions: SessionStore,
    /// Logs and the generated tether config go here.
    dir: PathBuf,
    /// The tether binary.
    tether: PathBuf,
    fleet: Fleet,
}

impl<'a> Lab<'a> {
    /// A cell with nothing started yet; `redis_url` is the store of a `shared` cell.
    pub fn new(
        sc: &'a Scenario,
        affinity: &str,
        sessions: SessionStore,
        dir: PathBuf,
        bench: PathBuf,
        tether: &Path,
        redis_url: Option<String>,
    ) -> Lab<'a> {
        let ids = scenario::backend_ids(sc);
        Lab {
            sc,
            affinity: affinity.to_string(),
            sessions,
            fleet: Fleet::new(&ids, sessions, dir.clone(), bench, redis_url),
            dir,
            tether: tether.to_path_buf(),
        }
    }

    /// Starts the processes, runs the load and the timeline, fills in `cell`.
    pub async fn run(&mut self, label: &str, cell: &mut CellReport) -> Result<(), Stop> {
        let ids = scenario::backend_ids(self.sc);
        let pooled = &ids[..self.sc.topology.backends];
        for id in pooled {
            self.fleet.start_backend(id).await?;
        }
        let config = self.dir.join("tether.toml");
        let text = tether_config(
            self.sc,
            &self.affinity,
            self.sessions,
            &self.fleet.pooled(self.sc.topology.backends),
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
            tokio::time::sleep_until(start + e.at.0).await;
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
        let result = tokio::time::timeout(limit, &mut load.0)
            .await
            .map_err(|_| anyhow::anyhow!("load did not finish within {limit:?}"))?
            .map_err(|e| anyhow::anyhow!("load task failed: {e}"))?;
        drop(ticker);
        // Scale-out is about a spare joining, not a replaced backend coming back.
        let added = events
            .iter()
            .find(|e| e.action == Action::Add && !pooled.contains(&e.backend))
            .map(|e| (e.backend.as_str(), e.at.0.as_secs_f64()));
        cell.stats = stats::compute(&result, self.sc.bucket(), added);
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
        Ok(())
    }

    /// Stops every process of the cell (tether gracefully, backends with SIGKILL).
    pub async fn shutdown(&mut self) {
        self.fleet.shutdown().await;
    }
}
