//! A backend that refuses connections costs clients nothing: tether retries elsewhere, or answers 502 at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::config::{Config, Listener, Pool};
use crate::common::serial;
use crate::common::{dead_addr, Http1, TestBackend, Tether};

fn config(backends: &[(&str, SocketAddr)]) -> Config {
    Config::new().listener(Listener::web()).pool(
        Pool::app()
            .set("balance", "round_robin")
            .set("connect_timeout", "5s")
            .backends(backends),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_is_served_by_the_live_backend_when_the_other_refuses() {
    let live = TestBackend::start("live").await;
    let tether = Tether::start(config(&[("dead", dead_addr()), ("live", live.addr)])).await;
    let client = Http1::new(tether.addr("web"));

    for i in 0..100 {
        let reply = client.get(&format!("/get/{i}")).await;
        assert_eq!(reply.status, 200, "GET {i}: {}", reply.text());
        assert_eq!(reply.backend_id(), "live");
    }
    // POST bodies must survive the retry: the failed connect never consumed them.
    for i in 0..20 {
        let sent = vec![b'p'; 10_000 + i * 1_000];
        let reply = client.post("/echo", sent.clone()).await;
        assert_eq!(reply.status, 200, "POST {i}: {}", reply.text());
        assert_eq!(reply.backend_id(), "live");
        let echo = reply.echo();
        assert_eq!(echo.method, "POST");
        assert_eq!(
            echo.body_len,
            sent.len() as u64,
            "POST {i} body arrived truncated"
        );
    }
    // Each request reached the live backend exactly once: retries never duplicate work.
    assert_eq!(live.requests(), 120);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_backend_refuses_the_client_gets_502_at_once() {
    let _timed = serial::timed().await;
    let tether = Tether::start(config(&[("dead-1", dead_addr()), ("dead-2", dead_addr())])).await;
    let client = Http1::new(tether.addr("web"));

    let start = Instant::now();
    let get = client.get("/").await;
    let get_took = start.elapsed();
    let start = Instant::now();
    let post = client.post("/echo", vec![b'p'; 4096]).await;
    let post_took = start.elapsed();

    for (method, reply, took) in [("GET", get, get_took), ("POST", post, post_took)] {
        assert_eq!(reply.status, 502, "{method}: body {:?}", reply.text());
        assert!(
            reply.body.len() < 1024,
            "{method}: a 502 is short plain text"
        );
        // Refusal on loopback is immediate; the 5 s connect_timeout must not be waited out.
        assert!(took < Duration::from_secs(2), "{method}: 502 took {took:?}");
    }
}
