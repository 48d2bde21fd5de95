//! Active health checks decide which backends are up: a failing check takes a backend out within fall x interval and routes nothing to it, and rise passing checks bring it (or a newly added one) in.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::admin::count;
use crate::common::config::{Config, Listener, Pool};
use crate::common::serial;
use crate::common::tether::field;
use crate::common::{dead_addr, Admin, Http1, TestBackend, Tether};

const INTERVAL: Duration = Duration::from_millis(200);
const RISE: u32 = 2;
const FALL: u32 = 2;
/// Scheduling, the probe itself and /status polling on a loaded 2-core debug build.
const SLACK: Duration = Duration::from_millis(1500);

fn config(check: &str, backends: &[(&str, SocketAddr)]) -> Config {
    let interval = format!("{}ms", INTERVAL.as_millis());
    let pool = Pool::app()
        .set("balance", "round_robin")
        .set("connect_timeout", "1s");
    let pool = match check {
        "http" => pool
            .set_in("health", "check", "http")
            .set_in("health", "path", "/healthz")
            .set_in("health", "expect", "200-399"),
        _ => pool.set_in("health", "check", "tcp"),
    };
    let pool = pool
        .set_in("health", "interval", interval)
        .set_in("health", "timeout", "100ms")
        .set_in("health", "rise", RISE)
        .set_in("health", "fall", FALL)
        .backends(backends);
    Config::new().admin().listener(Listener::web()).pool(pool)
}

/// Sends `n` GETs and returns how many each backend answered, asserting every one was a 200.
async fn spread(client: &Http1, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut by_backend = std::collections::BTreeMap::new();
    for i in 0..n {
        let reply = client.get(&format!("/r/{i}")).await;
        assert_eq!(reply.status, 200, "GET {i}: {}", reply.text());
        *by_backend.entry(reply.backend_id()).or_insert(0) += 1;
    }
    by_backend
}

fn logged_for(line: &str, id: &str) -> bool {
    field(line, "backend.id").as_deref() == Some(id)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_health_endpoint_takes_the_backend_out_until_rise_checks_pass() {
    let _timed = serial::timed().await;
    let flaky = TestBackend::start("flaky").await;
    let steady = TestBackend::start("steady").await;
    let tether = Tether::start(config(
        "http",
        &[("flaky", flaky.addr), ("steady", steady.addr)],
    ))
    .await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    // Both serve while healthy, and the checker is really probing /healthz.
    let before = spread(&client, 10).await;
    assert_eq!(before.get("flaky"), Some(&5), "{before:?}");
    let probe_deadline = Instant::now() + SLACK;
    while flaky.health_checks() == 0 {
        assert!(
            Instant::now() < probe_deadline,
            "no /healthz probe reached flaky"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    flaky.set_health(503);
    let went_down = admin
        .wait_state("app", "flaky", "down", INTERVAL * FALL + SLACK)
        .await;
    // Two failing probes, one interval apart at least, both after the flip.
    assert!(
        went_down >= INTERVAL * (FALL - 1),
        "down after {went_down:?}: sooner than {FALL} checks {INTERVAL:?} apart allow"
    );
    tether
        .wait_for_line(SLACK, |l| {
            l.contains("health check failed: backend down") && logged_for(l, "flaky")
        })
        .await;
    assert_eq!(admin.state("app", "steady").await.as_deref(), Some("up"));

    let flaky_served = flaky.requests();
    let flaky_status_requests = count(&admin.expect_backend("app", "flaky").await, "requests");
    let while_down = spread(&client, 40).await;
    assert_eq!(
        while_down.get("steady"),
        Some(&40),
        "a down backend took traffic: {while_down:?}"
    );
    assert_eq!(
        flaky.requests(),
        flaky_served,
        "flaky received requests while down"
    );
    assert_eq!(
        count(&admin.expect_backend("app", "flaky").await, "requests"),
        flaky_status_requests
    );

    flaky.set_health(200);
    let came_up = admin
        .wait_state("app", "flaky", "up", INTERVAL * RISE + SLACK)
        .await;
    assert!(
        came_up >= INTERVAL * (RISE - 1),
        "up after {came_up:?}: sooner than {RISE} passing checks {INTERVAL:?} apart allow"
    );
    tether
        .wait_for_line(SLACK, |l| {
            l.contains("health check passed: backend up") && logged_for(l, "flaky")
        })
        .await;

    let after = spread(&client, 20).await;
    assert!(
        after.get("flaky").copied().unwrap_or(0) >= 5,
        "flaky is up again but took little traffic: {after:?}"
    );
    let flaky_status = admin.expect_backend("app", "flaky").await;
    assert_eq!(
        count(&flaky_status, "health_transitions"),
        2,
        "{flaky_status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tcp_check_marks_a_dead_address_down_and_it_is_never_tried() {
    let _timed = serial::timed().await;
    let live = TestBackend::start("live").await;
    let tether = Tether::start(config("tcp", &[("dead", dead_addr()), ("live", live.addr)])).await;
    let admin = Admin::new(tether.addr("admin"));

    // Measured from tether's start: the first probe runs at once, the second one interval on.
    admin
        .wait_state("app", "dead", "down", INTERVAL * FALL + SLACK)
        .await;
    assert_eq!(admin.state("app", "live").await.as_deref(), Some("up"));
    tether
        .wait_for_line(SLACK, |l| {
            l.contains("health check failed: backend down") && logged_for(l, "dead")
        })
        .await;

    let client = Http1::new(tether.addr("web"));
    let served = spread(&client, 20).await;
    assert_eq!(served.get("live"), Some(&20), "{served:?}");
    let dead = admin.expect_backend("app", "dead").await;
    assert_eq!(
        count(&dead, "connect_errors"),
        0,
        "a backend marked down by its check must not be tried: {dead}"
    );
    assert_eq!(dead["state"], "down", "{dead}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_added_at_runtime_starts_down_until_it_passes_rise_checks() {
    let _timed = serial::timed().await;
    let first = TestBackend::start("first").await;
    let late = TestBackend::start("late").await;
    // Failing until the test says otherwise: were it to start up, it would stay up for at
    // least fall x interval, and take traffic meanwhile.
    late.set_health(503);
    let tether = Tether::start(config("http", &[("first", first.addr)])).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    let put = format!(r#"{{"addr": "{}"}}"#, late.addr);
    let reply = admin.put("/pools/app/backends/late", &put).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(admin.state("app", "late").await.as_deref(), Some("down"));
    let served = spread(&client, 20).await;
    assert_eq!(served.get("first"), Some(&20), "{served:?}");
    assert_eq!(late.requests(), 0);

    late.set_health(200);
    let came_up = admin
        .wait_state("app", "late", "up", INTERVAL * RISE + SLACK)
        .await;
    assert!(
        came_up >= INTERVAL * (RISE - 1),
        "up after {came_up:?}: sooner than {RISE} passing checks {INTERVAL:?} apart allow"
    );
    let served = spread(&client, 20).await;
    assert_eq!(served.get("late"), Some(&10), "{served:?}");
}
