//! least_conn sends new requests to the backend with fewer in flight, counting a request until its body ends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::body;
use crate::common::config::{Config, Listener, Pool};
use crate::common::{BackendOptions, Http1, TestBackend, Tether};
use http::{Method, Response};
use hyper::body::Incoming;

fn config(a: &TestBackend, b: &TestBackend) -> Config {
    Config::new().listener(Listener::web()).pool(
        Pool::app()
            .set("balance", "least_conn")
            .backend(&a.id, a.addr)
            .backend(&b.id, b.addr),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_backend_gets_far_fewer_requests_than_a_fast_one() {
    let slow = TestBackend::start_with(BackendOptions {
        id: "slow".into(),
        delay: Duration::from_millis(250),
        ..Default::default()
    })
    .await;
    let fast = TestBackend::start("fast").await;
    let tether = Tether::start(config(&slow, &fast)).await;

    // 16 clients share a budget of 200 requests and a 10 s deadline, whichever ends first.
    let budget = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let client = Http1::new(tether.addr("web"));
        let budget = budget.clone();
        clients.spawn(async move {
            let mut ids = Vec::new();
            while budget.fetch_add(1, Ordering::SeqCst) < 200 && Instant::now() < deadline {
                let reply = client.get("/").await;
                assert_eq!(reply.status, 200, "body: {}", reply.text());
                ids.push(reply.backend_id());
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(done) = clients.join_next().await {
        ids.extend(done.expect("client task"));
    }

    let slow_count = ids.iter().filter(|id| *id == "slow").count();
    let fast_count = ids.iter().filter(|id| *id == "fast").count();
    assert!(ids.len() >= 100, "only {} requests completed", ids.len());
    assert!(
        fast_count > 3 * slow_count,
        "least_conn should starve the slow backend: slow={slow_count} fast={fast_count}"
    );
}

/// Starts a `/hold` request, which gets its headers at once but keeps its body open until
/// the backend releases it; returns which backend took it and the unfinished response.
async fn hold(client: &Http1) -> (String, Response<Incoming>) {
    let request = client.request(Method::GET, "/hold").body(body::empty());
    let response = client.send(request.unwrap()).await.expect("GET /hold");
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-backend-id"]
        .to_str()
        .unwrap()
        .to_string();
    (id, response)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_whose_body_is_still_streaming_counts_as_in_flight() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let tether = Tether::start(config(&a, &b)).await;
    let client = Http1::new(tether.addr("web"));
    let backend = |id: &str| if id == a.id { &a } else { &b };
    let other = |id: &str| {
        if id == a.id {
            b.id.clone()
        } else {
            a.id.clone()
        }
    };

    let (first, first_response) = hold(&client).await;
    let second_expected = other(&first);
    for i in 0..20 {
        let reply = client.get("/").await;
        assert_eq!(
            reply.backend_id(),
            second_expected,
            "request {i}: {first} still has a body streaming, so it has one in flight"
        );
    }

    // Hold one on the other backend too, then let the first body end: now the first
    // backend is the idle one, whichever position it has in the config.
    let (second, second_response) = hold(&client).await;
    assert_eq!(
        second, second_expected,
        "{first} has one in flight, {second_expected} none"
    );
    backend(&first).release_holds();
    let first_len = body::count(first_response.into_body())
        .await
        .expect("first /hold body");
    assert_eq!(first_len, "held\nreleased\n".len() as u64);
    for i in 0..20 {
        let reply = client.get("/").await;
        assert_eq!(
            reply.backend_id(),
            first,
            "request {i}: {first}'s body has ended while {second}'s is still streaming"
        );
    }

    backend(&second).release_holds();
    body::count(second_response.into_body())
        .await
        .expect("second /hold body");
}
