//! PROXY protocol v1 and v2 on a listener that enables it: the address it carries is the
//! client for logs, X-Forwarded-For and ip_hash; connections without a valid header are closed.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::common::config::{Config, Listener, Pool};
use crate::common::{Echo, TestBackend, Tether};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(backends: &[&TestBackend]) -> Config {
    let pool = backends
        .iter()
        .fold(Pool::app().set("affinity", "ip_hash"), |pool, b| {
            pool.backend(&b.id, b.addr)
        });
    Config::new()
        .listener(Listener::new("pp", "app").set("proxy_protocol", true))
        .listener(Listener::new("plain", "app"))
        .pool(pool)
}

fn v1(source: Ipv4Addr) -> Vec<u8> {
    format!("PROXY TCP4 {source} 127.0.0.1 40000 80\r\n").into_bytes()
}

fn v2(source: Ipv4Addr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&source.octets());
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h
}

/// Sends `header` then `GET path` on a fresh connection; the raw response ("" if closed).
async fn send(addr: SocketAddr, header: &[u8], path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut out = header.to_vec();
    out.extend_from_slice(
        format!("GET {path} HTTP/1.1\r\nHost: pp.test\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let _ = tcp.write_all(&out).await;
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut resp)).await;
    String::from_utf8_lossy(&resp).into_owned()
}

fn backend_of(resp: &str) -> String {
    resp.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-backend-id: ")
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no x-backend-id in {resp:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxied_address_is_the_client_for_forwarding_logs_and_ip_hash() {
    let (a, b) = (
        TestBackend::start("app-a").await,
        TestBackend::start("app-b").await,
    );
    let tether = Tether::start(config(&[&a, &b])).await;
    let pp = tether.addr("pp");

    for (header, source) in [
        (v1(Ipv4Addr::new(203, 0, 113, 7)), "203.0.113.7"),
        (v2(Ipv4Addr::new(198, 51, 100, 9)), "198.51.100.9"),
    ] {
        let resp = send(pp, &header, "/echo").await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
        let echo = Echo::parse(body.as_bytes());
        assert_eq!(echo.joined("x-forwarded-for").as_deref(), Some(source));
        tether
            .wait_for_line(Duration::from_secs(5), |l| {
                l.contains("tether::access") && l.contains(&format!("client.addr={source}:40000"))
            })
            .await;
    }

    // ip_hash keys on the proxied address: each source sticks, v1 and v2 agree, and 40
    // sources spread over both backends although they all share one TCP peer.
    let mut seen = HashMap::new();
    for i in 0..40u8 {
        let source = Ipv4Addr::new(192, 0, 2, i + 1);
        let first = backend_of(&send(pp, &v1(source), "/").await);
        let again = backend_of(&send(pp, &v2(source), "/").await);
        assert_eq!(first, again, "{source} moved between v1 and v2");
        *seen.entry(first).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both backends get clients: {seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_malformed_headers_are_refused_only_where_enabled() {
    let a = TestBackend::start("app-a").await;
    let tether = Tether::start(config(&[&a])).await;

    assert_eq!(
        send(tether.addr("pp"), b"", "/").await,
        "",
        "no header: closed"
    );
    assert_eq!(
        send(tether.addr("pp"), b"PROXY TCP4 1.2.3.4\r\n", "/").await,
        ""
    );
    assert_eq!(a.requests(), 0, "nothing reached the backend");
    // A listener without proxy_protocol treats the header as a bad request line.
    let resp = send(
        tether.addr("plain"),
        &v1(Ipv4Addr::new(203, 0, 113, 7)),
        "/",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    // And the PROXY listener keeps serving well-formed connections.
    let ok = send(tether.addr("pp"), &v1(Ipv4Addr::new(203, 0, 113, 8)), "/").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}
