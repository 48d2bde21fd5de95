//! Slow clients: a head trickled slower than `header_timeout` (slowloris) is disconnected on
//! time while other clients are served, and a body trickled below `min_body_rate` gets 408.

use std::time::{Duration, Instant};

use crate::common::config::{Config, Listener, Pool};
use crate::common::hostile::probe;
use crate::common::serial;
use crate::common::{TestBackend, Tether};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Slowloris connections opened at once.
const LORIS: usize = 20;

/// Writes `chunk` every `every` until the peer stops taking it or `max` writes were made, then
/// holds the write side open until aborted (hyper drops a request whose client half-closes).
fn trickle(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    first: Vec<u8>,
    chunk: Vec<u8>,
    every: Duration,
    max: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if write.write_all(&first).await.is_err() {
            return;
        }
        for _ in 0..max {
            tokio::time::sleep(every).await;
            if write.write_all(&chunk).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    })
}

/// Time from connect until tether closes a connection that trickles a head one byte every
/// 100 ms forever (up to 10 s), or `None` if it stays open that long.
async fn slowloris(addr: std::net::SocketAddr) -> Option<Duration> {
    let start = Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut read, write) = stream.into_split();
    let writer = trickle(
        write,
        b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Pad: ".to_vec(),
        b"a".to_vec(),
        Duration::from_millis(100),
        100,
    );
    let mut scratch = [0u8; 1024];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), read.read(&mut scratch)).await {
            Err(_) => break None,
            Ok(Ok(0)) | Ok(Err(_)) => break Some(start.elapsed()),
            Ok(Ok(_)) => continue,
        }
    };
    writer.abort();
    closed
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_heads_are_cut_at_header_timeout_while_others_are_served() {
    let _timed = serial::timed().await;
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(Config::round_robin(
        &backend,
        Listener::web().set("header_timeout", "1s"),
        Pool::app(),
    ))
    .await;
    let addr = tether.addr("web");

    let loris: Vec<_> = (0..LORIS).map(|_| tokio::spawn(slowloris(addr))).collect();
    // Meanwhile, normal requests every 100 ms for 2 s must each be answered promptly.
    let mut served = 0u64;
    for i in 0..20 {
        let start = Instant::now();
        let label = format!("during-slowloris-{i}");
        probe(addr, &backend, &label)
            .await
            .unwrap_or_else(|e| panic!("normal client starved by slowloris: {e}"));
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "request {i} took {:?} while slowloris ran",
            start.elapsed()
        );
        served += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, handle) in loris.into_iter().enumerate() {
        let closed = handle.await.expect("slowloris task");
        let closed =
            closed.unwrap_or_else(|| panic!("slowloris {i} still open after 10 s of trickling"));
        assert!(
            closed >= Duration::from_millis(900) && closed < Duration::from_millis(3000),
            "slowloris {i} closed after {closed:?}; header_timeout is 1 s"
        );
    }
    assert_eq!(
        backend.requests(),
        served,
        "a trickled head reached the backend"
    );
}

/// Sends a `Content-Length: len` POST whose body comes `chunk` bytes every `every`, and reads
/// tether's answer (waiting at most 10 s); returns it with how long it took.
async fn post_trickled(
    addr: std::net::SocketAddr,
    len: usize,
    chunk: usize,
    every: Duration,
) -> (Option<(u16, String)>, Duration) {
    let start = Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (read, write) = stream.into_split();
    let head = format!("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\n\r\n");
    let writer = trickle(
        write,
        head.into_bytes(),
        vec![b'x'; chunk],
        every,
        len / chunk,
    );
    let mut read = read;
    let mut raw = Vec::new();
    let mut scratch = [0u8; 4096];
    // Read until the response head and its (short) body are in, or the connection ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let left = deadline - Instant::now();
        match tokio::time::timeout(left, read.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => raw.extend_from_slice(&scratch[..n]),
            _ => break,
        }
        if response_complete(&raw) {
            break;
        }
    }
    writer.abort();
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .map(|s| (s, text.clone()));
    (status, took)
}

/// True once `raw` holds a head and as many body bytes as its Content-Length says.
fn response_complete(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= len
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_trickled_below_min_body_rate_gets_408_and_a_brisk_one_passes() {
    let _timed = serial::timed().await;
    let backend = TestBackend::start("app-1").await;
    let listener = Listener::web()
        .set("header_timeout", "1s")
        .set("min_body_rate", 200);
    let tether = Tether::start(Config::round_robin(&backend, listener, Pool::app())).await;
    let addr = tether.addr("web");

    // 20 bytes/s against a floor of 200: too slow once the 1 s grace has passed.
    let (answer, took) = post_trickled(addr, 100_000, 2, Duration::from_millis(100)).await;
    let (status, text) = answer.expect("no answer to a trickled body within 10 s");
    assert_eq!(status, 408, "trickled body answered: {text}");
    assert!(
        text.contains("request body sent too slowly"),
        "408 without its reason: {text}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "408 after {took:?}; the grace is header_timeout (1 s)"
    );

    // 3,000 bytes at about 2,000 bytes/s: well above the floor, delivered whole.
    let (answer, _) = post_trickled(addr, 3000, 200, Duration::from_millis(100)).await;
    let (status, text) = answer.expect("no answer to a brisk body");
    assert_eq!(status, 200, "brisk body answered: {text}");
    assert!(text.contains("body-length 3000"), "backend got: {text}");

    probe(addr, &backend, "after slow body")
        .await
        .expect("tether serves after a slow body");
}
