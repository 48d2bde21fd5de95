//! Slow upstreams get 504, and stalled or idle client connections are closed on time.

use std::time::{Duration, Instant};

use crate::common::config::{Config, Listener, Pool};
use crate::common::serial;
use crate::common::{Admin, Http1, RawConn, TestBackend, Tether};

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_slower_than_response_timeout_gets_504_on_time() {
    let _timed = serial::timed().await;
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(&Config::round_robin(
        &backend,
        Listener::web(),
        Pool::app().set("response_timeout", "300ms"),
    ))
    .await;
    let client = Http1::new(tether.addr("web"));

    let start = Instant::now();
    let reply = client.get("/slow?ms=3000").await;
    let took = start.elapsed();

    assert_eq!(reply.status, 504, "body: {}", reply.text());
    assert!(reply.body.len() < 1024, "a 504 is short plain text");
    assert!(took < Duration::from_millis(2000), "504 took {took:?}");
    assert!(
        took >= Duration::from_millis(250),
        "504 after only {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stalls_mid_head_is_disconnected_after_header_timeout() {
    let _timed = serial::timed().await;
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(&Config::round_robin(
        &backend,
        Listener::web().set("header_timeout", "500ms"),
        Pool::app(),
    ))
    .await;

    let mut conn = RawConn::connect(tether.addr("web")).await;
    conn.send(b"GET / HTTP/1.1\r\nHost: shop.example\r\nx-partial: ")
        .await
        .expect("send partial head");
    let closed = conn.closed_within(Duration::from_secs(5)).await;

    let closed = closed.expect("tether kept a stalled half-sent head open for 5s");
    assert!(
        closed >= Duration::from_millis(400),
        "closed after only {closed:?}"
    );
    assert_eq!(backend.requests(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed_but_a_busy_one_stays_open() {
    let _timed = serial::timed().await;
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(&Config::round_robin(
        &backend,
        Listener::web()
            .set("idle_timeout", "500ms")
            .set("header_timeout", "10s"),
        Pool::app(),
    ))
    .await;
    let request = b"GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n";

    let mut busy = RawConn::connect(tether.addr("web")).await;
    let mut idle = RawConn::connect(tether.addr("web")).await;
    idle.send(request).await.expect("idle: first request");
    assert_eq!(
        idle.read_response().await.expect("idle: response").status,
        200
    );

    // Every 200 ms for 1.6 s: never idle for 500 ms, so never closed.
    for i in 0..8 {
        busy.send(request).await.expect("busy: send");
        let response = busy.read_response().await;
        let response = response.unwrap_or_else(|err| panic!("busy request {i}: {err}"));
        assert_eq!(response.status, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // By now the idle connection has been quiet for about 1.6 s: well past 500 ms.
    let closed = idle.closed_within(Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "an idle keep-alive connection was still open 5s after idle_timeout (500ms) had passed"
    );

    // A fresh idle connection is closed after about idle_timeout, not at once.
    let mut fresh = RawConn::connect(tether.addr("web")).await;
    fresh.send(request).await.expect("fresh: request");
    assert_eq!(
        fresh.read_response().await.expect("fresh: response").status,
        200
    );
    let closed = fresh.closed_within(Duration::from_secs(5)).await;
    let closed = closed.expect("idle connection still open after 5s");
    assert!(
        closed >= Duration::from_millis(400),
        "closed after only {closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn header_timeout_bounds_each_request_head_not_the_life_of_a_busy_connection() {
    let _timed = serial::timed().await;
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(&Config::round_robin(
        &backend,
        Listener::web()
            .set("header_timeout", "500ms")
            .set("idle_timeout", "60s"),
        Pool::app(),
    ))
    .await;
    let request = b"GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n";

    // Every head arrives whole at once; the connection lives four header_timeouts.
    let mut conn = RawConn::connect(tether.addr("web")).await;
    let start = Instant::now();
    for i in 0..10 {
        conn.send(request).await.expect("send");
        let response = conn.read_response().await;
        let response = response.unwrap_or_else(|err| {
            panic!(
                "request {i}, {:?} into the connection: {err}",
                start.elapsed()
            )
        });
        assert_eq!(response.status, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_upstream_connections_are_closed_after_keepalive_timeout() {
    let _timed = serial::timed().await;
    let backend = TestBackend::start("app-1").await;
    let config = Config::round_robin(
        &backend,
        Listener::web(),
        Pool::app().set("keepalive_timeout", "700ms"),
    )
    .admin();
    let tether = Tether::start(&config).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));
    let idle = "idle_connections";

    // Four requests at once: tether opens four upstream connections and keeps them idle.
    let burst: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/slow?ms=200").await.status })
        })
        .collect();
    for request in burst {
        assert_eq!(request.await.expect("request task"), 200);
    }
    // Each is given back when its response body is finished, just after the client read it.
    admin
        .wait_count("app", "app-1", idle, 4, Duration::from_secs(2))
        .await;

    // With no request coming by, they are closed once idle for keepalive_timeout.
    let closed = admin
        .wait_count("app", "app-1", idle, 0, Duration::from_secs(5))
        .await;
    assert!(
        closed >= Duration::from_millis(500),
        "closed after {closed:?}, before keepalive_timeout"
    );

    // The next request opens a fresh connection, which is kept in turn.
    assert_eq!(client.get("/").await.status, 200);
    admin
        .wait_count("app", "app-1", idle, 1, Duration::from_secs(2))
        .await;
}
