//! After a burst, tether keeps as many idle connections as the burst had in flight (not only
//! `max_idle_per_backend`), so that a second burst reuses them instead of opening them again:
//! the connect storm that overflows backends' accept queues happens once, not at every burst.

use std::time::Duration;

use tokio::task::JoinSet;

use crate::common::admin::count;
use crate::common::config::{Config, Listener, Pool};
use crate::common::{serial, Admin, Http1, TestBackend, Tether};

const CONCURRENT: usize = 120;

/// `CONCURRENT` slow requests at once, each on a connection of its own; asserts every one is a
/// 200.
async fn burst(tether: &Tether) {
    let mut calls = JoinSet::new();
    for i in 0..CONCURRENT {
        let client = Http1::new(tether.addr("web"));
        calls.spawn(async move { client.get(&format!("/slow?ms=400&i={i}")).await.status });
    }
    while let Some(status) = calls.join_next().await {
        assert_eq!(status.expect("request task"), 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_burst_reuses_the_connections_of_the_first() {
    let _alone = serial::alone().await;
    let backend = TestBackend::start("app-1").await;
    // The default keeps 32 idle per worker; the burst has 120 in flight.
    let config = Config::new()
        .admin()
        .runtime("threads", 2)
        .listener(Listener::web())
        .pool(Pool::app().backend("app-1", backend.addr));
    let tether = Tether::start(config).await;
    let admin = Admin::new(tether.addr("admin"));

    burst(&tether).await;
    let first = backend.connections();
    assert!(
        first >= CONCURRENT as u64,
        "{first} connections for {CONCURRENT} at once"
    );
    // Every connection of the burst went back to an idle stack.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut idle = 0;
    while tokio::time::Instant::now() < deadline {
        idle = count(
            &admin.expect_backend("app", "app-1").await,
            "idle_connections",
        );
        if idle >= CONCURRENT as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        idle >= CONCURRENT as u64 - 4,
        "only {idle} of {CONCURRENT} kept idle"
    );

    burst(&tether).await;
    let opened = backend.connections() - first;
    assert!(
        opened <= CONCURRENT as u64 / 10,
        "the second burst opened {opened} new connections"
    );
}
