//! Connection floods: `max_connections_per_ip` closes the extra connections of one address
//! while its first ones keep working, and thousands of idle keep-alive connections cost tether
//! a few KiB each, because an idle connection gives its parser buffers back.

use std::time::{Duration, Instant};

use crate::common::config::{Config, Listener, Pool};
use crate::common::hostile::{eventually, open_files_limit, probe, rss_bytes};
use crate::common::serial;
use crate::common::{RawConn, TestBackend, Tether};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/// A connection that has been served one request (so tether has surely counted it).
async fn served_conn(addr: std::net::SocketAddr, what: &str) -> RawConn {
    let mut conn = RawConn::connect(addr).await;
    conn.send(GET).await.expect("send");
    let response = conn.read_response().await;
    let response = response.unwrap_or_else(|e| panic!("{what}: no response: {e}"));
    assert_eq!(response.status, 200, "{what}");
    conn
}

#[tokio::test(flavor = "multi_thread")]
async fn a_third_connection_from_one_address_is_closed_while_the_first_two_work() {
    let _timed = serial::timed().await;
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(Config::round_robin(
        &backend,
        Listener::web().set("max_connections_per_ip", 2),
        Pool::app(),
    ))
    .await;
    let addr = tether.addr("web");

    let mut first = served_conn(addr, "first connection").await;
    let mut second = served_conn(addr, "second connection").await;

    let mut third = RawConn::connect(addr).await;
    let _ = third.send(GET).await;
    let answered = third.read_response().await;
    assert!(
        answered.is_err(),
        "a third connection from 127.0.0.1 was served: {answered:?}"
    );
    let closed = third.closed_within(Duration::from_secs(2)).await;
    assert!(closed.is_some(), "the third connection was left open");
    assert_eq!(
        backend.requests(),
        2,
        "the refused connection reached the backend"
    );

    for (conn, what) in [(&mut first, "first"), (&mut second, "second")] {
        conn.send(GET).await.expect("send again");
        let response = conn.read_response().await;
        let response = response.unwrap_or_else(|e| panic!("{what} stopped working: {e}"));
        assert_eq!(response.status, 200, "{what} connection after the refusal");
    }

    // Closing one frees its slot: a new connection is served again (once tether sees the FIN).
    drop(first);
    let freed = eventually(Duration::from_secs(3), || async {
        probe(addr, &backend, "after a slot was freed")
            .await
            .is_ok()
    })
    .await;
    assert!(
        freed,
        "no connection served 3 s after one of the two was closed"
    );
}

/// Idle connections opened for the memory measurement.
const IDLE: usize = 5_000;
/// Connections opening at once while the idle set is built.
const OPENING_AT_ONCE: usize = 64;
/// Allowed resident memory per idle keep-alive connection. Measured: about 3 KiB in a debug
/// build (jemalloc returning released sessions' pages; under 2 KiB in release). Without the
/// idle release, hyper's read and write buffers stay with every connection: about 33 KiB each.
const MAX_BYTES_PER_IDLE: u64 = 6 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_idle_keep_alive_connections_cost_a_bounded_amount_each() {
    let _alone = serial::alone().await;
    // This process holds one descriptor per connection; tether inherits the same limit.
    let limit = open_files_limit().unwrap_or(0);
    if limit < IDLE as u64 + 512 {
        eprintln!(
            "SKIPPED: RLIMIT_NOFILE is {limit}, below the {} this test needs; raise it with \
             `ulimit -n 20000` before `cargo test`",
            IDLE + 512
        );
        return;
    }
    let backend = TestBackend::start("app-1").await;
    // A short release, so that connections opened later in the run reuse the memory that
    // earlier ones gave back; the default (1 s) only changes how soon.
    let listener = Listener::web()
        .set("idle_timeout", "120s")
        .set("header_timeout", "60s")
        .set("idle_release", "50ms");
    let tether = Tether::start(Config::round_robin(&backend, listener, Pool::app())).await;
    let addr = tether.addr("web");

    // Warm up: thread stacks, the backend connection pool, allocator arenas.
    for i in 0..OPENING_AT_ONCE {
        drop(served_conn(addr, &format!("warm-up {i}")).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_bytes(tether.pid());

    let started = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    while idle.len() < IDLE {
        let batch = OPENING_AT_ONCE.min(IDLE - idle.len());
        let opening: Vec<_> = (0..batch)
            .map(|_| tokio::spawn(async move { served_conn(addr, "idle connection").await }))
            .collect();
        for handle in opening {
            idle.push(handle.await.expect("open idle connection"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "opening {IDLE} connections took over 60 s ({} open)",
            idle.len()
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_bytes(tether.pid());
    let per_conn = after.saturating_sub(before) / IDLE as u64;
    eprintln!(
        "tether RSS {} KiB -> {} KiB with {IDLE} idle keep-alive connections: {per_conn} bytes \
         each (opened in {:?})",
        before / 1024,
        after / 1024,
        started.elapsed()
    );

    // They really are open and usable, and tether still serves new clients.
    for (i, conn) in idle.iter_mut().step_by(IDLE / 10).enumerate() {
        conn.send(GET).await.expect("send on an idle connection");
        let response = conn.read_response().await;
        let response = response.unwrap_or_else(|e| panic!("idle connection {i} is gone: {e}"));
        assert_eq!(response.status, 200);
    }
    probe(addr, &backend, "with thousands idle")
        .await
        .expect("a new client is served while thousands are idle");
    assert!(
        per_conn <= MAX_BYTES_PER_IDLE,
        "each idle keep-alive connection costs tether {per_conn} bytes of RSS \
         (limit {MAX_BYTES_PER_IDLE})"
    );
}
