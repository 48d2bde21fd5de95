//! A pool's `max_connections` caps the requests in flight to each backend; up to `max_pending`
//! more wait for a slot, each for at most `queue_timeout`; the rest are answered 503 at once,
//! counted as `queue_full`, and never count against the backend's health.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::common::admin::count;
use crate::common::config::{Config, Listener, Pool};
use crate::common::{Admin, Http1, TestBackend, Tether};

fn config(backend: &TestBackend, queue_timeout: &str) -> Config {
    Config::new().admin().listener(Listener::web()).pool(
        Pool::app()
            .set("max_connections", 2)
            .set("max_pending", 2)
            .set("queue_timeout", queue_timeout)
            .set_in("passive", "failures", 1)
            .set_in("passive", "eject", "30s")
            .backend("a", backend.addr),
    )
}

/// `n` concurrent `GET /slow?ms=ms`: (status, seconds until the answer) of each.
async fn concurrent(client: &Http1, n: usize, ms: u64) -> Vec<(u16, f64)> {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        set.spawn(async move {
            let start = Instant::now();
            let reply = client.get(&format!("/slow?ms={ms}")).await;
            (reply.status.as_u16(), start.elapsed().as_secs_f64())
        });
    }
    let mut out = Vec::new();
    while let Some(done) = set.join_next().await {
        out.push(done.expect("client"));
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_cap_requests_wait_then_past_the_queue_they_get_503() {
    let _serial = crate::common::serial::timed().await;
    let backend = TestBackend::start("a").await;
    let tether = Tether::start(config(&backend, "300ms")).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    // 2 in flight, 2 waiting (their 300 ms run out before a slot frees at 800 ms), 2 refused.
    let got = concurrent(&client, 6, 800).await;
    let statuses: Vec<u16> = got.iter().map(|g| g.0).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 2, "{got:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 503).count(), 4, "{got:?}");
    let refused_at_once = got.iter().filter(|g| g.0 == 503 && g.1 < 0.25).count();
    assert_eq!(
        refused_at_once, 2,
        "queue full: refused without waiting: {got:?}"
    );
    assert!(
        backend.connections() <= 2,
        "{} connections to a backend capped at 2",
        backend.connections()
    );
    let b = admin.expect_backend("app", "a").await;
    assert_eq!(count(&b, "queue_full"), 4, "{b}");
    assert_eq!(
        count(&b, "ejections"),
        0,
        "a full queue is not ill health: {b}"
    );
    assert_eq!(b["state"], "up", "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_request_is_served_when_a_slot_frees_in_time() {
    let _serial = crate::common::serial::timed().await;
    let backend = TestBackend::start("a").await;
    let tether = Tether::start(config(&backend, "5s")).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    let got = concurrent(&client, 4, 300).await;
    assert!(got.iter().all(|g| g.0 == 200), "{got:?}");
    // Two served at once, two after them: the queue held them back.
    assert!(got[2].1 >= 0.55 && got[3].1 >= 0.55, "{got:?}");
    let b = admin.expect_backend("app", "a").await;
    assert_eq!(count(&b, "queue_full"), 0, "{b}");
    assert_eq!(count(&b, "in_flight"), 0, "{b}");
    // The in-flight count came back down: the cap admits again.
    let start = Instant::now();
    assert_eq!(client.get("/").await.status, 200);
    assert!(start.elapsed() < Duration::from_secs(1));
}
