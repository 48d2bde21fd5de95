//! A flood of bare connections to the admin port cannot starve the data plane: the admin
//! listener holds a bounded number of connections and closes silent ones after its header
//! timeout, and an accept loop out of file descriptors backs off instead of spinning.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::common::config::{Config, Listener, Pool};
use crate::common::{Admin, Http1, TestBackend, Tether};

/// tether's admin connection cap (`tether::admin::MAX_CONNECTIONS`) and header timeout.
const ADMIN_CAP: usize = 64;
const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

fn config(backend: &TestBackend) -> Config {
    Config::new()
        .admin_token("a-token-of-sixteen-chars")
        .listener(Listener::web())
        .pool(Pool::app().backend("a", backend.addr))
}

/// Opens `n` connections to `addr` that never send a byte.
async fn flood(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(TcpStream::connect(addr).await.expect("connect"));
    }
    conns
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

/// The soft open-files limit of process `pid`.
fn soft_nofile(pid: u32) -> String {
    let limits =
        std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read /proc/PID/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files in /proc/PID/limits");
    line.split_whitespace()
        .nth(3)
        .expect("soft limit")
        .to_string()
}

/// CPU time (user + system, clock ticks) process `pid` has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of proc(5), counted from the state (field 3) here.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A data-plane GET that must succeed promptly.
async fn serves_promptly(client: &Http1) {
    let start = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(2), client.get("/"))
        .await
        .expect("data-plane request starved by the admin flood");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bare_admin_connections_are_capped_and_closed_while_the_data_plane_serves() {
    let _serial = crate::common::serial::timed().await;
    let backend = TestBackend::start("a").await;
    let tether = Tether::start(config(&backend)).await;
    let client = Http1::new(tether.addr("web"));
    serves_promptly(&client).await;
    let base = open_fds(tether.pid());

    let conns = flood(tether.addr("admin"), 300).await;
    // Sampled over half a second: tether never holds more than its cap of them.
    let mut most = 0;
    for _ in 0..10 {
        most = most.max(open_fds(tether.pid()).saturating_sub(base));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        most <= ADMIN_CAP + 8,
        "tether holds {most} descriptors for 300 silent admin connections"
    );
    serves_promptly(&client).await;

    // Silent connections are closed after the header timeout (bounded wait per connection).
    let mut readers = JoinSet::new();
    for mut conn in conns {
        readers.spawn(async move {
            let mut byte = [0u8; 1];
            let within = ADMIN_HEADER_TIMEOUT + Duration::from_secs(3);
            matches!(
                tokio::time::timeout(within, conn.read(&mut byte)).await,
                Ok(Ok(0) | Err(_))
            )
        });
    }
    let mut closed = 0;
    while let Some(done) = readers.join_next().await {
        closed += usize::from(done.expect("reader"));
    }
    assert!(
        closed >= ADMIN_CAP / 2,
        "only {closed} of 300 silent admin connections closed within {:?}",
        ADMIN_HEADER_TIMEOUT + Duration::from_secs(3)
    );
    // Flood gone: the admin API answers again.
    let admin = Admin::new(tether.addr("admin")).with_token("a-token-of-sixteen-chars");
    admin.status().await;
    serves_promptly(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_descriptors_the_accept_loops_back_off_instead_of_spinning() {
    let _serial = crate::common::serial::timed().await;
    let backend = TestBackend::start("a").await;
    let tether = Tether::start(config(&backend)).await;
    let client = Http1::new(tether.addr("web"));
    serves_promptly(&client).await;
    let pid = tether.pid().to_string();

    // Room for only a few more descriptors (the soft limit; the hard one stays, so it can be
    // raised back), then more connections than that on both ports.
    let soft = soft_nofile(tether.pid());
    let limit = open_fds(tether.pid()) + 8;
    let status = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={limit}:")])
        .status()
        .expect("prlimit (util-linux) is needed for this test");
    assert!(status.success(), "prlimit --pid {pid} failed");
    let admin_flood = flood(tether.addr("admin"), 40).await;
    let web_flood = flood(tether.addr("web"), 40).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (t0, ticks0) = (Instant::now(), cpu_ticks(tether.pid()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_ticks(tether.pid()) - ticks0;
    // Clock ticks are 1/100 s on Linux: spinning on EMFILE uses about 100 per second.
    let share = used as f64 / (t0.elapsed().as_secs_f64() * 100.0);
    assert!(
        share < 0.3,
        "tether used {:.0}% of a CPU while out of descriptors",
        share * 100.0
    );

    drop(admin_flood);
    drop(web_flood);
    let status = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={soft}:")])
        .status()
        .expect("prlimit");
    assert!(status.success());
    // Descriptors free again: the data plane accepts and serves (within the backoff's cap).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = Http1::new(tether.addr("web"));
        match tokio::time::timeout(Duration::from_secs(2), fresh.get("/")).await {
            Ok(reply) if reply.status == 200 => break,
            other => assert!(
                Instant::now() < deadline,
                "data plane not serving after descriptors were freed: {other:?}"
            ),
        }
    }
}
