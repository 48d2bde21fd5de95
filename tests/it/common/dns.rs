//! Helpers for the discovery tests: backends a DNS answer can name (one port, several
//! loopback addresses), the answer written to the test's dnsmasq, `[resolver]` pointed at it,
//! fresh-client load that records every non-200, and readers of `/status` and `/metrics`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admin::{ids_in, Admin};
use super::affinity;
use super::backend::{BackendOptions, TestBackend};
use super::client::Http1;
use super::config::Config;
use super::dnsmasq::{self, Dnsmasq, INSTALL};

/// The name the tests' dnsmasq answers for.
pub const NAME: &str = "app.test";
/// Scheduling and /status polling on a loaded 2-core debug build.
pub const WITHIN: Duration = Duration::from_secs(15);

/// True (after saying how to install it) when dnsmasq is missing: the test then passes empty.
pub fn skip() -> bool {
    if dnsmasq::binary().is_some() {
        return false;
    }
    eprintln!("skipping: this test needs dnsmasq; install it with {INSTALL}");
    true
}

/// Backends on 127.0.0.2, 127.0.0.3, ... all on one port (an A record carries no port), each
/// named by the id tether derives from its address.
pub async fn backends_on_one_port(count: u8) -> Vec<TestBackend> {
    let port = std::net::TcpListener::bind("127.0.0.2:0")
        .and_then(|l| l.local_addr())
        .expect("free port on 127.0.0.2")
        .port();
    let mut out = Vec::new();
    for i in 0..count {
        let addr = SocketAddr::from(([127, 0, 0, 2 + i], port));
        out.push(
            TestBackend::start_with(BackendOptions {
                id: addr.to_string(),
                listen: Some(addr),
                ..Default::default()
            })
            .await,
        );
    }
    out
}

fn hosts<'a>(backends: &[&'a TestBackend]) -> Vec<(String, &'a str)> {
    backends
        .iter()
        .map(|b| (b.addr.ip().to_string(), NAME))
        .collect()
}

/// Makes `NAME` resolve to these backends' addresses (none: an answer without addresses).
pub fn set_hosts(dns: &Dnsmasq, backends: &[&TestBackend]) {
    let lines = hosts(backends);
    let refs: Vec<(&str, &str)> = lines.iter().map(|(ip, n)| (ip.as_str(), *n)).collect();
    dns.set_hosts(&refs);
}

/// `config` with `[resolver]` pointed at `dns`, a 200 ms TTL floor and a 500 ms query timeout.
pub fn resolver(config: Config, dns: &Dnsmasq) -> Config {
    config
        .resolver("nameservers", vec![dns.addr.to_string()])
        .resolver("min_ttl", "200ms")
        .resolver("timeout", "500ms")
}

/// Fresh clients (no cookie) in a loop until stopped: every reply must be a 200.
pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Load {
    /// Starts the load on `client` (capped at two minutes).
    pub fn start(client: Http1) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (flag, count) = (stop.clone(), sent.clone());
        let task = tokio::spawn(async move {
            let mut failures = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let reply = affinity::get(&client, "/load", None).await;
                count.fetch_add(1, Ordering::Relaxed);
                if reply.status != 200 {
                    failures.push(format!("{}: {}", reply.status, reply.text()));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            failures
        });
        Load { stop, sent, task }
    }

    /// Stops the load: how many requests were sent, and every one that was not a 200.
    pub async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self
            .task
            .await
            .expect("load task panicked (transport error?)");
        (self.sent.load(Ordering::Relaxed), failures)
    }
}

/// The ids `/status` lists for pool `app`, sorted.
pub async fn pool_ids(admin: &Admin) -> Vec<String> {
    let mut ids = ids_in(&admin.status().await, "app");
    ids.sort();
    ids
}

/// Polls `check` until it holds; panics naming `what` after `WITHIN`.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WITHIN;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {WITHIN:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of `name{pool="app"}` in a `/metrics` text.
pub fn metric(text: &str, name: &str) -> u64 {
    let prefix = format!("{name}{{pool=\"app\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in /metrics:\n{text}"))
        .trim()
        .parse()
        .expect("numeric metric")
}
