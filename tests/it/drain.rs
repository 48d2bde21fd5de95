//! Draining a backend sends new requests elsewhere, lets its in-flight request finish, ends in `drained`, and `enable` brings it back; with every backend out, `all_down = "fail"` answers 503.

use std::time::{Duration, Instant};

use crate::common::admin::{count, json};
use crate::common::client::Reply;
use crate::common::config::{Config, Listener, Pool};
use crate::common::serial;
use crate::common::tether::field;
use crate::common::{body, Admin, Http1, TestBackend, Tether};

const DRAIN_QUIET: Duration = Duration::from_millis(500);

fn config(a: &TestBackend, b: &TestBackend, all_down: &str) -> Config {
    Config::new().admin().listener(Listener::web()).pool(
        Pool::app()
            .set("balance", "round_robin")
            .set("drain_timeout", "30s")
            .set("drain_quiet", format!("{}ms", DRAIN_QUIET.as_millis()))
            .set("all_down", all_down)
            .backend(&a.id, a.addr)
            .backend(&b.id, b.addr),
    )
}

async fn action(admin: &Admin, id: &str, action: &str) -> serde_json::Value {
    let reply = admin
        .post(&format!("/pools/app/backends/{id}/{action}"))
        .await;
    assert_eq!(reply.status, 200, "{action} {id}: {}", reply.text());
    let body = json(&reply);
    assert_eq!(body["pool"], "app", "{body}");
    assert_eq!(body["id"], id, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drained_backend_finishes_its_slow_request_takes_no_new_ones_and_ends_drained() {
    let _timed = serial::timed().await;
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let tether = Tether::start(config(&a, &b, "route")).await;
    let admin = Admin::new(tether.addr("admin"));

    // A long request, open until the test releases it: its headers name the backend.
    let slow_client = Http1::new(tether.addr("web"));
    let request = slow_client
        .request(http::Method::GET, "/hold")
        .body(body::empty())
        .expect("request");
    let slow = slow_client.send(request).await.expect("/hold headers");
    assert_eq!(slow.status(), 200);
    let busy_id = slow.headers()["x-backend-id"].to_str().unwrap().to_string();
    let (busy, other) = if busy_id == "a" { (&a, &b) } else { (&b, &a) };
    assert_eq!(
        count(&admin.expect_backend("app", &busy.id).await, "in_flight"),
        1
    );

    let drain_started = Instant::now();
    let body = action(&admin, &busy.id, "drain").await;
    assert_eq!(body["state"], "draining", "{body}");

    let client = Http1::new(tether.addr("web"));
    let busy_before = busy.requests();
    for i in 0..20 {
        let reply = client.get(&format!("/r/{i}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(
            reply.backend_id(),
            other.id,
            "new request {i} went to the draining backend"
        );
    }
    assert_eq!(busy.requests(), busy_before);

    // Long past drain_quiet, the open request still holds the drain open.
    while drain_started.elapsed() < DRAIN_QUIET * 3 {
        let state = admin.state("app", &busy.id).await;
        assert_eq!(
            state.as_deref(),
            Some("draining"),
            "{} left draining with a request in flight",
            busy.id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    busy.release_holds();
    let slow = tokio::time::timeout(Duration::from_secs(10), Reply::read(slow))
        .await
        .expect("held body ends once released");
    assert_eq!(slow.status, 200);
    assert_eq!(
        slow.text(),
        "held\nreleased\n",
        "the in-flight request was cut"
    );

    admin
        .wait_state("app", &busy.id, "drained", Duration::from_secs(5))
        .await;
    let line = tether
        .wait_for_line(Duration::from_secs(2), |l| {
            l.contains("backend state changed") && field(l, "to").as_deref() == Some("drained")
        })
        .await;
    assert_eq!(
        field(&line, "backend.id").as_deref(),
        Some(busy.id.as_str()),
        "{line}"
    );
    assert_eq!(field(&line, "from").as_deref(), Some("draining"), "{line}");
    assert_eq!(admin.state("app", &other.id).await.as_deref(), Some("up"));

    let body = action(&admin, &busy.id, "enable").await;
    assert_eq!(body["state"], "up", "{body}");
    let busy_before = busy.requests();
    for i in 0..10 {
        let reply = client.get(&format!("/after/{i}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(
        busy.requests() - busy_before,
        5,
        "an enabled backend takes its round-robin share again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_draining_backend_is_drained_once_drain_quiet_has_passed() {
    let _timed = serial::timed().await;
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let tether = Tether::start(config(&a, &b, "route")).await;
    let admin = Admin::new(tether.addr("admin"));

    let started = Instant::now();
    assert_eq!(action(&admin, "a", "drain").await["state"], "draining");
    admin
        .wait_state("app", "a", "drained", DRAIN_QUIET + Duration::from_secs(3))
        .await;
    let since_start = started.elapsed();
    assert!(
        since_start >= DRAIN_QUIET,
        "drained {since_start:?} after the drain call, before drain_quiet ({DRAIN_QUIET:?})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_all_down_fail_a_pool_with_every_backend_disabled_answers_503() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let tether = Tether::start(config(&a, &b, "fail")).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    assert_eq!(action(&admin, "a", "disable").await["state"], "disabled");
    let reply = client.get("/").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.backend_id(), "b");

    assert_eq!(action(&admin, "b", "disable").await["state"], "disabled");
    for _ in 0..5 {
        let reply = client.get("/").await;
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert!(
            reply.headers.get("x-backend-id").is_none(),
            "a backend answered"
        );
    }
    assert_eq!(a.requests() + b.requests(), 1);

    assert_eq!(action(&admin, "a", "enable").await["state"], "up");
    let reply = client.get("/").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.backend_id(), "a");
}
