//! The processes of one cell: backends by id, each restartable at its old address, and the
//! tether instances, with the admin call that must reach every instance.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use hyper::Method;

use super::launch::{Launcher, StartAt};
use crate::dns_server::DnsServer;
use crate::procs::Proc;
use crate::redis_server::RedisServer;

/// A backend id's process, if started, and the address it keeps across restarts.
struct Slot {
    index: usize,
    starts: u32,
    proc: Option<Proc>,
    addr: Option<SocketAddr>,
    /// The lab started it and has not stopped it: if it exits, it crashed on its own.
    up: bool,
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
    launcher: Launcher,
    /// Logs go here.
    dir: PathBuf,
    /// The lab's redis-server, for `shared` cells and apps using `{redis_url}`.
    redis_url: Option<String>,
    /// The cell's own redis-server, when the scenario's events act on it; how often started.
    redis: Option<(RedisServer, u32)>,
    /// The cell's name server, when its pool discovers the backends through DNS.
    dns: Option<DnsServer>,
}

impl Fleet {
    /// A slot for each of `ids`, nothing started yet.
    pub fn new(
        ids: &[String],
        launcher: Launcher,
        dir: PathBuf,
        redis_url: Option<String>,
    ) -> Fleet {
        let backends = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let slot = Slot {
                    index: i + 1,
                    starts: 0,
                    proc: None,
                    addr: None,
                    up: false,
                };
                (id.clone(), slot)
            })
            .collect();
        Fleet {
            backends,
            proxies: Vec::new(),
            launcher,
            dir,
            redis_url,
            redis: None,
            dns: None,
        }
    }

    /// Makes the backends discoverable through `dns`: one port for all (a DNS answer carries
    /// addresses only), and backend N on 127.0.0.(N+1), kept across restarts.
    pub fn discover(&mut self, dns: DnsServer) -> anyhow::Result<()> {
        let port = std::net::TcpListener::bind("127.0.0.2:0")
            .and_then(|l| l.local_addr())
            .context("no free port on 127.0.0.2")?
            .port();
        for slot in self.backends.values_mut() {
            let n = u8::try_from(slot.index + 1).context("too many backends for 127.0.0.N")?;
            slot.addr = Some(SocketAddr::from(([127, 0, 0, n], port)));
        }
        self.dns = Some(dns);
        Ok(())
    }

    /// The cell's name server and the port every backend listens on, when it discovers them.
    pub fn dns_target(&self) -> Option<(SocketAddr, u16)> {
        let port = self.backends.values().next()?.addr?.port();
        self.dns.as_ref().map(|d| (d.addr, port))
    }

    /// Puts (`true`) or takes backend `id`'s address into / out of the DNS answer.
    pub async fn set_in_dns(&mut self, id: &str, present: bool) -> anyhow::Result<String> {
        let ip: IpAddr = self
            .backends
            .get(id)
            .and_then(|s| s.addr)
            .context("unknown backend")?
            .ip();
        let dns = self.dns.as_mut().context("this cell has no name server")?;
        if present {
            dns.add(ip).await
        } else {
            dns.remove(ip).await
        }
    }

    /// The id tether knows backend `id` by: its own in a listed pool, its address when
    /// discovered.
    pub fn tether_id(&self, id: &str) -> String {
        match (&self.dns, self.backends.get(id).and_then(|s| s.addr)) {
            (Some(_), Some(addr)) => addr.to_string(),
            _ => id.to_string(),
        }
    }

    /// Gives the cell a redis-server of its own, which `redis` events act on.
    pub fn own_redis(&mut self, server: RedisServer) {
        self.redis_url = Some(server.url.clone());
        self.redis = Some((server, 1));
    }

    /// The cell's own redis-server's process.
    pub fn redis_proc(&mut self) -> anyhow::Result<&mut Proc> {
        self.redis
            .as_mut()
            .map(|(r, _)| &mut r.proc)
            .context("this cell has no redis-server of its own")
    }

    /// Starts the cell's redis-server again, empty, on its old port.
    pub async fn restart_redis(&mut self) -> anyhow::Result<String> {
        let (r, starts) = self
            .redis
            .as_mut()
            .context("this cell has no redis-server")?;
        *starts += 1;
        let log = format!("redis.{starts}.log");
        r.restart(&self.dir, &log)
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(format!(
            "new empty redis-server pid {} at {}",
            r.proc.pid, r.url
        ))
    }

    /// Whether the backends are the user's app (its start failures are bad input).
    pub fn is_app(&self) -> bool {
        self.launcher.is_app()
    }

    /// Starts backend `id`, at its previous address if it had one.
    pub async fn start_backend(&mut self, id: &str) -> anyhow::Result<SocketAddr> {
        let slot = self.backends.get_mut(id).context("unknown backend")?;
        if let Some(p) = &mut slot.proc {
            anyhow::ensure!(!p.running(), "{id} is already running (pid {})", p.pid);
        }
        let log = self.dir.join(format!("{id}.log"));
        // A restarted backend is a new process: it gets its own log, next to the first one.
        slot.starts += 1;
        let log = if slot.starts > 1 {
            self.dir.join(format!("{id}.{}.log", slot.starts))
        } else {
            log
        };
        let at = StartAt {
            id,
            index: slot.index,
            addr: slot.addr,
            log: &log,
            dir: &self.dir,
            redis_url: self.redis_url.as_deref(),
        };
        let (proc, addr) = self.launcher.start(at).await?;
        slot.proc = Some(proc);
        slot.addr = Some(addr);
        slot.up = true;
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

    /// The lab is about to stop backend `id` itself (kill, stop, restart): its exit is no crash.
    pub fn stopping(&mut self, id: &str) {
        if let Some(s) = self.backends.get_mut(id) {
            s.up = false;
        }
    }

    /// Backends that exited on their own since the last call, with how they ended.
    pub fn crashed(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (id, slot) in &mut self.backends {
            let Some(p) = slot.proc.as_mut().filter(|_| slot.up) else {
                continue;
            };
            if let Some(status) = p.exit_status() {
                slot.up = false;
                out.push((
                    id.clone(),
                    format!("pid {} exited on its own ({status})", p.pid),
                ));
            }
        }
        out
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

    /// Stops every process (tether gracefully; backends, the cell's redis and its name server
    /// with SIGKILL).
    pub async fn shutdown(&mut self) {
        if let Some(d) = &mut self.dns {
            let _ = d.proc.kill().await;
        }
        if let Some((r, _)) = &mut self.redis {
            let _ = r.proc.signal("CONT").await;
            let _ = r.proc.kill().await;
        }
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
