//! A burst never ejects healthy backends: connects that fail because tether's own burst
//! overflowed a backend's accept queue, while that backend answers other requests, are not
//! its ill health.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::task::JoinSet;

use crate::common::admin::count;
use crate::common::config::{Config, Listener, Pool};
use crate::common::{Admin, Http1, Tether};

/// A backend with an accept queue of one that accepts a connection every 20 ms: a burst of
/// connects overflows it (the kernel drops the SYNs), while each accepted connection is
/// answered at once. Returns its address and the count of requests it answered.
fn slow_accepting_backend() -> (SocketAddr, Arc<AtomicU64>) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let addr = socket.local_addr().unwrap();
    let listener = socket.listen(1).expect("listen");
    let served = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&served);
    tokio::spawn(async move {
        for _ in 0..10_000 {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match conn.read(&mut buf).await {
                        Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                count.fetch_add(1, Ordering::Relaxed);
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
                    )
                    .await;
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (addr, served)
}

/// Two slow-accepting backends behind `pool` (plus the keys set here), then 40 clients sending 3
/// requests each at once: far more connects than either accept queue takes. Returns tether
/// (alive), the statuses the clients got, and what each backend served.
async fn burst(pool: Pool) -> (Tether, Vec<u16>, u64) {
    let (a, served_a) = slow_accepting_backend();
    let (b, served_b) = slow_accepting_backend();
    let config = Config::new().admin().listener(Listener::web()).pool(
        pool.set("connect_timeout", "100ms")
            .set("max_idle_per_backend", 0)
            .set_in("passive", "failures", 3)
            .set_in("passive", "eject", "30s")
            .backend("a", a)
            .backend("b", b),
    );
    let tether = Tether::start(config).await;
    let client = Http1::new(tether.addr("web"));
    let mut burst = JoinSet::new();
    for i in 0..40 {
        let client = client.clone();
        burst.spawn(async move {
            let mut statuses = Vec::new();
            for j in 0..3 {
                statuses.push(client.get(&format!("/r/{i}/{j}")).await.status.as_u16());
            }
            statuses
        });
    }
    let mut statuses = Vec::new();
    while let Some(done) = burst.join_next().await {
        statuses.extend(done.expect("client"));
    }
    let served = served_a.load(Ordering::Relaxed) + served_b.load(Ordering::Relaxed);
    (tether, statuses, served)
}

/// Asserts neither backend was ejected or is down; returns their connect errors.
async fn assert_none_ejected(tether: &Tether) -> u64 {
    let status = Admin::new(tether.addr("admin")).status().await;
    let mut connect_errors = 0;
    for id in ["a", "b"] {
        let entry = crate::common::admin::backend_in(&status, "app", id).unwrap();
        connect_errors += count(entry, "connect_errors");
        assert_eq!(
            count(entry, "ejections"),
            0,
            "{id} was ejected by tether's own connect burst: {status}"
        );
        assert_eq!(entry["state"], "up", "{entry}");
    }
    connect_errors
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connect_burst_against_small_accept_queues_ejects_no_backend() {
    let _serial = crate::common::serial::alone().await;
    let (tether, statuses, served) = burst(Pool::app()).await;
    let connect_errors = assert_none_ejected(&tether).await;
    assert!(
        connect_errors > 0,
        "the burst did not overflow an accept queue; the test proves nothing"
    );
    assert!(served > 0, "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_connection_cap_the_burst_waits_its_turn_and_every_request_succeeds() {
    let _serial = crate::common::serial::alone().await;
    let cap = Pool::app()
        .set("max_connections", 1)
        .set("max_pending", 100)
        .set("queue_timeout", "10s");
    let (tether, statuses, served) = burst(cap).await;
    assert_eq!(assert_none_ejected(&tether).await, 0, "no connect failed");
    assert!(
        statuses.iter().all(|&s| s == 200),
        "every request must succeed: {statuses:?}"
    );
    assert_eq!(served, 120);
}
