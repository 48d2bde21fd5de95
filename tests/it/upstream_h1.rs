//! Bodiless requests to plain HTTP/1.1 backends are sent and their responses read by tether's
//! own client in the request's task: every way a backend may frame a response arrives whole,
//! a connection is reused only when the response allows it, and a backend that breaks the
//! protocol gets its client a 502 (or a cut-off body) without harming the next request.

use crate::common;
use crate::common::config::{Config, Pool};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::tether::field;
use crate::common::{RawConn, Tether};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that answers every request head with `reply(path)`: the raw bytes to write, in
/// pieces written 2 ms apart, and whether to close afterwards. Counts its connections.
struct Scripted {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicU64>,
}

type Script = fn(&str) -> (Vec<&'static [u8]>, bool);

impl Scripted {
    async fn start(reply: Script) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, reply));
            }
        });
        Scripted { addr, connections }
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, reply: Script) {
    let mut buf = Vec::new();
    let mut served = 0;
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        // `/once`: answered as the first request of a connection only; a later one finds the
        // connection closing, as when a backend's keep-alive timeout fires just as tether
        // reuses the connection.
        if path == "/once" && served > 0 {
            return;
        }
        served += 1;
        let (pieces, close) = reply(&path);
        for piece in pieces {
            if stream.write_all(piece).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if close {
            return;
        }
    }
}

/// Pool `app` with the scripted backend; requests are not replayed on failure, so a 502 shows.
fn config(addr: std::net::SocketAddr) -> Config {
    common::affinity::config(
        Pool::app().set("retry_idempotent", false),
        &[("app-1", addr)],
    )
}

/// Sends `GET path` (or another method) on `conn` and reads the response.
async fn request(conn: &mut RawConn, method: &str, path: &str) -> common::client::RawResponse {
    let head = format!("{method} {path} HTTP/1.1\r\nHost: shop.example\r\n\r\n");
    conn.send(head.as_bytes()).await.expect("send");
    conn.read_response().await.expect("a response")
}

