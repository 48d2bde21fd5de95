//! What the client receives is what the access log and `/status` say: a backend response whose
//! first chunk size overflows is answered 502 (not an empty reply logged as 200), a body that
//! breaks off later is logged `aborted=true` and counted as an upstream failure, and CONNECT
//! is refused with 501.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::admin::count;
use crate::common::config::{Config, Listener, Pool};
use crate::common::tether::field;
use crate::common::{Admin, RawConn, TestBackend, Tether};

/// A chunk size far past 2^64.
const OVERFLOW: &[u8] = b"FFFFFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n";

fn config(backend: SocketAddr) -> Config {
    Config::new()
        .admin()
        .listener(Listener::web())
        .pool(Pool::app().backend("b", backend))
}

/// A backend that answers every request with a chunked 200 head, then `first` at once, then
/// (after `pause`) `later`, then closes.
async fn broken_backend(first: &'static [u8], pause: Duration, later: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..100 {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
                    match conn.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let response = [
                    &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                    first,
                ]
                .concat();
                let _ = conn.write_all(&response).await;
                tokio::time::sleep(pause).await;
                let _ = conn.write_all(later).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            });
        }
    });
    addr
}

/// Sends one raw request; everything the client received until tether closed (bounded).
async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(request).await.expect("send");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
        // A complete local answer (tether's own responses carry a Content-Length).
        if got.starts_with(b"HTTP/1.1 5") && got.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    got
}

/// The access-log line of the request to `path`, waiting for it (bounded).
async fn access_line(tether: &Tether, path: &str) -> String {
    let needle = format!("path={path} ");
    tether
        .wait_for_line(Duration::from_secs(5), |l| {
            l.contains("tether::access") && l.contains(&needle)
        })
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_chunk_size_that_overflows_is_answered_502_logged_502_and_not_counted_2xx() {
    let backend = broken_backend(OVERFLOW, Duration::ZERO, b"").await;
    let tether = Tether::start(config(backend)).await;
    let admin = Admin::new(tether.addr("admin"));

    let got = exchange(
        tether.addr("web"),
        b"GET /overflow HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 502"),
        "client received {text:?}, want a 502"
    );
    let line = access_line(&tether, "/overflow").await;
    assert_eq!(field(&line, "status").as_deref(), Some("502"), "{line}");
    let b = admin.expect_backend("app", "b").await;
    assert_eq!(b["responses"][1], 0, "counted as a 2xx: {b}");
    assert_eq!(count(&b, "upstream_errors"), 1, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_breaks_after_its_head_is_logged_aborted_and_counted_as_a_failure() {
    let backend = broken_backend(b"5\r\nhello\r\n", Duration::from_millis(300), OVERFLOW).await;
    let tether = Tether::start(config(backend)).await;
    let admin = Admin::new(tether.addr("admin"));

    let got = exchange(
        tether.addr("web"),
        b"GET /later HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    assert!(
        !text.contains("\r\n0\r\n\r\n"),
        "a broken body must not end cleanly: {text:?}"
    );
    let line = access_line(&tether, "/later").await;
    assert_eq!(field(&line, "aborted").as_deref(), Some("true"), "{line}");
    let b = admin.expect_backend("app", "b").await;
    assert_eq!(count(&b, "upstream_errors"), 1, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_is_refused_with_501_and_logged_so() {
    let backend = TestBackend::start("b").await;
    let tether = Tether::start(config(backend.addr)).await;
    let admin = Admin::new(tether.addr("admin"));

    let mut conn = RawConn::connect(tether.addr("web")).await;
    conn.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await
        .expect("send");
    let resp = conn.read_response().await.expect("an answer to CONNECT");
    assert_eq!(resp.status, 501, "{resp:?}");
    assert!(
        String::from_utf8_lossy(&resp.body).contains("CONNECT"),
        "{resp:?}"
    );
    let line = tether
        .wait_for_line(Duration::from_secs(5), |l| {
            l.contains("tether::access") && l.contains("method=CONNECT")
        })
        .await;
    assert_eq!(field(&line, "status").as_deref(), Some("501"), "{line}");
    assert_eq!(backend.requests(), 0, "CONNECT reached the backend");
    let b = admin.expect_backend("app", "b").await;
    assert_eq!(count(&b, "requests"), 0, "{b}");
}
