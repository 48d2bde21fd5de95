//! A backend id re-added (admin PUT or reload) while its previous instance still drains is one
//! backend: listed once in `/status`, one set of series in `/metrics` (checked with a
//! Prometheus parser), its counters carried on.

use std::collections::HashSet;
use std::time::Duration;

use http::StatusCode;
use hyper::body::Incoming;

use crate::common::admin::{count, ids_in};
use crate::common::config::{Config, Listener, Pool};
use crate::common::{body, Admin, Http1, TestBackend, Tether};

fn config(backends: &[(&str, std::net::SocketAddr)]) -> Config {
    Config::new().admin().listener(Listener::web()).pool(
        Pool::app()
            .set("balance", "round_robin")
            .set("drain_quiet", "300ms")
            .set("drain_timeout", "30s")
            .backends(backends),
    )
}

/// Opens `/hold` requests (bounded) until one is held by backend `id`; returns them all, so
/// their bodies stay open.
async fn hold_on(client: &Http1, id: &str) -> Vec<http::Response<Incoming>> {
    let mut held = Vec::new();
    for _ in 0..8 {
        let request = client
            .request(http::Method::GET, "/hold")
            .body(body::empty())
            .expect("request");
        let resp = client.send(request).await.expect("/hold headers");
        assert_eq!(resp.status(), 200);
        let by = resp.headers()["x-backend-id"].to_str().unwrap().to_string();
        held.push(resp);
        if by == id {
            return held;
        }
    }
    panic!("no /hold request reached {id}");
}

/// Asserts `/metrics` parses and no two samples share a metric name and label set.
async fn assert_valid_metrics(admin: &Admin) {
    let text = admin.metrics().await;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("/metrics parses");
    let mut seen = HashSet::new();
    for s in &scrape.samples {
        let key = format!("{}{{{}}}", s.metric, s.labels);
        assert!(
            seen.insert(key.clone()),
            "duplicate series {key} in:\n{text}"
        );
    }
    // The parser folds histogram lines together: check every raw series line as well.
    let mut lines = HashSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let series = line.rsplit_once(' ').expect("sample line").0;
        assert!(
            lines.insert(series),
            "duplicate series {series} in:\n{text}"
        );
    }
}

async fn assert_listed_once(admin: &Admin, id: &str) -> serde_json::Value {
    let status = admin.status().await;
    let ids = ids_in(&status, "app");
    assert_eq!(
        ids.iter().filter(|i| *i == id).count(),
        1,
        "{id} listed {ids:?}: {status}"
    );
    crate::common::admin::backend_in(&status, "app", id)
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_deleted_and_put_back_while_draining_is_one_backend() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let tether = Tether::start(config(&[("a", a.addr), ("b", b.addr)])).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));
    let held = hold_on(&client, "b").await;
    let before = count(&admin.expect_backend("app", "b").await, "requests");

    let reply = admin.delete("/pools/app/backends/b").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(admin.state("app", "b").await.as_deref(), Some("draining"));
    let put = format!("{{\"addr\": \"{}\"}}", b.addr);
    let reply = admin.put("/pools/app/backends/b", &put).await;
    assert!(reply.status.is_success(), "{}", reply.text());

    let entry = assert_listed_once(&admin, "b").await;
    assert_eq!(entry["state"], "up", "re-added: takes new clients: {entry}");
    assert!(
        count(&entry, "requests") >= before,
        "counters lost: {entry}"
    );
    assert_eq!(count(&entry, "in_flight"), 1, "{entry}");
    assert_valid_metrics(&admin).await;

    b.release_holds();
    a.release_holds();
    drop(held);
    for i in 0..4 {
        assert_eq!(client.get(&format!("/r/{i}")).await.status, 200);
    }
    assert_listed_once(&admin, "b").await;
    assert_valid_metrics(&admin).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_moved_by_reload_while_its_old_address_drains_is_listed_once() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let b2 = TestBackend::start("b2").await;
    let tether = Tether::start(config(&[("a", a.addr), ("b", b.addr)])).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));
    let held = hold_on(&client, "b").await;
    let before = count(&admin.expect_backend("app", "b").await, "requests");

    tether.rewrite_config(config(&[("a", a.addr), ("b", b2.addr)]));
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    let entry = assert_listed_once(&admin, "b").await;
    assert_eq!(entry["addr"], b2.addr.to_string(), "{entry}");
    assert_eq!(
        count(&entry, "in_flight"),
        1,
        "the old instance's request: {entry}"
    );
    let old = &entry["draining_instances"][0];
    assert_eq!(old["addr"], b.addr.to_string(), "{entry}");
    assert_eq!(old["state"], "draining", "{entry}");
    assert!(
        count(&entry, "requests") >= before,
        "counters lost: {entry}"
    );
    assert_valid_metrics(&admin).await;

    b.release_holds();
    a.release_holds();
    drop(held);
    // The old instance finishes draining and goes; the id stays listed once throughout.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let entry = assert_listed_once(&admin, "b").await;
        if entry.get("draining_instances").is_none() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "old instance still draining: {entry}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_valid_metrics(&admin).await;
}
