//! Idle upstream connections are parked as bare sockets after the pool's `idle_release`, and
//! reused without reconnecting; an idle socket (parked, or bare after a bodiless request that
//! tether's own client carried) that the backend closed or wrote to is never used for a request
//! (tether checks it when taking it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::admin::count;
use crate::common::config::{Config, Pool};
use crate::common::serial;
use crate::common::{affinity, Admin, Http1, TestBackend, Tether};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Pool `app` with one backend `app-1` at `addr`, the TOML lines in `pool`, and an admin
/// listener.
fn config(addr: std::net::SocketAddr, pool: Pool) -> Config {
    affinity::config(pool, &[("app-1", addr)])
}

const PARKED: &str = "parked_connections";
const IDLE: &str = "idle_connections";

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_upstream_connection_is_parked_and_reused_without_reconnecting() {
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(config(
        backend.addr,
        Pool::app().set("idle_release", "100ms"),
    ))
    .await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    for round in 0..3 {
        let reply = client.post("/echo", format!("round {round}")).await;
        assert_eq!(reply.status, 200, "round {round}: {}", reply.text());
        assert!(
            reply.text().contains("body-length 7"),
            "the backend got the whole body: {}",
            reply.text()
        );
        // Idle past idle_release: the connection is parked, still counted as idle.
        admin
            .wait_count("app", "app-1", PARKED, 1, Duration::from_secs(3))
            .await;
        admin
            .wait_count("app", "app-1", IDLE, 1, Duration::from_secs(1))
            .await;
    }
    assert_eq!(
        backend.connections(),
        1,
        "every request went over the one parked and resumed TCP connection"
    );
    assert_eq!(backend.requests(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_idle_release_off_nothing_is_parked() {
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(config(backend.addr, Pool::app().set("idle_release", "0s"))).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    assert_eq!(client.get("/").await.status, 200);
    admin
        .wait_count("app", "app-1", IDLE, 1, Duration::from_secs(2))
        .await;
    // Several maintenance ticks (200 ms each) pass; the connection stays live.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = admin.expect_backend("app", "app-1").await;
    assert_eq!(count(&status, PARKED), 0);
    assert_eq!(count(&status, IDLE), 1);
    assert_eq!(client.get("/").await.status, 200);
    assert_eq!(backend.connections(), 1);
}

/// What the backend does with a connection some time after answering its one request.
#[derive(Clone, Copy)]
enum Then {
    /// Closes it.
    Close,
    /// Writes an unsolicited 408 (as some servers do before an idle close) and keeps it open.
    Stray408,
}

/// A backend that answers one request per connection with keep-alive, then, `after` later,
/// does `then`; counts connections and those it has acted on.
async fn one_shot_backend(
    after: Duration,
    then: Then,
) -> (std::net::SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (accepted, closed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (a, c) = (Arc::clone(&accepted), Arc::clone(&closed));
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "served";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
                tokio::time::sleep(after).await;
                match then {
                    Then::Close => drop::<TcpStream>(conn),
                    Then::Stray408 => {
                        let stray =
                            "HTTP/1.1 408 Request Timeout\r\ncontent-length: 5\r\n\r\nstray";
                        let _ = conn.write_all(stray.as_bytes()).await;
                        c.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                }
                c.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, accepted, closed)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parked_connection_the_backend_closed_is_not_used() {
    idle_connection_is_not_used_after(Then::Close, Via::Hyper).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parked_connection_the_backend_wrote_to_is_not_used() {
    idle_connection_is_not_used_after(Then::Stray408, Via::Hyper).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_bare_connection_the_backend_closed_is_not_used() {
    idle_connection_is_not_used_after(Then::Close, Via::Inline).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_bare_connection_the_backend_wrote_to_is_not_used() {
    idle_connection_is_not_used_after(Then::Stray408, Via::Inline).await;
}

/// Which client carries the requests: hyper's (a request with a body; its idle connection is
/// parked after `idle_release`) or tether's own (a bodiless GET; its idle connection is a bare
/// socket at once).
#[derive(Clone, Copy, PartialEq)]
enum Via {
    Hyper,
    Inline,
}

async fn idle_connection_is_not_used_after(then: Then, via: Via) {
    let _timed = serial::timed().await;
    let (addr, accepted, closed) = one_shot_backend(Duration::from_millis(600), then).await;
    // Requests are not replayed: a request sent on a dead socket would come back as 502.
    let pool = Pool::app()
        .set("idle_release", "100ms")
        .set("retry_idempotent", false);
    let tether = Tether::start(config(addr, pool)).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));
    let send = || async {
        match via {
            Via::Hyper => client.post("/", "a body").await,
            Via::Inline => client.get("/").await,
        }
    };

    assert_eq!(send().await.text(), "served");
    let (counter, parked) = match via {
        Via::Hyper => (PARKED, 1),
        Via::Inline => (IDLE, 1),
    };
    admin
        .wait_count("app", "app-1", counter, parked, Duration::from_secs(3))
        .await;
    // The backend closes the idle connection (or writes to it); tether does not notice
    // until it takes it.
    let deadline = Instant::now() + Duration::from_secs(3);
    while closed.load(Ordering::SeqCst) < 1 {
        assert!(Instant::now() < deadline, "the backend never acted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await; // let the bytes arrive

    let reply = send().await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "served");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "a new connection was opened"
    );
}
