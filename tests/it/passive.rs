//! Passive health: consecutive failures seen in real traffic eject a backend, which then gets no more attempts while clients keep being served.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::admin::count;
use crate::common::config::{Config, Listener, Pool};
use crate::common::serial;
use crate::common::tether::field;
use crate::common::{dead_addr, Admin, Http1, ResetBackend, TestBackend, Tether};

const FAILURES: u64 = 3;

/// Pool `app` (round robin, 1 s connects) ejecting a backend after
/// [`FAILURES`] for `eject`.
fn passive(on_5xx: bool, eject: &str) -> Pool {
    Pool::app()
        .set("balance", "round_robin")
        .set("connect_timeout", "1s")
        .set_in("passive", "failures", FAILURES as i64)
        .set_in("passive", "on_5xx", on_5xx)
        .set_in("passive", "eject", eject)
        .set_in("passive", "max_eject", "5m")
}

/// A config whose pool is `pool` with `backends` added.
fn config_with(pool: Pool, backends: &[(&str, SocketAddr)]) -> Config {
    Config::new()
        .admin()
        .listener(Listener::web())
        .pool(pool.backends(backends))
}

/// A config ejecting for 30 s (longer than any test) with these backends.
fn config(on_5xx: bool, backends: &[(&str, SocketAddr)]) -> Config {
    config_with(passive(on_5xx, "30s"), backends)
}

/// Sends `n` GETs; statuses (with the answering backend, if any) counted.
async fn send(client: &Http1, n: usize) -> BTreeMap<(u16, String), usize> {
    let mut seen = BTreeMap::new();
    for i in 0..n {
        let reply = client.get(&format!("/r/{i}")).await;
        let by = reply.headers.get("x-backend-id").map_or_else(
            || "(tether)".to_string(),
            |v| v.to_str().unwrap().to_string(),
        );
        *seen.entry((reply.status.as_u16(), by)).or_insert(0) += 1;
    }
    seen
}

fn only(status: u16, id: &str, n: usize) -> BTreeMap<(u16, String), usize> {
    BTreeMap::from([((status, id.to_string()), n)])
}

async fn assert_ejected(tether: &Tether, admin: &Admin, id: &str) {
    let b = admin.expect_backend("app", id).await;
    assert_eq!(b["state"], "down", "{id} not ejected: {b}");
    assert_eq!(count(&b, "ejections"), 1, "{b}");
    let line = tether
        .wait_for_line(Duration::from_secs(2), |l| {
            l.contains("backend ejected after consecutive failures")
        })
        .await;
    assert_eq!(field(&line, "backend.id").as_deref(), Some(id), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusing_backend_is_ejected_and_clients_never_see_its_failures() {
    let live = TestBackend::start("live").await;
    let tether = Tether::start(config(false, &[("dead", dead_addr()), ("live", live.addr)])).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    assert_eq!(send(&client, 30).await, only(200, "live", 30));
    assert_ejected(&tether, &admin, "dead").await;
    let dead = admin.expect_backend("app", "dead").await;
    assert_eq!(count(&dead, "connect_errors"), FAILURES, "{dead}");

    assert_eq!(send(&client, 30).await, only(200, "live", 30));
    let dead = admin.expect_backend("app", "dead").await;
    assert_eq!(
        count(&dead, "connect_errors"),
        FAILURES,
        "an ejected backend was tried again: {dead}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_that_resets_every_connection_is_ejected_and_clients_never_see_it() {
    let reset = ResetBackend::start().await;
    let live = TestBackend::start("live").await;
    let tether = Tether::start(config(false, &[("reset", reset.addr), ("live", live.addr)])).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    let first = send(&client, 30).await;
    assert_ejected(&tether, &admin, "reset").await;
    let attempts = reset.accepted();
    assert!(
        attempts >= FAILURES,
        "ejected after only {attempts} connections"
    );
    let b = admin.expect_backend("app", "reset").await;
    let (connect, upstream) = (count(&b, "connect_errors"), count(&b, "upstream_errors"));
    assert_eq!(connect + upstream, FAILURES, "{b}");
    // A reset before the request is written is a connect failure; one after it, before any
    // response byte, is an upstream failure, and these GETs (safe, bodiless) are replayed on
    // `live` (retry_idempotent, on by default). Either way the client sees no error.
    assert_eq!(first, only(200, "live", 30), "{b}");

    assert_eq!(send(&client, 30).await, only(200, "live", 30));
    assert_eq!(
        reset.accepted(),
        attempts,
        "an ejected backend got new connections"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_on_5xx_a_backend_answering_500_is_ejected() {
    let bad = TestBackend::start("bad").await;
    bad.answer_with(500);
    let good = TestBackend::start("good").await;
    let tether = Tether::start(config(true, &[("bad", bad.addr), ("good", good.addr)])).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    let seen = send(&client, 20).await;
    // A 500 is an answer, passed through; only the streak of them ejects.
    assert_eq!(
        seen,
        BTreeMap::from([
            ((200, "good".to_string()), 20 - FAILURES as usize),
            ((500, "bad".to_string()), FAILURES as usize),
        ])
    );
    assert_eq!(bad.requests(), FAILURES);
    assert_ejected(&tether, &admin, "bad").await;

    assert_eq!(send(&client, 20).await, only(200, "good", 20));
    assert_eq!(bad.requests(), FAILURES, "an ejected backend got requests");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_on_5xx_a_backend_answering_500_stays_in() {
    let bad = TestBackend::start("bad").await;
    bad.answer_with(500);
    let good = TestBackend::start("good").await;
    let tether = Tether::start(config(false, &[("bad", bad.addr), ("good", good.addr)])).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    let seen = send(&client, 20).await;
    assert_eq!(
        seen,
        BTreeMap::from([
            ((200, "good".to_string()), 10),
            ((500, "bad".to_string()), 10)
        ])
    );
    let b = admin.expect_backend("app", "bad").await;
    assert_eq!(b["state"], "up", "{b}");
    assert_eq!(count(&b, "ejections"), 0, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_active_checks_an_ejected_backend_must_pass_them_again() {
    let _timed = serial::timed().await;
    let bad = TestBackend::start("bad").await;
    bad.answer_with(500);
    // Failing its checks from the start, but fall = 100 keeps active checks alone from taking
    // it out during this test: only the ejection can.
    bad.set_health(503);
    let good = TestBackend::start("good").await;
    let pool = passive(true, "200ms")
        .set_in("health", "check", "http")
        .set_in("health", "path", "/healthz")
        .set_in("health", "interval", "100ms")
        .set_in("health", "timeout", "80ms")
        .set_in("health", "rise", 2)
        .set_in("health", "fall", 100);
    let tether = Tether::start(&config_with(
        pool,
        &[("bad", bad.addr), ("good", good.addr)],
    ))
    .await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    send(&client, 10).await;
    assert_eq!(bad.requests(), FAILURES);
    assert_ejected(&tether, &admin, "bad").await;

    // Five times the ejection period: without the re-check it would be back after 200 ms.
    let window = Instant::now() + Duration::from_secs(1);
    while Instant::now() < window {
        assert_eq!(
            admin.state("app", "bad").await.as_deref(),
            Some("down"),
            "an ejected backend came back without passing its health checks"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(send(&client, 10).await, only(200, "good", 10));

    bad.set_health(200);
    admin
        .wait_state("app", "bad", "up", Duration::from_secs(2))
        .await;
}
