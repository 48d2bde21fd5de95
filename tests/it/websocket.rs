//! WebSocket-style upgrades: spliced after 101, pinned by the cookie, counted in flight for
//! their whole life, and closed when their backend's drain deadline passes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::admin::count;
use crate::common::config::{Config, Listener, Pool};
use crate::common::serial;
use crate::common::{Admin, Tether};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upgrade backend: answers `Upgrade: echo` with 101 and then echoes bytes upper-cased;
/// other requests get 200 with its id.
async fn echo_backend(id: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let head = read_head(&mut tcp).await;
                if head.to_ascii_lowercase().contains("upgrade: echo") {
                    let reply = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\nx-backend-id: {id}\r\n\r\n"
                    );
                    tcp.write_all(reply.as_bytes()).await.unwrap();
                    let mut buf = [0u8; 1024];
                    loop {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                let upper = buf[..n].to_ascii_uppercase();
                                if tcp.write_all(&upper).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                } else {
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nx-backend-id: {id}\r\ncontent-length: {}\r\n\r\n{id}",
                        id.len()
                    );
                    let _ = tcp.write_all(reply.as_bytes()).await;
                }
            });
        }
    });
    addr
}

async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Opens an upgraded connection through tether; returns it and the 101 head.
async fn upgrade(tether: SocketAddr, cookie: Option<&str>) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(tether).await.unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n{cookie}\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    (tcp, head)
}

async fn roundtrip(tcp: &mut TcpStream, text: &str) -> String {
    tcp.write_all(text.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; text.len()];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut buf))
        .await
        .expect("echo within 5 s")
        .expect("echo");
    String::from_utf8(buf).unwrap()
}

fn config(a: SocketAddr, b: SocketAddr) -> Config {
    Config::new()
        .admin()
        .listener(Listener::new("web", "ws"))
        .pool(
            Pool::new("ws")
                .set("balance", "least_conn")
                .set("affinity", "cookie")
                .set("drain_timeout", "1s")
                .set("drain_quiet", "200ms")
                .set_in("cookie", "keys", vec!["0123456789abcdef0123"])
                .backend("ws-a", a)
                .backend("ws-b", b),
        )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgraded_connection_is_spliced_pinned_counted_and_closed_at_the_drain_deadline() {
    let _timed = serial::timed().await;
    let (a, b) = (echo_backend("ws-a").await, echo_backend("ws-b").await);
    let tether = Tether::start(config(a, b)).await;
    let admin = Admin::new(tether.addr("admin"));

    let (mut ws, head) = upgrade(tether.addr("web"), None).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let head_lower = head.to_ascii_lowercase();
    assert!(head_lower.contains("upgrade: echo"), "{head}");
    let owner = if head_lower.contains("x-backend-id: ws-a") {
        "ws-a"
    } else {
        "ws-b"
    };
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("the upgrade response pins the client")
        .to_string();
    assert_eq!(roundtrip(&mut ws, "hello").await, "HELLO");

    // The open tunnel counts as in flight, so least_conn sends new clients elsewhere...
    assert_eq!(
        count(&admin.expect_backend("ws", owner).await, "in_flight"),
        1
    );
    let other = if owner == "ws-a" { "ws-b" } else { "ws-a" };
    let (mut fresh, head) = upgrade(tether.addr("web"), None).await;
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("x-backend-id: {other}")),
        "{head}"
    );
    drop(fresh.shutdown().await);
    // ...while a second upgrade carrying the cookie is pinned to the same backend.
    let (mut pinned, head) = upgrade(tether.addr("web"), Some(&cookie)).await;
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("x-backend-id: {owner}")),
        "{head}"
    );
    assert_eq!(roundtrip(&mut pinned, "again").await, "AGAIN");
    drop(pinned);

    // Draining the owner keeps the tunnel until the drain deadline (1 s), then closes it.
    assert_eq!(
        admin
            .post(&format!("/pools/ws/backends/{owner}/drain"))
            .await
            .status,
        200
    );
    assert_eq!(roundtrip(&mut ws, "still here").await, "STILL HERE");
    let start = Instant::now();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), ws.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "tunnel closed by tether: {closed:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "closed near the 1 s deadline"
    );
    admin
        .wait_state("ws", owner, "drained", Duration::from_secs(5))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(&admin.expect_backend("ws", owner).await, "in_flight") != 0 {
        assert!(
            Instant::now() < deadline,
            "in_flight returns to 0 after the tunnel closes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
