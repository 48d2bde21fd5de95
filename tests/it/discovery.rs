//! Backends from DNS against a real name server (dnsmasq on a loopback port): the answer
//! changes while load runs, an added address gets traffic, a removed one drains keeping its
//! pinned cookie clients until drained, a name server that stops answering or an answer
//! without addresses changes nothing, and no request fails throughout; an added address
//! proves itself to health checks first; every instance derives the same backend ids.

use std::time::{Duration, Instant};

use crate::common::affinity::{self, explain, set_cookies, Jar};
use crate::common::config::{Config, Listener, Pool};
use crate::common::dns::{
    backends_on_one_port, metric, pool_ids, resolver, set_hosts, skip, wait_until, Load, NAME,
    WITHIN,
};
use crate::common::dnsmasq::Dnsmasq;
use crate::common::serial;
use crate::common::{Admin, Http1, TestBackend, Tether};

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

#[tokio::test(flavor = "multi_thread")]
async fn an_added_address_proves_itself_to_health_checks_first() {
    if skip() {
        return;
    }
    let _timed = serial::timed().await;
    let backends = backends_on_one_port(2).await;
    let (a, b) = (&backends[0], &backends[1]);
    let dns = Dnsmasq::start(&[], &[]).await.expect("dnsmasq");
    set_hosts(&dns, &[a]);
    let pool = Pool::app()
        .set_in("discover", "dns", NAME)
        .set_in("discover", "port", i64::from(a.addr.port()))
        .set_in("health", "path", "/healthz")
        .set_in("health", "interval", "300ms")
        .set_in("health", "timeout", "200ms")
        .set_in("health", "rise", 3);
    let config = resolver(
        Config::new().admin().listener(Listener::web()).pool(pool),
        &dns,
    );
    let tether = Tether::start(&config).await;
    let admin = Admin::new(tether.addr("admin"));
    set_hosts(&dns, &[a, b]);
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + WITHIN;
    while seen.last().map(String::as_str) != Some("up") {
        assert!(
            Instant::now() < deadline,
            "b not up in time; states {seen:?}"
        );
        if let Some(state) = admin.state("app", &b.id).await {
            if seen.last() != Some(&state) {
                seen.push(state);
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(
        seen,
        ["down", "up"],
        "an added address starts down until it passes rise checks"
    );
    assert!(b.health_checks() >= 3, "{} checks", b.health_checks());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_derive_the_same_ids_so_a_cookie_from_one_works_on_the_other() {
    if skip() {
        return;
    }
    let backends = backends_on_one_port(3).await;
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let dns = Dnsmasq::start(&[], &[]).await.expect("dnsmasq");
    set_hosts(&dns, &refs);
    let pool = Pool::app()
        .set("affinity", "cookie")
        .set("explain", true)
        .set_in("cookie", "keys", vec!["shared-key-between-instances-0123"])
        .set_in("discover", "dns", NAME)
        .set_in("discover", "port", i64::from(backends[0].addr.port()));
    let config = resolver(Config::new().listener(Listener::web()).pool(pool), &dns);
    let first = Tether::start(&config).await;
    let second = Tether::start(&config).await;
    let (one, two) = (
        Http1::new(first.addr("web")),
        Http1::new(second.addr("web")),
    );
    for n in 0..3 {
        let mut jar = Jar::app();
        let pinned = explain(&jar.get(&one, &format!("/one/{n}")).await).backend;
        let there = explain(&jar.get(&two, &format!("/two/{n}")).await);
        assert_eq!(
            (there.why.as_str(), there.backend.as_str()),
            ("hit", pinned.as_str()),
            "client {n}: the other instance does not honour the pin"
        );
    }
}
