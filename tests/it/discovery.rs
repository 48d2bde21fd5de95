//! Backends from DNS against a real name server (dnsmasq on a loopback port): the answer
//! changes while load runs, an added address gets traffic, a removed one drains keeping its
//! pinned cookie clients until drained, a name server that stops answering changes nothing,
//! and no request fails throughout. Also: an `addr` of `name:port` (from the test's name
//! server and from the system's `/etc/hosts`) and SRV records with their ports and weights.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::admin::ids_in;
use crate::common::affinity::{self, explain, set_cookies, Jar};
use crate::common::config::{Config, Listener, Pool};
use crate::common::dnsmasq::{self, Dnsmasq, INSTALL};
use crate::common::serial;
use crate::common::{Admin, BackendOptions, Http1, TestBackend, Tether};

const NAME: &str = "app.test";
/// Scheduling and /status polling on a loaded 2-core debug build.
const WITHIN: Duration = Duration::from_secs(15);

/// True (after saying how to install it) when dnsmasq is missing: the test then passes empty.
fn skip() -> bool {
    if dnsmasq::binary().is_some() {
        return false;
    }
    eprintln!("skipping: this test needs dnsmasq; install it with {INSTALL}");
    true
}

/// Backends on 127.0.0.2, 127.0.0.3, ... all on one port (an A record carries no port), each
/// named by the id tether derives from its address.
async fn backends_on_one_port(count: u8) -> Vec<TestBackend> {
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

fn set_hosts(dns: &Dnsmasq, backends: &[&TestBackend]) {
    let lines = hosts(backends);
    let refs: Vec<(&str, &str)> = lines.iter().map(|(ip, n)| (ip.as_str(), *n)).collect();
    dns.set_hosts(&refs);
}

fn resolver(config: Config, dns: &Dnsmasq) -> Config {
    config
        .resolver("nameservers", vec![dns.addr.to_string()])
        .resolver("min_ttl", "200ms")
        .resolver("timeout", "500ms")
}

/// Fresh clients (no cookie) in a loop until stopped: every reply must be a 200.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Load {
    fn start(client: Http1) -> Load {
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

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self
            .task
            .await
            .expect("load task panicked (transport error?)");
        (self.sent.load(Ordering::Relaxed), failures)
    }
}

