//! Request heads are bounded, forwarded with X-Forwarded-*, stripped of hop-by-hop headers, and access-logged.

use crate::common;
use crate::common::config::{Config, Listener, Pool};
use std::time::Duration;

use crate::common::tether::field;
use crate::common::{Http1, RawConn, TestBackend, Tether};
use http::Method;

fn config(backend: &TestBackend) -> Config {
    config_with(backend, Pool::app())
}

/// Listener `web` with 32 KiB heads, to `pool` with round robin and `backend`.
fn config_with(backend: &TestBackend, pool: Pool) -> Config {
    Config::round_robin(backend, Listener::web().set("max_header_size", 32768), pool)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_head_over_max_header_size_gets_431_and_tether_keeps_serving() {
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(config(&backend)).await;
    let client = Http1::new(tether.addr("web"));

    let mut conn = RawConn::connect(tether.addr("web")).await;
    let huge = "a".repeat(40 * 1024);
    let head = format!("GET / HTTP/1.1\r\nHost: shop.example\r\nx-huge: {huge}\r\n\r\n");
    conn.send(head.as_bytes()).await.expect("send 40 KiB head");
    let response = conn
        .read_response()
        .await
        .expect("a response to the 40 KiB head");
    assert_eq!(response.status, 431);
    assert_eq!(
        backend.requests(),
        0,
        "an oversized head must not reach the backend"
    );

    // Below the limit passes, and the listener is still serving after the 431.
    let below = "b".repeat(20 * 1024);
    let request = client
        .request(Method::GET, "/echo")
        .header("x-large", below.as_str())
        .body(common::body::empty())
        .unwrap();
    let reply = common::Reply::read(client.send(request).await.expect("20 KiB head")).await;
    assert_eq!(
        reply.echo().joined("x-large").as_deref(),
        Some(below.as_str())
    );
    assert_eq!(client.get("/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_response_head_over_64_kib_gets_502_and_the_pool_keeps_serving() {
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(config(&backend)).await;
    let client = Http1::new(tether.addr("web"));

    let near = client.get(&format!("/bighead?bytes={}", 60 * 1024)).await;
    assert_eq!(near.status, 200);
    assert_eq!(
        near.headers.get("x-filler").map(|v| v.len()),
        Some(60 * 1024),
        "a 60 KiB response head passes whole"
    );
    let over = client.get(&format!("/bighead?bytes={}", 70 * 1024)).await;
    assert_eq!(over.status, 502);
    assert_eq!(client.get("/").await.text(), "app-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn x_forwarded_headers_are_added_and_host_is_preserved() {
    let backend = TestBackend::start("app-1").await;
    // The client is a trusted proxy here, so its X-Forwarded-For is extended, not replaced.
    let tether = Tether::start(&config_with(
        &backend,
        Pool::app().set("trusted_proxies", vec!["127.0.0.1"]),
    ))
    .await;
    let client = Http1::new(tether.addr("web"));

    let request = client
        .request(Method::GET, "/echo")
        .header("host", "shop.example")
        .header("x-forwarded-for", "10.0.0.1")
        .body(common::body::empty())
        .unwrap();
    let echo = common::Reply::read(client.send(request).await.expect("GET /echo"))
        .await
        .echo();
    assert_eq!(
        echo.joined("x-forwarded-for").as_deref(),
        Some("10.0.0.1, 127.0.0.1")
    );
    assert_eq!(echo.joined("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        echo.joined("x-forwarded-host").as_deref(),
        Some("shop.example")
    );
    assert_eq!(echo.joined("host").as_deref(), Some("shop.example"));

    let echo = client.get("/echo").await.echo();
    assert_eq!(echo.joined("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    let tether_host = tether.addr("web").to_string();
    assert_eq!(echo.joined("host").as_deref(), Some(tether_host.as_str()));
    assert_eq!(
        echo.joined("x-forwarded-host").as_deref(),
        Some(tether_host.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_client_cannot_claim_another_address_or_scheme() {
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(config(&backend)).await;
    let client = Http1::new(tether.addr("web"));

    let request = client
        .request(Method::GET, "/echo")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "for=10.0.0.1;proto=https")
        .header("x-tether-affinity", "hit; backend=app-9")
        .body(common::body::empty())
        .unwrap();
    let echo = common::Reply::read(client.send(request).await.expect("GET /echo"))
        .await
        .echo();
    assert_eq!(echo.joined("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(echo.joined("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(echo.joined("forwarded"), None);
    assert_eq!(echo.joined("x-tether-affinity"), None);
}

/// Sends `head` on `conn` and returns what the backend's `/echo` saw.
async fn echo_raw(conn: &mut RawConn, head: &str) -> common::Echo {
    conn.send(head.as_bytes()).await.expect("send head");
    let response = conn.read_response().await.expect("response");
    assert_eq!(response.status, 200);
    common::Echo::parse(&response.body)
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_named_in_connection_are_not_forwarded() {
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(config(&backend)).await;
    let mut conn = RawConn::connect(tether.addr("web")).await;

    let echo = echo_raw(
        &mut conn,
        "GET /echo HTTP/1.1\r\n\
         Host: shop.example\r\n\
         Connection: keep-alive, x-drop-me\r\n\
         x-drop-me: 1\r\n\
         Keep-Alive: timeout=5\r\n\
         x-keep-me: yes\r\n\
         \r\n",
    )
    .await;

    assert_eq!(
        echo.joined("x-keep-me").as_deref(),
        Some("yes"),
        "end-to-end headers pass"
    );
    assert!(
        !echo.has("x-drop-me"),
        "backend received x-drop-me: {echo:?}"
    );
    assert!(
        !echo.has("keep-alive"),
        "backend received keep-alive: {echo:?}"
    );
    for connection in echo.values("connection") {
        assert!(
            !connection.to_ascii_lowercase().contains("x-drop-me"),
            "the client's Connection header was forwarded: {connection:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn standard_hop_by_hop_headers_are_not_forwarded_even_when_connection_omits_them() {
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(config(&backend)).await;
    let mut conn = RawConn::connect(tether.addr("web")).await;

    let echo = echo_raw(
        &mut conn,
        "GET /echo HTTP/1.1\r\n\
         Host: shop.example\r\n\
         Keep-Alive: timeout=5\r\n\
         Proxy-Connection: keep-alive\r\n\
         Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\
         TE: trailers\r\n\
         Trailer: x-checksum\r\n\
         x-keep-me: yes\r\n\
         \r\n",
    )
    .await;

    assert_eq!(
        echo.joined("x-keep-me").as_deref(),
        Some("yes"),
        "end-to-end headers pass"
    );
    for hop in [
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
    ] {
        assert!(
            !echo.has(hop),
            "backend received hop-by-hop {hop}: {echo:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_gets_an_access_log_line() {
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(config(&backend)).await;

    let mut conn = RawConn::connect(tether.addr("web")).await;
    conn.send(b"GET /access-probe HTTP/1.1\r\nHost: shop.example\r\n\r\n")
        .await
        .expect("send request");
    assert_eq!(conn.read_response().await.expect("response").status, 200);

    let line = tether
        .wait_for_line(Duration::from_secs(5), |l| {
            l.contains("tether::access") && l.contains("path=/access-probe")
        })
        .await;
    assert_eq!(field(&line, "method").as_deref(), Some("GET"), "{line}");
    assert_eq!(field(&line, "status").as_deref(), Some("200"), "{line}");
    assert_eq!(
        field(&line, "backend.id").as_deref(),
        Some("app-1"),
        "{line}"
    );
    let client_addr = conn.local_addr().to_string();
    assert_eq!(field(&line, "client.addr"), Some(client_addr), "{line}");
    let duration = field(&line, "duration_ms").unwrap_or_default();
    assert!(
        duration.parse::<f64>().is_ok(),
        "duration_ms={duration:?} in {line}"
    );
}
