//! Passive ejection cannot run away: one freeze of a backend under concurrent load is one
//! ejection, and the backend is back within one ejection period (or as soon as its active checks
//! pass) once it answers again.
//!
//! The frozen backend is a real process (`python3 -m http.server`) stopped with SIGSTOP and
//! resumed with SIGCONT, so requests sent before the ejection all fail together after it.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::admin::count;
use crate::common::config::{Config, Listener, Pool};
use crate::common::{Admin, Http1, TestBackend, Tether};

/// Concurrent clients keeping requests in flight on every backend.
const CLIENTS: usize = 16;

/// A `python3 -m http.server` on 127.0.0.1, killed on drop.
struct PyServer {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl PyServer {
    /// Starts it on a free port and waits (bounded) until it accepts.
    fn start() -> PyServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("index.html"), "ok\n").expect("index.html");
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed for this test (apt-get install python3)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "python3 http.server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PyServer {
            child,
            addr,
            _dir: dir,
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to this process only.
    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -s {signal} failed");
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        // A stopped process must be resumed to die of anything but SIGKILL; kill sends that.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Passive health that ejects after 3 failures for `eject`.
fn passive(pool: Pool, eject: &str) -> Pool {
    pool.set_in("passive", "failures", 3)
        .set_in("passive", "eject", eject)
        .set_in("passive", "max_eject", "5m")
}

fn config(frozen: SocketAddr, live: SocketAddr, pool: Pool) -> Config {
    Config::new().admin().listener(Listener::web()).pool(
        pool.set("balance", "round_robin")
            .set("connect_timeout", "300ms")
            .set("response_timeout", "300ms")
            .backend("frozen", frozen)
            .backend("live", live),
    )
}

/// Keeps [`CLIENTS`] requests in flight until `stop`; every request is bounded by the
/// client's deadline, and each client stops after a fixed number of requests at most.
fn load(client: &Http1, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|_| {
            let (client, stop) = (client.clone(), Arc::clone(stop));
            tokio::spawn(async move {
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    // 200 from either backend, or 504 while one is frozen: both fine here.
                    let _ = client.get("/index.html").await;
                }
            })
        })
        .collect()
}

/// Freezes `frozen` under load for `freeze`, resumes it, and stops the load.
async fn freeze_under_load(tether: &Tether, frozen: &PyServer, freeze: Duration) {
    let client = Http1::new(tether.addr("web"));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&client, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    frozen.signal("STOP");
    tokio::time::sleep(freeze).await;
    frozen.signal("CONT");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("load client");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_freeze_under_load_is_one_ejection_and_the_backend_returns_after_one_period() {
    let _serial = crate::common::serial::timed().await;
    let frozen = PyServer::start();
    let live = TestBackend::start("live").await;
    // Longer than the freeze, so that only requests sent before the ejection fail.
    let tether = Tether::start(config(frozen.addr, live.addr, passive(Pool::app(), "2s"))).await;
    let admin = Admin::new(tether.addr("admin"));

    freeze_under_load(&tether, &frozen, Duration::from_millis(1000)).await;
    let resumed = Instant::now();

    let b = admin.expect_backend("app", "frozen").await;
    assert_eq!(
        count(&b, "ejections"),
        1,
        "one freeze must be one ejection: {b}"
    );
    // One period (2 s) from the ejection, which came before the resume.
    admin
        .wait_state("app", "frozen", "up", Duration::from_secs(3))
        .await;
    assert!(resumed.elapsed() < Duration::from_secs(3));
    let b = admin.expect_backend("app", "frozen").await;
    assert_eq!(count(&b, "ejections"), 1, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_active_checks_passing_them_ends_the_ejection() {
    let _serial = crate::common::serial::timed().await;
    let frozen = PyServer::start();
    let live = TestBackend::start("live").await;
    // An ejection far longer than the test: only passing active checks can end it.
    let pool = passive(Pool::app(), "60s")
        .set_in("health", "check", "http")
        .set_in("health", "path", "/index.html")
        .set_in("health", "interval", "150ms")
        .set_in("health", "timeout", "150ms")
        .set_in("health", "rise", 2)
        .set_in("health", "fall", 100);
    let tether = Tether::start(config(frozen.addr, live.addr, pool)).await;
    let admin = Admin::new(tether.addr("admin"));

    freeze_under_load(&tether, &frozen, Duration::from_millis(1500)).await;

    let b = admin.expect_backend("app", "frozen").await;
    assert_eq!(
        count(&b, "ejections"),
        1,
        "one freeze must be one ejection: {b}"
    );
    admin
        .wait_state("app", "frozen", "up", Duration::from_secs(3))
        .await;
}
