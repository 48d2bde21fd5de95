//! A real DNS server for discovery tests: the distribution's dnsmasq, started on a free
//! loopback port with nothing but a hosts file the test writes (no upstream, no /etc/hosts, no
//! system config), reloaded with SIGHUP, paused with SIGSTOP, and killed by its PID on drop.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to get dnsmasq when it is missing.
pub const INSTALL: &str = "apt-get install -y dnsmasq (Debian/Ubuntu; the tests start their own \
                           instance and never use a system service)";

/// A running dnsmasq answering from a hosts file.
pub struct Dnsmasq {
    child: Child,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    hosts: PathBuf,
    _dir: tempfile::TempDir,
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

impl Dnsmasq {
    /// Starts dnsmasq answering `hosts` (`(ip, name)` lines of a hosts file) and any extra
    /// arguments (`--srv-host=...`); `None` when dnsmasq is not installed.
    pub async fn start(hosts: &[(&str, &str)], extra: &[String]) -> Option<Dnsmasq> {
        let bin = binary()?;
        let dir = tempfile::tempdir().expect("tempdir");
        // dnsmasq drops root for `nobody`, which must still read the file on SIGHUP.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod tempdir");
        let path = dir.path().join("hosts");
        write_hosts(&path, hosts);
        let log = dir.path().join("dnsmasq.log");
        // A port taken between our check and dnsmasq's bind (other tests open connections
        // all the time) makes it exit at once: try another.
        let mut last_error = String::new();
        for _ in 0..8 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let mut child = Command::new(&bin)
                .args([
                    "--no-daemon",
                    "--conf-file=/dev/null",
                    "--pid-file=",
                    &format!("--port={}", addr.port()),
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    &format!("--addn-hosts={}", path.display()),
                    // Answers carry TTL 0 unless a test says otherwise: tether's floor decides.
                    "--local-ttl=0",
                    "--log-facility=-",
                ])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("dnsmasq log"))
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            match wait_ready(&mut child, addr).await {
                Ok(()) => {
                    return Some(Dnsmasq {
                        child,
                        addr,
                        hosts: path,
                        _dir: dir,
                    })
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    last_error = format!("{e}: {log}");
                }
            }
        }
        panic!("dnsmasq did not start: {last_error}");
    }

    /// Replaces the hosts file and makes dnsmasq re-read it (SIGHUP).
    pub fn set_hosts(&self, hosts: &[(&str, &str)]) {
        write_hosts(&self.hosts, hosts);
        self.signal("HUP");
    }

    /// Sends a signal by name (`HUP`, `STOP`, `CONT`) to this dnsmasq, and only to it.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -s {name} {} failed",
            self.child.id()
        );
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        // A stopped process still dies of SIGKILL.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until dnsmasq accepts TCP on its port (it binds UDP and TCP together).
async fn wait_ready(child: &mut Child, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait().expect("try_wait dnsmasq") {
            return Err(format!("dnsmasq exited ({status}) on {addr}"));
        }
        if Instant::now() > deadline {
            return Err(format!("dnsmasq not up on {addr} within 10s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A port free for both UDP and TCP on 127.0.0.1, below the usual ephemeral range (32768 and
/// up on Linux) so that outgoing connections of concurrent tests are unlikely to take it.
fn free_port() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for i in 0..1000u32 {
        let port = 20_000 + ((seed.wrapping_add(i.wrapping_mul(7919))) % 12_000) as u16;
        let udp = UdpSocket::bind(("127.0.0.1", port));
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
    panic!("no free port for dnsmasq in 20000..32000");
}

fn write_hosts(path: &std::path::Path, hosts: &[(&str, &str)]) {
    let text: String = hosts
        .iter()
        .map(|(ip, name)| format!("{ip} {name}\n"))
        .collect();
    // Written aside and renamed, so dnsmasq never reads half a file.
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).expect("write hosts");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).expect("chmod hosts");
    std::fs::rename(&tmp, path).expect("rename hosts");
}
