//! A request body the client breaks (malformed chunking, or trickled below `min_body_rate`) is
//! the client's failure: it is answered 4xx and never counted against the backend by passive
//! health, so a single client cannot eject healthy backends and deny service to everyone.

use crate::common::config::{Config, Listener, Pool};
use crate::common::hostile::{attack, probe};
use crate::common::serial;
use crate::common::{RawConn, TestBackend, Tether};

/// Two failures eject for 10 s, and with every backend ejected tether answers 503.
/// Pool `app` ejecting a backend after two failures, and failing when none is left.
fn strict_passive() -> Pool {
    Pool::app()
        .set_in("passive", "failures", 2)
        .set_in("passive", "eject", "10s")
        .set("all_down", "fail")
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_chunked_bodies_do_not_eject_the_backend() {
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(Config::round_robin(
        &backend,
        Listener::web(),
        strict_passive(),
    ))
    .await;
    let addr = tether.addr("web");
    let bad_chunk = [
        &b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        &[b'f'; 40],
        b"\r\nabc\r\n0\r\n\r\n",
    ]
    .concat();

    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(attack(addr, &backend, &bad_chunk).await.status());
    }
    let after = probe(addr, &backend, "after malformed chunks").await;

    assert!(
        after.is_ok() && statuses.iter().all(|s| s.is_none_or(|s| s == 400)),
        "three malformed chunked bodies from one client were answered {statuses:?} (want 400 \
         or a close), and then a normal request got: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_bodies_do_not_eject_the_backend() {
    let _timed = serial::timed().await;
    let backend = TestBackend::start("app-1").await;
    let listener = Listener::web()
        .set("header_timeout", "1s")
        .set("min_body_rate", 1000);
    let tether = Tether::start(Config::round_robin(&backend, listener, strict_passive())).await;
    let addr = tether.addr("web");

    // Two uploads that stall after their head: both must end in 408 about 2 s later.
    let stalled: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async move {
                let mut conn = RawConn::connect(addr).await;
                let head = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nx";
                conn.send(head).await.expect("send head");
                conn.read_response().await.map(|r| r.status).ok()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for handle in stalled {
        statuses.push(handle.await.expect("stalled upload task"));
    }
    let after = probe(addr, &backend, "after slow bodies").await;

    assert_eq!(statuses, [Some(408), Some(408)], "stalled uploads answered");
    assert!(
        after.is_ok(),
        "two slow uploads from one client ejected the only backend: a normal request then got \
         {after:?}"
    );
}
