//! Hot reload (POST /reload and SIGHUP) applies a good file without a restart and refuses a bad one whole, with its reasons, while the running config keeps serving.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::Value;

use crate::common::admin::{count, ids_in, json};
use crate::common::client::Reply;
use crate::common::config::{Config, Listener, Pool};
use crate::common::tether::field;
use crate::common::{body, Admin, Http1, RawConn, TestBackend, Tether};

/// A config with `listeners` (name, all on port 0, all to `app`) and `backends` in `app`.
fn config(listeners: &[&str], backends: &[&TestBackend]) -> String {
    let pool = backends.iter().fold(
        Pool::app()
            .set("balance", "round_robin")
            .set("drain_quiet", "300ms"),
        |pool, b| pool.backend(&b.id, b.addr),
    );
    listeners
        .iter()
        .fold(Config::new().admin(), |config, name| {
            config.listener(Listener::new(name, "app"))
        })
        .pool(pool)
        .to_string()
}

/// `good` with two problems serde accepts but validation refuses, each with its key path.
fn broken(good: &str) -> String {
    good.replacen("balance = \"round_robin\"", "balance = \"fastest\"", 1)
        .replacen("drain_quiet = \"300ms\"", "drain_quiet = \"soon\"", 1)
}

/// (id, addr, state) of every backend of `app`: what a refused reload must leave alone.
fn backends(status: &Value) -> Vec<(String, String, String)> {
    status["pools"]["app"]["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| {
            (
                b["id"].as_str().unwrap().to_string(),
                b["addr"].as_str().unwrap().to_string(),
                b["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Sends `n` GETs through `addr`, asserting 200s; returns the ids that answered, in order.
async fn serve(client: &Http1, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let reply = client.get(&format!("/r/{i}")).await;
        assert_eq!(reply.status, 200, "GET {i}: {}", reply.text());
        ids.push(reply.backend_id());
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_file_is_refused_with_every_problem_and_the_old_config_keeps_serving() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let good = config(&["web"], &[&a, &b]);
    let tether = Tether::start(&good).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));
    serve(&client, 10).await;
    let before = admin.status().await;

    // Validation problems (two of them, both must be named) and a syntax error.
    tether.rewrite_config(broken(&good).replace(&b.addr.to_string(), "127.0.0.1:99999"));
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let error = json(&reply)["error"].as_str().unwrap_or("").to_string();
    for key in [
        "pool.app.balance",
        "pool.app.drain_quiet",
        "pool.app.backend[1].addr",
    ] {
        let lines: Vec<&str> = error.lines().filter(|l| l.contains(key)).collect();
        assert_eq!(
            lines.len(),
            1,
            "{key} not on a line of its own in {error:?}"
        );
    }

    tether.rewrite_config("[[listener]\nname = ");
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(json(&reply)["error"].is_string(), "{}", reply.text());

    let ids = serve(&client, 20).await;
    assert_eq!(ids.iter().filter(|id| *id == "a").count(), 10, "{ids:?}");
    let after = admin.status().await;
    assert_eq!(backends(&after), backends(&before));
    assert!(tether
        .stderr_lines()
        .iter()
        .all(|l| !l.contains("reloaded")));
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_refuses_a_bad_file_and_applies_a_good_one() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let c = TestBackend::start("c").await;
    let good = config(&["web"], &[&a, &b]);
    let mut tether = Tether::start(&good).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));
    let before = admin.status().await;

    tether.rewrite_config(broken(&good));
    tether.signal("HUP");
    let line = tether
        .wait_for_line(Duration::from_secs(5), |l| l.contains("reload refused"))
        .await;
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("pool.app.balance"), "{line}");
    assert!(tether.try_exit().is_none(), "tether exited on a bad SIGHUP");
    serve(&client, 10).await;
    assert_eq!(backends(&admin.status().await), backends(&before));

    // The positive control: the same signal with a good file does apply it.
    tether.rewrite_config(config(&["web"], &[&a, &b, &c]));
    tether.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while admin.backend("app", "c").await.is_none() {
        assert!(Instant::now() < deadline, "SIGHUP did not add backend c");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ids = serve(&client, 30).await;
    assert_eq!(ids.iter().filter(|id| *id == "c").count(), 10, "{ids:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_good_reload_adds_and_drains_backends_and_keeps_unchanged_ones_counting() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let c = TestBackend::start("c").await;
    let tether = Tether::start(config(&["web"], &[&a, &b])).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));
    serve(&client, 20).await;
    let a_before = count(&admin.expect_backend("app", "a").await, "requests");
    assert_eq!(a_before, 10);

    // Keep a request open on b so its drain is visible in /status.
    let hold_client = Http1::new(tether.addr("web"));
    let mut held = None;
    for _ in 0..4 {
        let request = hold_client
            .request(Method::GET, "/hold")
            .body(body::empty())
            .expect("request");
        let response = hold_client.send(request).await.expect("/hold headers");
        if response.headers()["x-backend-id"] == "b" {
            held = Some(response);
            break;
        }
        a.release_holds();
        Reply::read(response).await;
    }
    let held = held.expect("round robin put a /hold on b within 4 tries");

    tether.rewrite_config(config(&["web"], &[&a, &c]));
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = json(&reply);
    assert_eq!(body["status"], "reloaded", "{body}");

    let status = admin.status().await;
    assert_eq!(ids_in(&status, "app"), ["a", "c", "b"], "{status}");
    assert_eq!(admin.state("app", "b").await.as_deref(), Some("draining"));
    assert_eq!(admin.state("app", "c").await.as_deref(), Some("up"));

    let ids = serve(&client, 20).await;
    assert!(
        !ids.iter().any(|id| id == "b"),
        "b took new requests: {ids:?}"
    );
    // Not 10: while b drains, its turns in the round-robin cycle fall to the next backend.
    assert!(ids.iter().filter(|id| *id == "c").count() >= 5, "{ids:?}");
    let a_after = count(&admin.expect_backend("app", "a").await, "requests");
    assert_eq!(
        a_after,
        a.requests(),
        "a's counters were reset by the reload (tether counts {a_after}, a saw {})",
        a.requests()
    );
    assert!(a_after >= a_before + 10, "{a_after} after {a_before}");

    b.release_holds();
    let held = tokio::time::timeout(Duration::from_secs(10), Reply::read(held))
        .await
        .expect("held body ends once released");
    assert_eq!(
        held.text(),
        "held\nreleased\n",
        "b's in-flight request was cut"
    );
    admin.wait_gone("app", "b", Duration::from_secs(5)).await;
    assert_eq!(ids_in(&admin.status().await, "app"), ["a", "c"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_starts_added_listeners_and_stops_removed_ones_without_cutting_their_connections()
{
    let a = TestBackend::start("a").await;
    let tether = Tether::start(config(&["web", "old"], &[&a])).await;
    let admin = Admin::new(tether.addr("admin"));
    let (web, old) = (tether.addr("web"), tether.addr("old"));

    let mut open = RawConn::connect(old).await;
    let get = b"GET /before HTTP/1.1\r\nhost: t\r\n\r\n";
    open.send(get).await.unwrap();
    assert_eq!(open.read_response().await.unwrap().status, 200);

    tether.rewrite_config(config(&["web", "new"], &[&a]));
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let new = tether.wait_listener("new", Duration::from_secs(5)).await;
    let reply = Http1::new(new).get("/via-new").await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(old).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "removed listener {old} still accepts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tether
        .wait_for_line(Duration::from_secs(2), |l| {
            l.contains("stopped accepting") && field(l, "listener.name").as_deref() == Some("old")
        })
        .await;

    // The connection accepted before the reload is still served.
    open.send(b"GET /after HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(open.read_response().await.unwrap().status, 200);

    // The unchanged listener was never rebound.
    let reply = Http1::new(web).get("/via-web").await;
    assert_eq!(reply.status, 200);
    let web_binds = tether
        .stderr_lines()
        .iter()
        .filter(|l| l.contains("listening") && field(l, "listener.name").as_deref() == Some("web"))
        .count();
    assert_eq!(web_binds, 1);
}
