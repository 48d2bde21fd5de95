//! Requests from chosen loopback source addresses, so tether sees many distinct client IPs:
//! on Linux every address in 127.0.0.0/8 is local, so a socket can bind any of them.

use std::net::{Ipv4Addr, SocketAddr};

use http::{header, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

use super::affinity::{explain, Explain};
use super::body;
use super::client::{Reply, REQUEST_DEADLINE};

/// The `i`-th distinct client address: 127.0.1.1, 127.0.1.2, ... 250 per /24, never
/// 127.0.0.x (where tether and the backends listen).
pub fn client_ip(i: usize) -> Ipv4Addr {
    assert!(i < 250 * 250, "client index {i} out of range");
    Ipv4Addr::new(127, 0, (1 + i / 250) as u8, (1 + i % 250) as u8)
}

/// `GET path` to `to` on a new HTTP/1.1 connection from `source` (port chosen by the OS),
/// with extra `headers`; the whole reply. Panics on transport errors and after the deadline.
pub async fn get_from(
    source: Ipv4Addr,
    to: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let socket = TcpSocket::new_v4().expect("new v4 socket");
    socket
        .bind(SocketAddr::new(source.into(), 0))
        .unwrap_or_else(|err| panic!("bind {source}: {err}"));
    let stream = tokio::time::timeout(REQUEST_DEADLINE, socket.connect(to))
        .await
        .unwrap_or_else(|_| panic!("connect {source} -> {to}: no answer in time"))
        .unwrap_or_else(|err| panic!("connect {source} -> {to}: {err}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap_or_else(|err| panic!("handshake {source} -> {to}: {err}"));
    tokio::spawn(conn);
    let mut request = Request::get(path).header(header::HOST, to.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body::empty()).expect("request");
    let response = tokio::time::timeout(REQUEST_DEADLINE, sender.send_request(request))
        .await
        .unwrap_or_else(|_| panic!("GET {path} from {source}: no response in time"))
        .unwrap_or_else(|err| panic!("GET {path} from {source}: {err:?}"));
    tokio::time::timeout(REQUEST_DEADLINE, Reply::read(response))
        .await
        .unwrap_or_else(|_| panic!("GET {path} from {source}: body not complete in time"))
}

/// How many of [`explain_each`]'s requests are in flight at once.
const CONCURRENCY: usize = 16;

/// `GET path` to `to` once from each of `sources` (a new connection each, [`CONCURRENCY`] at a
/// time), asserting 200s; tether's explain header of each reply, in the order of `sources`.
pub async fn explain_each(to: SocketAddr, sources: &[Ipv4Addr], path: &str) -> Vec<Explain> {
    let mut explained = Vec::with_capacity(sources.len());
    for chunk in sources.chunks(CONCURRENCY) {
        let mut requests = tokio::task::JoinSet::new();
        for (i, &source) in chunk.iter().enumerate() {
            let path = path.to_string();
            requests.spawn(async move {
                let reply = get_from(source, to, &path, &[]).await;
                assert_eq!(
                    reply.status,
                    200,
                    "GET {path} from {source}: {}",
                    reply.text()
                );
                (i, explain(&reply))
            });
        }
        let mut done = requests.join_all().await;
        done.sort_by_key(|(i, _)| *i);
        explained.extend(done.into_iter().map(|(_, e)| e));
    }
    explained
}