fn script(path: &str) -> (Vec<&'static [u8]>, bool) {
    match path {
        "/length" => (
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"],
            false,
        ),
        "/split" => (
            vec![
                b"HTTP/1.1 200 OK\r\nCont",
                b"ent-Length: 11\r\nX-Piece: a\r\n",
                b"\r\nhello",
                b" world",
            ],
            false,
        ),
        "/chunked" => (
            vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"5\r\nhel",
                b"lo\r\n6;ext=1\r\n world\r",
                b"\n0\r\nX-Trailer: t\r\n\r\n",
            ],
            false,
        ),
        "/until-close" => (vec![b"HTTP/1.1 200 OK\r\n\r\nuntil ", b"close"], true),
        "/close" => (
            vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"],
            true,
        ),
        "/http10" => (
            vec![b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\n1.0!"],
            true,
        ),
        "/interim" => (
            vec![
                b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 201 Created\r\nContent-Length: 7\r\n\r\ncreated",
            ],
            false,
        ),
        "/no-content" => (vec![b"HTTP/1.1 204 No Content\r\n\r\n"], false),
        "/head" => (
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"],
            false,
        ),
        "/stray" => (
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"],
            false,
        ),
        "/bad-status" => (vec![b"HTTP/1.1 2x0 Nope\r\n\r\n"], true),
        "/bad-length" => (
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello"],
            true,
        ),
        "/bad-chunk" => (
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX"],
            false,
        ),
        "/cut" => (
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten.."],
            true,
        ),
        "/nothing" => (vec![], true),
        "/once" => (
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce"],
            false,
        ),
        _ => (
            vec![b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"],
            false,
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_framing_arrives_whole_and_keep_alive_responses_share_one_connection() {
    let backend = Scripted::start(script).await;
    let tether = Tether::start(config(backend.addr)).await;
    let mut conn = RawConn::connect(tether.addr("web")).await;

    let r = request(&mut conn, "GET", "/length").await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    let r = request(&mut conn, "GET", "/split").await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world"[..]));
    assert!(r.headers.contains(&("x-piece".into(), "a".into())));
    let r = request(&mut conn, "GET", "/chunked").await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world"[..]));
    let r = request(&mut conn, "GET", "/interim").await;
    assert_eq!((r.status, r.body.as_slice()), (201, &b"created"[..]));
    let r = request(&mut conn, "GET", "/no-content").await;
    assert_eq!((r.status, r.body.len()), (204, 0));
    assert_eq!(
        backend.connections(),
        1,
        "five keep-alive responses, one backend connection"
    );

    // Responses that end their connection: delimited by the close, `Connection: close`,
    // HTTP/1.0. Each arrives whole, and the next request needs a new connection.
    let r = request(&mut conn, "GET", "/until-close").await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"until close"[..]));
    let r = request(&mut conn, "GET", "/close").await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    let r = request(&mut conn, "GET", "/http10").await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"1.0!"[..]));
    let r = request(&mut conn, "GET", "/length").await;
    assert_eq!(r.status, 200);
    assert_eq!(backend.connections(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_head_response_has_its_length_and_no_body_and_keeps_the_connection() {
    let backend = Scripted::start(script).await;
    let tether = Tether::start(config(backend.addr)).await;
    let mut conn = TcpStream::connect(tether.addr("web")).await.unwrap();

    // Read raw: a HEAD response's Content-Length describes a body that is not there.
    conn.write_all(b"HEAD /head HTTP/1.1\r\nHost: shop.example\r\n\r\nGET /length HTTP/1.1\r\nHost: shop.example\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !got.ends_with(b"hello") {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, conn.read(&mut chunk))
            .await
            .expect("both responses within 10 s")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 10"), "{head}");
    assert!(
        rest.starts_with("http/1.1 200"),
        "the GET's response follows the HEAD's head at once: {rest:?}"
    );
    assert_eq!(backend.connections(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_after_a_response_are_never_read_as_the_next_one() {
    let backend = Scripted::start(script).await;
    let tether = Tether::start(config(backend.addr)).await;
    let mut conn = RawConn::connect(tether.addr("web")).await;

    let r = request(&mut conn, "GET", "/stray").await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    let r = request(&mut conn, "GET", "/length").await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(
        backend.connections(),
        2,
        "the connection that carried a stray byte was closed, not reused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_that_breaks_the_protocol_gets_502_and_the_next_request_is_served() {
    let backend = Scripted::start(script).await;
    let tether = Tether::start(config(backend.addr)).await;

    for path in ["/bad-status", "/bad-length", "/nothing"] {
        let mut conn = RawConn::connect(tether.addr("web")).await;
        let r = request(&mut conn, "GET", path).await;
        assert_eq!(r.status, 502, "{path}");
        let r = request(&mut conn, "GET", "/length").await;
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"hello"[..]),
            "after {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_breaks_off_cuts_the_client_response_and_is_logged_aborted() {
    let backend = Scripted::start(script).await;
    let tether = Tether::start(config(backend.addr)).await;

    for path in ["/cut", "/bad-chunk"] {
        let mut conn = RawConn::connect(tether.addr("web")).await;
        let head = format!("GET {path} HTTP/1.1\r\nHost: shop.example\r\n\r\n");
        conn.send(head.as_bytes()).await.unwrap();
        assert!(
            conn.read_response().await.is_err(),
            "{path}: the client must not get a complete-looking response"
        );
        let line = tether
            .wait_for_line(Duration::from_secs(5), |l| {
                l.contains("tether::access") && l.contains(&format!("path={path}"))
            })
            .await;
        assert_eq!(field(&line, "aborted").as_deref(), Some("true"), "{line}");
    }
    let mut conn = RawConn::connect(tether.addr("web")).await;
    let r = request(&mut conn, "GET", "/length").await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotent_request_that_meets_a_closing_connection_goes_out_again_on_a_fresh_one() {
    let backend = Scripted::start(script).await;
    let tether = Tether::start(config(backend.addr)).await;
    let mut conn = RawConn::connect(tether.addr("web")).await;

    for round in 0..3 {
        let r = request(&mut conn, "GET", "/once").await;
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"once"[..]),
            "round {round}"
        );
    }
    assert_eq!(
        backend.connections(),
        3,
        "each reuse met a closing connection and opened a new one"
    );
    // A bodiless POST may have been acted on: it is not sent again.
    let r = request(&mut conn, "POST", "/once").await;
    assert_eq!(r.status, 502);
}
