//! SIGTERM drains: tether stops accepting, lets in-flight requests finish (up to shutdown_timeout), exits 0.

use crate::common;
use crate::common::config::{Config, Listener, Pool};
use crate::common::serial;
use std::time::{Duration, Instant};

use crate::common::{Http1, TestBackend, Tether};
use tokio::net::TcpStream;

fn config(backend: &TestBackend, shutdown_timeout: &str) -> Config {
    Config::round_robin(backend, Listener::web(), Pool::app())
        .runtime("shutdown_timeout", shutdown_timeout)
}

/// Polls until `backend` has received `n` requests, so a signal lands mid-request.
async fn wait_for_requests(backend: &TestBackend, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while backend.requests() < n {
        assert!(Instant::now() < deadline, "backend never got request {n}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_refuses_new_connections_finishes_in_flight_requests_and_exits_zero() {
    let _timed = serial::timed().await;
    let backend = TestBackend::start("app-1").await;
    let mut tether = Tether::start(config(&backend, "10s")).await;
    let addr = tether.addr("web");
    let client = Http1::new(addr);
    let slow = tokio::spawn(async move { client.get("/slow?ms=1500").await });
    wait_for_requests(&backend, 1).await;
    // The backend answers 1.5 s after it got the request, so no sooner than 1.5 s from here.
    let received = Instant::now();

    tether.signal("TERM");

    // The listener closes at once, long before the in-flight request is answered.
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            received.elapsed() < Duration::from_secs(1),
            "tether still accepted connections 1 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        tether.try_exit().is_none(),
        "connections were refused only because tether had already exited"
    );
    assert!(
        !slow.is_finished(),
        "the in-flight request is still being served"
    );
    let reply = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .expect("in-flight request finished")
        .expect("request task");
    assert_eq!(reply.status, 200, "body: {}", reply.text());
    assert_eq!(reply.text(), "app-1", "the in-flight body arrived whole");
    let status = tether.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_in_flight_request_longer_than_shutdown_timeout_does_not_keep_tether_alive() {
    let _timed = serial::timed().await;
    let backend = TestBackend::start("app-1").await;
    let mut tether = Tether::start(config(&backend, "500ms")).await;
    let client = Http1::new(tether.addr("web"));
    let stuck = tokio::spawn(async move {
        let request = client
            .request(http::Method::GET, "/slow?ms=20000")
            .body(common::body::empty())
            .unwrap();
        client.send(request).await.map(|response| response.status())
    });
    wait_for_requests(&backend, 1).await;

    tether.signal("TERM");
    let signalled = Instant::now();
    let status = tether.wait_exit(Duration::from_secs(5)).await;
    let took = signalled.elapsed();

    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(
        took >= Duration::from_millis(400),
        "tether exited after {took:?}, before giving the in-flight request its 500ms"
    );
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
    stuck.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_stops_an_idle_tether_with_status_zero() {
    let _timed = serial::timed().await;
    let backend = TestBackend::start("app-1").await;
    let mut tether = Tether::start(config(&backend, "10s")).await;

    tether.signal("INT");

    let status = tether.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "exit status {status}");
}
