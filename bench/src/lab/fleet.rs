//! The processes of one cell: backends by id, each restartable at its old address, and the
//! tether instances, with the admin call that must reach every instance.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use hyper::Method;

use crate::procs::Proc;
use crate::sessions::SessionStore;

/// A backend id's process, if started, and the address it keeps across restarts.
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

/// The backend and tether processes of one cell.
pub struct Fleet {
    backends: BTreeMap<String, Slot>,
    proxies: Vec<ProxyProc>,
    sessions: SessionStore,
    /// Logs go here.
    dir: PathBuf,
    /// This executable (backends are `tether-bench backend`).
    bench: PathBuf,
    /// Redis for `shared` cells.
    redis_url: Option<String>,
}

impl Fleet {
    /// A slot for each of `ids`, nothing started yet.
    pub fn new(
        ids: &[String],
        sessions: SessionStore,
        dir: PathBuf,
        bench: PathBuf,
        redis_url: Option<String>,
    ) -> Fleet {
        let backends = ids
            .iter()
            .map(|id| {
                let slot = Slot {
                    starts: 0,
                    proc: None,
                    addr: None,
                };
                (id.clone(), slot)
            })
            .collect();
        Fleet {
            backends,
            proxies: Vec::new(),
            sessions,
            dir,
            bench,
            redis_url,
        }
    }

    /// Starts backend `id`, at its previous address if it had one.
    pub async fn start_backend(&mut self, id: &str) -> anyhow::Result<SocketAddr> {
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

    /// Starts one tether instance `name` on `config` and waits for its listeners.
    pub async fn start_proxy(
        &mut self,
        name: &str,
        tether: &Path,
        config: &Path,
    ) -> anyhow::Result<()> {
        let args = vec!["run".to_string(), "-c".into(), config.display().to_string()];
        let log = self.dir.join(format!("{name}.log"));
        let mut proc = Proc::spawn(name, tether, &args, &log)?;
        let addrs = proc.wait_listening(&["web", "admin"]).await?;
        self.proxies.push(ProxyProc {
            proc,
            web: addrs["web"],
            admin: addrs["admin"],
        });
        Ok(())
    }

    /// The first `n` backends by id with their addresses, for the tether config.
    pub fn pooled(&self, n: usize) -> Vec<(String, SocketAddr)> {
        self.backends
            .iter()
            .take(n)
            .map(|(id, slot)| {
                let addr = slot.addr.expect("pooled backends are started first");
                (id.clone(), addr)
            })
            .collect()
    }

    /// Every tether instance's web listener, in start order.
    pub fn web_addrs(&self) -> Vec<SocketAddr> {
        self.proxies.iter().map(|p| p.web).collect()
    }

    /// The process of backend `id`.
    pub fn proc_of(&mut self, id: &str) -> anyhow::Result<&mut Proc> {
        self.backends
            .get_mut(id)
            .and_then(|s| s.proc.as_mut())
            .with_context(|| format!("{id} was never started"))
    }

    /// Backend `id`'s address, if it was ever started.
    pub fn addr(&self, id: &str) -> Option<SocketAddr> {
        self.backends[id].addr
    }

    /// Backend `id`'s address while its process runs; `None` when it needs starting.
    pub fn running_addr(&mut self, id: &str) -> anyhow::Result<Option<SocketAddr>> {
        let slot = self.backends.get_mut(id).context("unknown backend")?;
        let running = slot.proc.as_mut().is_some_and(Proc::running);
        Ok(slot.addr.filter(|_| running))
    }

    /// The same admin call on every proxy; fails if any proxy refuses.
    pub async fn admin_all(
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

    /// Stops every process (tether gracefully, backends with SIGKILL).
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
