//! The name server of a cell whose pool discovers its backends through DNS: the distribution's
//! dnsmasq on a free loopback port, answering one name from a hosts file the lab rewrites (then
//! SIGHUP) as events add and remove addresses; no upstream, no /etc/hosts, no system config.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::procs::Proc;
use crate::util::free_port;

/// The name the lab's pools discover their backends under.
pub const NAME: &str = "app.lab.test";

/// How to get dnsmasq when it is missing (the reason a cell is skipped).
pub const MISSING: &str =
    "dnsmasq is not installed (Debian/Ubuntu: apt-get install -y dnsmasq; the lab starts its own \
     instance on a loopback port and never uses a system service)";

/// A dnsmasq the lab started, answering [`NAME`] with the addresses put into its answer.
pub struct DnsServer {
    /// Its process, killed by its PID when the cell ends.
    pub proc: Proc,
    /// Where it answers, over UDP and TCP.
    pub addr: SocketAddr,
    hosts: PathBuf,
    answer: BTreeSet<IpAddr>,
}

/// The dnsmasq binary, if installed (it lives in sbin, often off a user's PATH).
pub fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("dnsmasq"))
        .find(|p| p.is_file())
}

impl DnsServer {
    /// Starts dnsmasq with an empty answer, its hosts file and log in `dir`; the error says
    /// why it could not (not installed, did not come up), for the note that skips the cell.
    pub async fn start(dir: &Path) -> Result<DnsServer, String> {
        let bin = binary().ok_or_else(|| MISSING.to_string())?;
        let hosts = dir.join("dns-hosts");
        write_hosts(&hosts, &BTreeSet::new()).map_err(|e| e.to_string())?;
        // Started as root, dnsmasq drops to `nobody`, who may not read the cell's directory
        // when it reloads: it keeps the lab's own user instead.
        let as_root = std::fs::metadata(&hosts).is_ok_and(|m| m.uid() == 0);
        let mut last = String::new();
        // A port taken between the check and dnsmasq's bind makes it exit at once: try another.
        for attempt in 1..=5 {
            let port = free_port().map_err(|e| e.to_string())?;
            let mut args = vec![
                "--no-daemon".to_string(),
                "--conf-file=/dev/null".into(),
                "--pid-file=".into(),
                format!("--port={port}"),
                "--listen-address=127.0.0.1".into(),
                "--bind-interfaces".into(),
                "--no-resolv".into(),
                "--no-hosts".into(),
                format!("--addn-hosts={}", hosts.display()),
                // TTL 0: tether's `min_ttl` decides how soon it asks again.
                "--local-ttl=0".into(),
                "--log-facility=-".into(),
            ];
            if as_root {
                args.extend(["--user=root".to_string(), "--group=root".into()]);
            }
            let log = dir.join(format!("dnsmasq.{attempt}.log"));
            let mut proc =
                Proc::spawn("dnsmasq", &bin, &args, &log).map_err(|e| format!("{e:#}"))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            match wait_ready(&mut proc, addr).await {
                Ok(()) => {
                    return Ok(DnsServer {
                        proc,
                        addr,
                        hosts,
                        answer: BTreeSet::new(),
                    })
                }
                Err(e) => {
                    let _ = proc.kill().await;
                    last = e;
                }
            }
        }
        Err(format!("dnsmasq did not start: {last}"))
    }

    /// Puts `ip` into the answer for [`NAME`] and makes dnsmasq re-read it.
    pub async fn add(&mut self, ip: IpAddr) -> anyhow::Result<String> {
        self.answer.insert(ip);
        self.reload().await
    }

    /// Takes `ip` out of the answer for [`NAME`] and makes dnsmasq re-read it.
    pub async fn remove(&mut self, ip: IpAddr) -> anyhow::Result<String> {
        anyhow::ensure!(self.answer.remove(&ip), "{ip} is not in the DNS answer");
        self.reload().await
    }

    async fn reload(&mut self) -> anyhow::Result<String> {
        write_hosts(&self.hosts, &self.answer)?;
        self.proc.signal("HUP").await?;
        let ips: Vec<String> = self.answer.iter().map(IpAddr::to_string).collect();
        Ok(format!(
            "{NAME} now answers [{}] (dnsmasq pid {} reloaded)",
            ips.join(", "),
            self.proc.pid
        ))
    }
}

/// Waits until dnsmasq accepts TCP on its port (it binds UDP and TCP together).
async fn wait_ready(proc: &mut Proc, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    // Bounded by the deadline.
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = proc.exit_status() {
            return Err(format!(
                "dnsmasq exited ({status}) on {addr}:\n{}",
                proc.log_tail()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("dnsmasq not up on {addr} within 10s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes the answer as a hosts file, aside and renamed so dnsmasq never reads half a file.
fn write_hosts(path: &Path, answer: &BTreeSet<IpAddr>) -> std::io::Result<()> {
    let text: String = answer.iter().map(|ip| format!("{ip} {NAME}\n")).collect();
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
