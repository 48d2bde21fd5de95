//! A request tries at most `max_attempts` backends, and replays of sent requests stop when the
//! pool's retry budget is spent: the client gets a 502 that says which limit stopped it, and
//! /status counts the refused retries. Within the limits, a refusing backend still costs the
//! client nothing, and a refused connect moves on whatever the budget.

use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

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

/// A backend that reads each request head, then resets the connection without answering.
async fn reset_after_reading() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..1_000 {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65_536 {
                    match conn.read(&mut buf).await {
                        Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                // SO_LINGER 0: closing sends RST, after the request arrived whole.
                let _ = conn.set_zero_linger();
            });
        }
    });
    addr
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
async fn with_the_budget_spent_a_failed_get_is_not_replayed() {
    // The connect succeeds and the request goes out, then the connection is reset: a GET that
    // retry_idempotent would replay on the live backend.
    let reset = reset_after_reading().await;
    let live = TestBackend::start("live").await;
    let pool = |budget: f64, floor: i64| {
        Pool::app()
            .set("balance", "round_robin")
            .set("passive", table([("failures", 0.into())]))
            .set("retry_budget", budget)
            .set("min_retry_concurrency", floor)
            .backend("reset", reset)
            .backend("live", live.addr)
    };
    let config = |pool: Pool| Config::new().listener(Listener::web()).pool(pool);

    let spent = Tether::start(config(pool(0.0, 0))).await;
    let (ok, failed, first) = statuses(&Http1::new(spent.addr("web")), 20).await;
    // Round robin alternates: every GET that lands on the resetting backend fails.
    assert_eq!((ok, failed), (10, 10), "{first:?}");
    assert!(
        first.unwrap_or_default().contains("upstream failed"),
        "the backend's failure is answered"
    );

    let default = Tether::start(config(pool(0.2, 3))).await;
    let (ok, failed, first) = statuses(&Http1::new(default.addr("web")), 20).await;
    assert_eq!((ok, failed), (20, 0), "{first:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connect_moves_on_whatever_the_budget() {
    // Refused connects add no load: a killed backend's share of a busy pool is not an error.
    let live = TestBackend::start("live").await;
    let pool = Pool::app()
        .set("retry_budget", 0.0)
        .set("min_retry_concurrency", 0);
    let tether = Tether::start(config(1, live.addr, pool)).await;
    let (ok, failed, first) = statuses(&Http1::new(tether.addr("web")), 20).await;
    assert_eq!((ok, failed), (20, 0), "{first:?}");
}
