//! tether's own HTTP/1.1 path for bodiless requests: pipelined requests answered in order, a
//! bare LF in any of them refused (hyper's parser would take one behind the first), a connection
//! handed to hyper for a request with a body and back after an idle release, responses framed
//! for HEAD, 204 and large bodies, and a client's reset freeing the backend.

use std::time::Duration;

use http::Method;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use toml::Value;

use crate::common::admin::count;
use crate::common::config::{table, Config, Listener, Pool};
use crate::common::hostile::eventually;
use crate::common::{Admin, Echo, Http1, RawConn, TestBackend, Tether};

/// Client connections tether has accepted on the `web` listener.
async fn accepted(tether: &Tether) -> u64 {
    let scrape = Admin::new(tether.addr("admin"))
        .get("/metrics")
        .await
        .text();
    scrape
        .lines()
        .find_map(|l| l.strip_prefix("tether_listener_connections_total{listener=\"web\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no connection count in:\n{scrape}"))
}

async fn start(listener: Listener) -> (TestBackend, Tether) {
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(Config::round_robin(&backend, listener, Pool::app()).admin()).await;
    (backend, tether)
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_a_bare_lf_behind_one_gets_400() {
    let (backend, tether) = start(Listener::web()).await;
    let mut conn = RawConn::connect(tether.addr("web")).await;
    conn.send(
        b"GET /echo?n=1 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /echo?n=2 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n\
          DELETE /echo?n=3 HTTP/1.1\r\nHost: a\r\n\r\n\
          OPTIONS /echo?n=4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n\
          GET /echo?n=5 HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await
    .expect("send");
    for (n, method) in [(1, "GET"), (2, "GET"), (3, "DELETE"), (4, "OPTIONS")] {
        let resp = conn.read_response().await.expect("response");
        assert_eq!(resp.status, 200, "request {n}");
        let echo = Echo::parse(&resp.body);
        assert_eq!(
            (echo.method.as_str(), echo.path.as_str()),
            (method, format!("/echo?n={n}").as_str()),
            "answered out of order"
        );
    }
    // The fourth asked to close: the fifth is not served.
    assert!(
        conn.closed_within(Duration::from_secs(5)).await.is_some(),
        "connection left open after Connection: close"
    );
    assert_eq!(backend.requests(), 4);

    // A bare LF in the second of two pipelined heads: the first is answered, the second is
    // refused with 400 and the connection closed; the backend sees only the first.
    let before = backend.requests();
    let mut conn = RawConn::connect(tether.addr("web")).await;
    conn.send(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\nHost: a\r\n\r\n")
        .await
        .expect("send");
    assert_eq!(conn.read_response().await.expect("first").status, 200);
    assert_eq!(conn.read_response().await.expect("second").status, 400);
    assert!(
        conn.closed_within(Duration::from_secs(5)).await.is_some(),
        "connection left open after a bare LF"
    );
    assert_eq!(
        backend.requests(),
        before + 1,
        "the refused request reached the backend"
    );
}

#[tokio::test]
async fn a_connection_goes_to_hyper_for_a_body_and_comes_back_after_an_idle_release() {
    let (backend, tether) = start(Listener::web().set("idle_release", "50ms")).await;
    let mut conn = RawConn::connect(tether.addr("web")).await;
    conn.send(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    assert_eq!(conn.read_response().await.expect("GET").status, 200);
    // A request with a body, then a bodiless one, on the same connection.
    conn.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /echo?after HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    let post = conn.read_response().await.expect("POST");
    let echo = Echo::parse(&post.body);
    assert_eq!((post.status, echo.body_len), (200, 5), "{echo:?}");
    let after = conn.read_response().await.expect("GET after the POST");
    assert_eq!(Echo::parse(&after.body).path, "/echo?after");
    // hyper's session is released once the connection idles with every byte accounted for:
    // after a request sent on its own.
    conn.send(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    assert_eq!(conn.read_response().await.expect("GET").status, 200);
    // After an idle release, tether's own path reads the heads again: a bare LF behind a first
    // request is refused, which hyper's parser would not do.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = backend.requests();
    conn.send(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\nHost: a\r\n\r\n")
        .await
        .expect("send");
    assert_eq!(conn.read_response().await.expect("first").status, 200);
    assert_eq!(conn.read_response().await.expect("second").status, 400);
    assert_eq!(backend.requests(), before + 1);
}

#[tokio::test]
async fn head_204_and_large_bodies_are_framed_so_the_connection_stays_usable() {
    let (backend, tether) = start(Listener::web()).await;
    let client = Http1::new(tether.addr("web"));
    let head = client
        .call(
            Method::HEAD,
            "/big?bytes=5000",
            crate::common::body::empty(),
        )
        .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "a HEAD answered with a body");
    let big = client.get("/big?bytes=300000").await;
    assert_eq!((big.status.as_u16(), big.body.len()), (200, 300_000));
    let last = client.get("/echo").await;
    assert_eq!(last.status, 200);
    assert_eq!(last.echo().method, "GET");
    // The test backend answers every route 204 from here on (with a body it does not send).
    backend.answer_with(204);
    for _ in 0..3 {
        let empty = client.get("/anything").await;
        assert_eq!(empty.status, 204);
        assert!(empty.body.is_empty());
    }
    // One connection for all of it: every answer was framed right, or the client would have
    // read the remains of one as the next, or given the connection up.
    assert_eq!(accepted(&tether).await, 1);
}

#[tokio::test]
async fn a_client_reset_while_its_response_waits_frees_the_backend() {
    let (backend, tether) = start(Listener::web()).await;
    let admin = Admin::new(tether.addr("admin"));
    let mut stream = TcpStream::connect(tether.addr("web"))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    let in_flight = |want: u64| {
        let admin = &admin;
        let id = backend.id.clone();
        async move { count(&admin.expect_backend("app", &id).await, "in_flight") == want }
    };
    assert!(
        eventually(Duration::from_secs(5), || in_flight(1)).await,
        "request never in flight"
    );
    stream.set_zero_linger().expect("linger");
    drop(stream);
    assert!(
        eventually(Duration::from_secs(5), || in_flight(0)).await,
        "the backend still counts the request of a client that reset"
    );
    backend.release_holds();
}

#[tokio::test]
async fn an_answer_tether_gives_at_once_leaves_the_connection_its_idle_timeout() {
    let backend = TestBackend::start("app-1").await;
    // Only /api is routed: every other request is answered 404 by tether, before any read.
    let api = table([
        ("name", "api".into()),
        ("pool", "app".into()),
        ("path_prefix", "/api".into()),
    ]);
    let listener = Listener::routes_only("web")
        .set("route", Value::Array(vec![api]))
        .set("header_timeout", "500ms")
        .set("idle_timeout", "20s");
    let tether = Tether::start(Config::round_robin(&backend, listener, Pool::app())).await;
    let mut conn = RawConn::connect(tether.addr("web")).await;
    for round in 0..2 {
        conn.send(b"GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("send");
        let resp = conn.read_response().await;
        let resp = resp.unwrap_or_else(|e| panic!("request {round}: no response: {e}"));
        assert_eq!(resp.status, 404, "request {round}");
        // Three header timeouts of idle keep-alive, well within the idle timeout.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_served_whole() {
    let (backend, tether) = start(Listener::web()).await;
    let mut stream = TcpStream::connect(tether.addr("web"))
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let head = b"GET /echo?trickled HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789abcdef\r\n\r\n";
    for byte in head {
        stream.write_all(&[*byte]).await.expect("send");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&reply).contains("body-length") {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed before the response");
            reply.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "no response to a trickled head");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("path /echo?trickled\n"), "{text}");
    assert!(text.contains("header x-long: 0123456789abcdef\n"), "{text}");
    assert_eq!(backend.requests(), 1);
}