async fn pool_ids(admin: &Admin) -> Vec<String> {
    let mut ids = ids_in(&admin.status().await, "app");
    ids.sort();
    ids
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
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

fn metric(text: &str, name: &str) -> u64 {
    let prefix = format!("{name}{{pool=\"app\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in /metrics:\n{text}"))
        .trim()
        .parse()
        .expect("numeric metric")
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_out_and_in_through_dns_with_sticky_drain_and_a_silent_name_server() {
    if skip() {
        return;
    }
    let _timed = serial::timed().await;
    let backends = backends_on_one_port(3).await;
    let (a, b, c) = (&backends[0], &backends[1], &backends[2]);
    let dns = Dnsmasq::start(&[], &[]).await.expect("dnsmasq");
    set_hosts(&dns, &[a, b]);
    let pool = Pool::app()
        .set("balance", "round_robin")
        .set("affinity", "cookie")
        .set("explain", true)
        .set("drain_timeout", "30s")
        .set("drain_quiet", "1s")
        .set_in("cookie", "keys", vec!["dns-drain-key-0123456789"])
        .set_in("discover", "dns", NAME)
        .set_in("discover", "port", i64::from(a.addr.port()))
        .set_in("discover", "interval", "1s");
    let config = resolver(
        Config::new().admin().listener(Listener::web()).pool(pool),
        &dns,
    );
    let tether = Tether::start(&config).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    // Resolved before the first request: the pool starts with both addresses.
    assert_eq!(pool_ids(&admin).await, [a.id.clone(), b.id.clone()]);
    let load = Load::start(Http1::new(tether.addr("web")));

    // A client pinned to b, to be kept through b's drain.
    let mut pinned = None;
    for _ in 0..20 {
        let mut jar = Jar::app();
        if explain(&jar.get(&client, "/pin").await).backend == b.id {
            pinned = Some(jar);
            break;
        }
    }
    let mut pinned = pinned.expect("round robin pins some client to b within 20");

    // Scale out: c appears in DNS and gets new clients.
    set_hosts(&dns, &[a, b, c]);
    wait_until("c, added to DNS, gets traffic", || async {
        c.requests() > 0
    })
    .await;
    assert_eq!(
        pool_ids(&admin).await,
        [a.id.clone(), b.id.clone(), c.id.clone()]
    );

    // Scale in: b leaves DNS and drains; its pinned client stays while it keeps coming.
    set_hosts(&dns, &[a, c]);
    admin.wait_state("app", &b.id, "draining", WITHIN).await;
    for round in 0..6 {
        let reply = pinned.get(&client, &format!("/pinned/{round}")).await;
        let seen = explain(&reply);
        assert_eq!(
            (seen.why.as_str(), seen.backend.as_str()),
            ("hit", b.id.as_str()),
            "round {round}: the pinned client left its draining backend"
        );
        assert!(set_cookies(&reply).is_empty(), "round {round}: re-issued");
        let fresh = explain(&affinity::get(&client, "/fresh", None).await);
        assert_ne!(fresh.backend, b.id, "round {round}: a new client sent to b");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Quiet for drain_quiet: b is drained and leaves the pool; its client moves on.
    let (_, states) = admin.wait_gone("app", &b.id, WITHIN).await;
    assert!(
        states.iter().all(|s| s == "draining" || s == "drained"),
        "{states:?}"
    );
    let moved = explain(&pinned.get(&client, "/after").await);
    assert_ne!(moved.backend, b.id);
    assert_eq!(pool_ids(&admin).await, [a.id.clone(), c.id.clone()]);

    // The name server stops answering: nothing changes, failures are counted, logged once.
    let failures_before = metric(&admin.metrics().await, "tether_discovery_failures_total");
    dns.signal("STOP");
    // A lookup gives up after `timeout` per query (A, then AAAA): a few fail in this time.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let during = admin.metrics().await;
    let failures_during = metric(&during, "tether_discovery_failures_total");
    let lines_during = tether.stderr_lines();
    dns.signal("CONT");
    assert!(
        failures_during >= failures_before + 2,
        "lookups failed {failures_before} -> {failures_during}"
    );
    assert_eq!(metric(&during, "tether_discovery_backends"), 2);
    assert_eq!(pool_ids(&admin).await, [a.id.clone(), c.id.clone()]);
    let logged = lines_during
        .iter()
        .filter(|l| l.contains("DNS lookup failed"))
        .count();
    assert_eq!(
        logged,
        1,
        "one failure logged for {} failed lookups:\n{}",
        failures_during - failures_before,
        tether.stderr_text()
    );
    tether
        .wait_for_line(WITHIN, |l| l.contains("DNS lookup answers again"))
        .await;
    let before = a.requests();
    wait_until("a still serves after the outage", || async {
        a.requests() > before
    })
    .await;

    let (sent, failed) = load.finish().await;
    assert!(
        failed.is_empty(),
        "{} of {sent} requests failed: {failed:?}",
        failed.len()
    );
    assert!(sent > 100, "only {sent} requests under load");
    for backend in [a, b, c] {
        assert!(backend.requests() > 0, "{} got no traffic", backend.id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_addr_follows_its_answer_and_the_old_address_drains() {
    if skip() {
        return;
    }
    let _timed = serial::timed().await;
    let backends = backends_on_one_port(2).await;
    let (old, new) = (&backends[0], &backends[1]);
    let dns = Dnsmasq::start(&[(&old.addr.ip().to_string(), "web.test")], &[])
        .await
        .expect("dnsmasq");
    let pool = Pool::app().set("drain_quiet", "500ms");
    let config = resolver(
        Config::new().admin().listener(Listener::web()).pool(pool),
        &dns,
    )
    .to_string()
        + &format!(
            "\n[[pool.app.backend]]\nid = \"web\"\naddr = \"web.test:{}\"\n",
            old.addr.port()
        );
    let tether = Tether::start(&config).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));
    assert_eq!(client.get("/").await.backend_id(), old.id);
    let status = admin.expect_backend("app", "web").await;
    assert_eq!(status["addr"], old.addr.to_string());

    dns.set_hosts(&[(&new.addr.ip().to_string(), "web.test")]);
    wait_until("requests follow web.test to its new address", || async {
        let reply = client.get("/").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.backend_id() == new.id
    })
    .await;
    // The admin API cannot take over a backend DNS names.
    let refused = admin.delete("/pools/app/backends/web").await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("comes from DNS"),
        "{}",
        refused.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn localhost_resolves_through_the_system_resolver() {
    let backend = TestBackend::start("local").await;
    let config = format!(
        "{}\n[[pool.app.backend]]\nid = \"local\"\naddr = \"localhost:{}\"\n",
        Config::new().listener(Listener::web()).pool(Pool::app()),
        backend.addr.port()
    );
    let tether = Tether::start(&config).await;
    let reply = Http1::new(tether.addr("web")).get("/").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.backend_id(), "local");
}

#[tokio::test(flavor = "multi_thread")]
async fn srv_records_give_ports_and_weights() {
    if skip() {
        return;
    }
    let heavy = TestBackend::start("heavy").await;
    let light = TestBackend::start("light").await;
    let srv = |target: &str, port: u16, weight: u16| {
        format!("--srv-host=_http._tcp.{NAME},{target},{port},0,{weight}")
    };
    let dns = Dnsmasq::start(
        &[
            ("127.0.0.1", "heavy.app.test"),
            ("127.0.0.1", "light.app.test"),
        ],
        &[
            srv("heavy.app.test", heavy.addr.port(), 3),
            srv("light.app.test", light.addr.port(), 1),
        ],
    )
    .await
    .expect("dnsmasq");
    let pool = Pool::app().set_in("discover", "srv", format!("_http._tcp.{NAME}"));
    let config = resolver(
        Config::new().admin().listener(Listener::web()).pool(pool),
        &dns,
    );
    let tether = Tether::start(&config).await;
    let admin = Admin::new(tether.addr("admin"));
    for (backend, weight) in [(&heavy, 3), (&light, 1)] {
        let status = admin.expect_backend("app", &backend.addr.to_string()).await;
        assert_eq!(status["weight"], weight, "{status}");
    }
    let client = Http1::new(tether.addr("web"));
    for _ in 0..40 {
        assert_eq!(client.get("/").await.status, 200);
    }
    let (h, l) = (heavy.requests(), light.requests());
    assert_eq!((h, l), (30, 10), "a 3:1 weighted round robin");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_keeps_discovered_backends_and_looks_a_changed_name_up() {
    if skip() {
        return;
    }
    let _timed = serial::timed().await;
    let backends = backends_on_one_port(2).await;
    let (a, b) = (&backends[0], &backends[1]);
    let dns = Dnsmasq::start(
        &[
            (&a.addr.ip().to_string(), NAME),
            (&b.addr.ip().to_string(), "other.test"),
        ],
        &[],
    )
    .await
    .expect("dnsmasq");
    let config = |name: &str| {
        let pool = Pool::app()
            .set("drain_quiet", "300ms")
            .set_in("discover", "dns", name)
            .set_in("discover", "port", i64::from(a.addr.port()));
        resolver(
            Config::new().admin().listener(Listener::web()).pool(pool),
            &dns,
        )
    };
    let tether = Tether::start(&config(NAME)).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));
    assert_eq!(client.get("/").await.backend_id(), a.id);

    // The same file: the running answer is kept, nothing is removed and re-added.
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().contains("no changes"), "{}", reply.text());
    assert_eq!(pool_ids(&admin).await, vec![a.id.clone()]);

    // Another name: looked up before the new config is stored, the old address drains.
    tether.rewrite_config(config("other.test"));
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    assert!(
        text.contains(&format!("backend {} added", b.id))
            && text.contains(&format!("backend {} removed", a.id)),
        "{text}"
    );
    assert_eq!(client.get("/").await.backend_id(), b.id);
    admin.wait_gone("app", &a.id, WITHIN).await;
    assert_eq!(pool_ids(&admin).await, vec![b.id.clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_answer_never_empties_the_pool_and_a_name_unknown_at_start_is_picked_up() {
    if skip() {
        return;
    }
    let _timed = serial::timed().await;
    let backends = backends_on_one_port(1).await;
    let a = &backends[0];
    // The name does not exist yet: tether starts anyway, with nothing to send requests to.
    let dns = Dnsmasq::start(&[], &[]).await.expect("dnsmasq");
    let pool = Pool::app()
        .set_in("discover", "dns", NAME)
        .set_in("discover", "port", i64::from(a.addr.port()))
        .set_in("discover", "interval", "1s");
    let config = resolver(
        Config::new().admin().listener(Listener::web()).pool(pool),
        &dns,
    );
    let tether = Tether::start(&config).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));
    assert_eq!(client.get("/").await.status, 503);
    assert!(pool_ids(&admin).await.is_empty());

    set_hosts(&dns, &[a]);
    wait_until(
        "the name, once it exists, gives the pool its backend",
        || async { client.get("/").await.status == 200 },
    )
    .await;

    // The name loses every address: that is a failed lookup, and the pool keeps serving.
    let failures_before = metric(&admin.metrics().await, "tether_discovery_failures_total");
    dns.set_hosts(&[]);
    let load = Load::start(Http1::new(tether.addr("web")));
    wait_until("empty answers are counted as failures", || async {
        metric(&admin.metrics().await, "tether_discovery_failures_total") >= failures_before + 3
    })
    .await;
    let (sent, failed) = load.finish().await;
    assert!(
        failed.is_empty(),
        "{} of {sent} requests failed: {failed:?}",
        failed.len()
    );
    assert_eq!(pool_ids(&admin).await, vec![a.id.clone()]);
    let metrics = admin.metrics().await;
    assert_eq!(metric(&metrics, "tether_discovery_backends"), 1);
    assert_eq!(admin.state("app", &a.id).await.as_deref(), Some("up"));
}
