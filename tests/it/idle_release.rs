//! An idle HTTP/1 keep-alive connection gives its parser buffers back after `idle_release`
//! and keeps working: the next request on it, a body sent before the pause, a request split
//! across the pause, and the idle timeout all behave as on a connection that never paused.

use std::time::Duration;

use crate::common::config::{Config, Listener, Pool};
use crate::common::serial;
use crate::common::{Admin, H2c, RawConn, TestBackend, Tether};

const GET: &[u8] = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n";

/// Longer than `idle_release` below, with room for a slow machine.
const PAUSE: Duration = Duration::from_millis(400);

/// tether with `listener`, which gets `idle_release = "50ms"`, to one backend.
async fn start(listener: Listener) -> (TestBackend, Tether) {
    let backend = TestBackend::start("app-1").await;
    let listener = listener.set("idle_release", "50ms");
    let tether = Tether::start(Config::round_robin(&backend, listener, Pool::app()).admin()).await;
    (backend, tether)
}

async fn expect_ok(conn: &mut RawConn, what: &str) {
    let response = conn.read_response().await;
    let response = response.unwrap_or_else(|e| panic!("{what}: no response: {e}"));
    assert_eq!(response.status, 200, "{what}");
}

#[tokio::test]
async fn a_connection_serves_again_after_a_pause_longer_than_idle_release() {
    let (backend, tether) = start(Listener::web()).await;
    let mut conn = RawConn::connect(tether.addr("web")).await;
    for round in 0..3 {
        conn.send(GET).await.expect("send");
        expect_ok(&mut conn, &format!("request {round} on one connection")).await;
        tokio::time::sleep(PAUSE).await;
    }
    assert_eq!(backend.requests(), 3);
    // Each pause released the connection's parser session once; nothing else did.
    let admin = Admin::new(tether.addr("admin"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut releases = idle_releases(&admin).await;
    while releases < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        releases = idle_releases(&admin).await;
    }
    assert_eq!(releases, 3, "one idle release per pause");
}

/// `tether_listener_idle_releases_total` of listener `web`.
async fn idle_releases(admin: &Admin) -> u64 {
    let metrics = admin.metrics().await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("tether_listener_idle_releases_total{listener=\"web\"}"))
        .unwrap_or_else(|| panic!("no idle release counter in:\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn requests_with_bodies_then_a_pause_leave_the_connection_usable() {
    let (backend, tether) = start(Listener::web()).await;
    let mut conn = RawConn::connect(tether.addr("web")).await;
    let sized = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    let chunked =
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    for (what, request) in [("sized body", &sized[..]), ("chunked body", &chunked[..])] {
        conn.send(request).await.expect("send");
        expect_ok(&mut conn, what).await;
        tokio::time::sleep(PAUSE).await;
        conn.send(GET).await.expect("send");
        expect_ok(&mut conn, &format!("GET after a {what} and a pause")).await;
    }
    assert_eq!(backend.requests(), 4);
}

#[tokio::test]
async fn a_request_split_across_the_pause_is_served_whole() {
    let (backend, tether) = start(Listener::web()).await;
    let mut conn = RawConn::connect(tether.addr("web")).await;
    // The first request and the start of a pipelined second one, in one write.
    conn.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHo")
        .await
        .expect("send");
    expect_ok(&mut conn, "first request").await;
    tokio::time::sleep(PAUSE).await;
    conn.send(b"st: a\r\n\r\n").await.expect("send the rest");
    expect_ok(&mut conn, "second request, split across the pause").await;
    // A body and the start of the next request in one write, read while the first request is
    // in progress (`/echo` reads the whole body before it answers).
    conn.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.send(b"helloGET /after-body HTTP/1.1\r\nHo")
        .await
        .expect("send");
    expect_ok(&mut conn, "request with a body").await;
    tokio::time::sleep(PAUSE).await;
    conn.send(b"st: a\r\n\r\n").await.expect("send the rest");
    expect_ok(&mut conn, "request that began in the body's write").await;
    // And a head split across a pause on a connection that was released before it began.
    tokio::time::sleep(PAUSE).await;
    conn.send(b"GET /third HTTP/1.1\r\n").await.expect("send");
    tokio::time::sleep(PAUSE).await;
    conn.send(b"Host: a\r\n\r\n").await.expect("send the rest");
    expect_ok(&mut conn, "third request, split across a pause").await;
    assert_eq!(backend.requests(), 5);
}

#[tokio::test]
async fn a_released_connection_still_closes_at_idle_timeout() {
    let _timed = serial::timed().await;
    let (_backend, tether) = start(Listener::web().set("idle_timeout", "1s")).await;
    let mut conn = RawConn::connect(tether.addr("web")).await;
    conn.send(GET).await.expect("send");
    expect_ok(&mut conn, "request").await;
    let closed = conn.closed_within(Duration::from_secs(5)).await;
    let closed = closed.expect("the idle connection was not closed within 5 s");
    assert!(
        closed >= Duration::from_millis(800),
        "closed after {closed:?}, before idle_timeout"
    );
}

#[tokio::test]
async fn http2_connections_are_told_apart_and_served() {
    let (backend, tether) = start(Listener::web()).await;
    let mut h2 = H2c::connect(tether.addr("web")).await;
    for round in 0..2 {
        let reply = h2.get("http://a/h2").await;
        assert_eq!(reply.status, 200, "HTTP/2 request {round}");
        tokio::time::sleep(PAUSE).await;
    }
    assert_eq!(backend.requests(), 2);
}
