//! One cell of a scenario: its backend and tether processes, the tether config written for
//! them, and the timeline events carried out as signals and admin API calls.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::Method;
use tokio::time::Instant;

use crate::backend::SessionStore;
use crate::load::{self, LoadSpec, Progress};
use crate::procs::Proc;
use crate::report::{CellReport, EventRecord};
use crate::runner::{check, progress_line};
use crate::scenario::{self, Action, EventSpec, Scenario};
use crate::stats;

/// A task that must not outlive the cell (the load if it overruns, the progress line).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a cell did not finish.
pub enum Stop {
    /// It cannot run here (this tether rejects its config): reported, not failed.
    Skip(String),
    /// It broke (a process would not start, the load hung): the cell fails.
    Broken(String),
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Broken(format!("{e:#}"))
    }
}

struct Slot {
    starts: u32,
    proc: Option<Proc>,
    addr: Option<SocketAddr>,
}

struct ProxyProc {
    proc: Proc,
    web: SocketAddr,
    admin: SocketAddr,
}

/// The processes of one cell.
pub struct Lab<'a> {
    /// The scenario.
    pub sc: &'a Scenario,
    /// The cell's tether affinity mode.
    pub affinity: String,
    /// The cell's session store.
    pub sessions: SessionStore,
    /// Logs and the generated tether config go here.
    pub dir: PathBuf,
    /// This executable (backends are `tether-bench backend`).
    pub bench: PathBuf,
    /// The tether binary.
    pub tether: PathBuf,
    /// Redis for `shared` cells.
    pub redis_url: Option<String>,
    backends: BTreeMap<String, Slot>,
    proxies: Vec<ProxyProc>,
}

