//! A request tries at most `max_attempts` backends, and retries stop when the pool's retry
//! budget is spent: the client gets a 502 that says which limit stopped it, and /status counts
//! the refused retries. Within the limits, a refusing backend still costs the client nothing.

use std::net::SocketAddr;

use crate::common::admin::count;
use crate::common::config::{table, Config, Listener, Pool};
use crate::common::{dead_addr, Admin, Http1, TestBackend, Tether};

/// Round robin over `dead` refusing backends then one live one, passive ejection off so that
/// the dead ones keep being picked.
fn config(dead: usize, live: SocketAddr, pool: Pool) -> Config {
    let mut pool = pool
        .set("balance", "round_robin")
        .set("passive", table([("failures", 0.into())]));
    for i in 0..dead {
        pool = pool.backend(&format!("dead-{i}"), dead_addr());
    }
    Config::new()
        .admin()
        .listener(Listener::web())
        .pool(pool.backend("live", live))
}

/// Statuses of `n` GETs, and the body of the first that failed.
async fn statuses(client: &Http1, n: usize) -> (usize, usize, Option<String>) {
    let (mut ok, mut failed, mut first) = (0, 0, None);
    for i in 0..n {
        let reply = client.get(&format!("/r/{i}")).await;
        if reply.status == 200 {
            ok += 1;
        } else {
            assert_eq!(reply.status, 502, "{}", reply.text());
            failed += 1;
            first.get_or_insert_with(|| reply.text());
        }
    }
    (ok, failed, first)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_tries_at_most_max_attempts_backends() {
    let live = TestBackend::start("live").await;
    // Four refusing backends in front of the live one: a request that starts on the first dead
    // one needs five attempts.
    let tether = Tether::start(config(4, live.addr, Pool::app().set("max_attempts", 2))).await;
    let client = Http1::new(tether.addr("web"));
    let (ok, failed, first) = statuses(&client, 50).await;
    assert!(ok > 0 && failed > 0, "ok {ok}, failed {failed}");
    let first = first.unwrap_or_default();
    assert!(first.contains("2 tried; max_attempts reached"), "{first}");

    let admin = Admin::new(tether.addr("admin"));
    let mut total = 0;
    for i in 0..4 {
        let b = admin.expect_backend("app", &format!("dead-{i}")).await;
        total += count(&b, "retries_refused");
    }
    assert_eq!(
        total, failed as u64,
        "each 502 counted once as a refused retry"
    );

    // With enough attempts every request reaches the live backend.
    let tether = Tether::start(config(4, live.addr, Pool::app().set("max_attempts", 5))).await;
    let (ok, failed, first) = statuses(&Http1::new(tether.addr("web")), 50).await;
    assert_eq!((ok, failed), (50, 0), "{first:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_budget_spent_a_refused_connect_is_not_retried() {
    let live = TestBackend::start("live").await;
    let pool = Pool::app()
        .set("retry_budget", 0.0)
        .set("min_retry_concurrency", 0);
    let tether = Tether::start(config(1, live.addr, pool)).await;
    let client = Http1::new(tether.addr("web"));
    let (ok, failed, first) = statuses(&client, 20).await;
    // Round robin alternates: every request that lands on the dead backend fails.
    assert_eq!((ok, failed), (10, 10), "{first:?}");
    let first = first.unwrap_or_default();
    assert!(first.contains("retry budget spent"), "{first}");
}