impl<'a> Lab<'a> {
    /// A cell with nothing started yet (set `redis_url` for a shared cell).
    pub fn new(
        sc: &'a Scenario,
        affinity: &str,
        sessions: SessionStore,
        dir: PathBuf,
        bench: PathBuf,
        tether: &Path,
    ) -> Lab<'a> {
        Lab {
            sc,
            affinity: affinity.to_string(),
            sessions,
            dir,
            bench,
            tether: tether.to_path_buf(),
            redis_url: None,
            backends: BTreeMap::new(),
            proxies: Vec::new(),
        }
    }

    /// Starts the processes, runs the load and the timeline, fills in `cell`.
    pub async fn run(&mut self, label: &str, cell: &mut CellReport) -> Result<(), Stop> {
        let ids = scenario::backend_ids(self.sc);
        for id in &ids {
            self.backends.insert(
                id.clone(),
                Slot {
                    starts: 0,
                    proc: None,
                    addr: None,
                },
            );
        }
        for id in &ids[..self.sc.topology.backends] {
            self.start_backend(id).await?;
        }
        let config = self.dir.join("tether.toml");
        std::fs::write(&config, self.tether_config()).map_err(anyhow::Error::from)?;
        self.check_config(&config).await?;
        for i in 1..=self.sc.topology.proxies {
            let name = format!("tether-{i}");
            let args = vec!["run".to_string(), "-c".into(), config.display().to_string()];
            let log = self.dir.join(format!("{name}.log"));
            let mut proc = Proc::spawn(&name, &self.tether, &args, &log)?;
            let addrs = proc.wait_listening(&["web", "admin"]).await?;
            self.proxies.push(ProxyProc {
                proc,
                web: addrs["web"],
                admin: addrs["admin"],
            });
        }

        let spec = LoadSpec {
            targets: self.proxies.iter().map(|p| p.web).collect(),
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
            let result = self.apply(e).await;
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
        let pooled = &ids[..self.sc.topology.backends];
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

    async fn check_config(&self, config: &Path) -> Result<(), Stop> {
        let out = tokio::process::Command::new(&self.tether)
            .args(["check", "-c"])
            .arg(config)
            .output()
            .await
            .map_err(|e| Stop::Broken(format!("cannot run {}: {e}", self.tether.display())))?;
        if out.status.success() {
            return Ok(());
        }
        let why = String::from_utf8_lossy(&out.stderr);
        let first: Vec<&str> = why.lines().take(3).collect();
        Err(Stop::Skip(format!(
            "this tether rejects the cell's config ({}): {}",
            config.display(),
            first.join(" / ")
        )))
    }

    fn tether_config(&self) -> String {
        use toml::{Table, Value};
        let t = &self.sc.topology;
        let mut pool = Table::new();
        pool.insert("balance".into(), t.balance.clone().into());
        pool.insert("affinity".into(), self.affinity.clone().into());
        pool.insert("connect_timeout".into(), "1s".into());
        pool.insert("response_timeout".into(), t.response_timeout.clone().into());
        for (k, v) in &t.pool {
            pool.insert(k.clone(), v.clone());
        }
        if let (Some(c), "cookie" | "spread") = (&t.cookie, self.affinity.as_str()) {
            pool.insert("cookie".into(), c.clone());
        }
        let backends: Vec<Value> = self
            .backends
            .iter()
            .take(t.backends)
            .map(|(id, slot)| {
                let mut b = Table::new();
                b.insert("id".into(), id.clone().into());
                let addr = slot.addr.expect("pooled backends are started first");
                b.insert("addr".into(), addr.to_string().into());
                Value::Table(b)
            })
            .collect();
        pool.insert("backend".into(), Value::Array(backends));
        let mut root = Table::new();
        let mut runtime = Table::new();
        runtime.insert("shutdown_timeout".into(), "2s".into());
        root.insert("runtime".into(), Value::Table(runtime));
        let mut admin = Table::new();
        admin.insert("listen".into(), "127.0.0.1:0".into());
        root.insert("admin".into(), Value::Table(admin));
        let mut listener = Table::new();
        listener.insert("name".into(), "web".into());
        listener.insert("listen".into(), "127.0.0.1:0".into());
        listener.insert("pool".into(), "app".into());
        root.insert(
            "listener".into(),
            Value::Array(vec![Value::Table(listener)]),
        );
        let mut pools = Table::new();
        pools.insert("app".into(), Value::Table(pool));
        root.insert("pool".into(), Value::Table(pools));
        format!(
            "# written by tether-bench for scenario {:?}, cell {}/{}\n{}",
            self.sc.name,
            self.affinity,
            self.sessions.name(),
            toml::to_string(&root).expect("a toml table serializes")
        )
    }

    /// Starts backend `id`, at its previous address if it had one.
    async fn start_backend(&mut self, id: &str) -> anyhow::Result<SocketAddr> {
        let slot = self.backends.get_mut(id).context("unknown backend")?;
        if let Some(p) = &mut slot.proc {
            anyhow::ensure!(!p.running(), "{id} is already running (pid {})", p.pid);
        }
        let listen = slot
            .addr
            .map(|a| a.to_string())
            .unwrap_or("127.0.0.1:0".into());
        let mut args = vec![
            "backend".to_string(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            listen,
            "--sessions".into(),
            self.sessions.name().into(),
        ];
        if let Some(url) = &self.redis_url {
            args.extend(["--redis".to_string(), url.clone()]);
        }
        let log = self.dir.join(format!("{id}.log"));
        // A restarted backend is a new process: it gets its own log, next to the first one.
        slot.starts += 1;
        let log = if slot.starts > 1 {
            self.dir.join(format!("{id}.{}.log", slot.starts))
        } else {
            log
        };
        let mut proc = Proc::spawn(id, &self.bench, &args, &log)?;
        let addr = proc.wait_listening(&["backend"]).await?["backend"];
        slot.proc = Some(proc);
        slot.addr = Some(addr);
        Ok(addr)
    }

    fn proc_of(&mut self, id: &str) -> anyhow::Result<&mut Proc> {
        self.backends
            .get_mut(id)
            .and_then(|s| s.proc.as_mut())
            .with_context(|| format!("{id} was never started"))
    }

    /// Carries out one event; the `Ok` string says what was done, for the report.
    async fn apply(&mut self, e: &EventSpec) -> anyhow::Result<String> {
        let id = e.backend.as_str();
        match e.action {
            Action::Kill => {
                let p = self.proc_of(id)?;
                anyhow::ensure!(p.running(), "{id} is not running");
                p.kill().await?;
                Ok(format!("SIGKILL pid {}", p.pid))
            }
            Action::Freeze | Action::Resume => {
                let sig = if e.action == Action::Freeze {
                    "STOP"
                } else {
                    "CONT"
                };
                let p = self.proc_of(id)?;
                p.signal(sig).await?;
                Ok(format!("SIG{sig} pid {}", p.pid))
            }
            Action::Start => {
                let addr = self.start_backend(id).await?;
                Ok(format!("started at {addr}"))
            }
            Action::Stop => {
                let p = self.proc_of(id)?;
                let how = p.stop(Duration::from_secs(2)).await;
                Ok(format!("pid {} {how}", p.pid))
            }
            Action::Restart => {
                let p = self.proc_of(id)?;
                let (old, how) = (p.pid, p.stop(Duration::from_secs(2)).await);
                let addr = self.start_backend(id).await?;
                Ok(format!("pid {old} {how}; new process at {addr}"))
            }
            Action::Add => {
                let slot = self.backends.get_mut(id).context("unknown backend")?;
                let running = slot.proc.as_mut().is_some_and(Proc::running);
                let addr = match slot.addr {
                    Some(a) if running => a,
                    _ => self.start_backend(id).await?,
                };
                let body =
                    serde_json::json!({"addr": addr.to_string(), "weight": e.weight.unwrap_or(1)});
                self.admin_all(
                    Method::PUT,
                    &format!("/pools/app/backends/{id}"),
                    Some(body.to_string()),
                )
                .await
            }
            Action::Drain | Action::Enable | Action::Disable => {
                let path = format!("/pools/app/backends/{id}/{}", e.action.name());
                self.admin_all(Method::POST, &path, None).await
            }
            Action::Remove => {
                self.admin_all(Method::DELETE, &format!("/pools/app/backends/{id}"), None)
                    .await
            }
            Action::Fault => {
                let addr = self.backends[id]
                    .addr
                    .context("backend has no address yet")?;
                let mut q = Vec::new();
                if let Some(d) = e.delay_ms {
                    q.push(format!("delay_ms={d}"));
                }
                if let Some(r) = e.error_rate {
                    q.push(format!("error_rate={r}"));
                }
                if let Some(h) = e.hang {
                    q.push(format!("hang={}", u8::from(h)));
                }
                let path = format!("/fault?{}", q.join("&"));
                let (status, body) =
                    crate::http::call(addr, Method::POST, &path, None, Duration::from_secs(2))
                        .await?;
                anyhow::ensure!(status == 200, "POST {path}: HTTP {status}: {body}");
                Ok(format!("POST {path}: {body}"))
            }
        }
    }

    /// The same admin call on every proxy; fails if any proxy refuses.
    async fn admin_all(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<String> {
        let mut done = Vec::new();
        for p in &self.proxies {
            let (status, text) = crate::http::call(
                p.admin,
                method.clone(),
                path,
                body.clone(),
                Duration::from_secs(5),
            )
            .await
            .with_context(|| format!("{} {method} {path}", p.proc.name))?;
            anyhow::ensure!(
                (200..300).contains(&status),
                "{} {method} {path}: HTTP {status}: {text}",
                p.proc.name
            );
            done.push(format!("{} {method} {path}: {status}", p.proc.name));
        }
        Ok(done.join("; "))
    }

    /// Stops every process of the cell (tether gracefully, backends with SIGKILL).
    pub async fn shutdown(&mut self) {
        for p in &mut self.proxies {
            p.proc.stop(Duration::from_secs(3)).await;
        }
        for slot in self.backends.values_mut() {
            if let Some(p) = &mut slot.proc {
                let _ = p.signal("CONT").await;
                let _ = p.kill().await;
            }
        }
    }
}
