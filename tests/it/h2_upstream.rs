//! HTTP/2 to backends (`protocol = "h2"`), in clear and over TLS (`tls = true`): a gRPC-style
//! exchange passes end to end with `te: trailers` forwarded and response trailers preserved.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::admin::count;
use crate::common::config::{Config, Listener, Pool};
use crate::common::pki::{self, TestCert};
use crate::common::{Admin, Tether};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A gRPC-like h2 backend: echoes the request body length and ends with `grpc-status` trailers.
/// Counts requests that arrived with `te: trailers`.
struct GrpcBackend {
    addr: SocketAddr,
    with_te: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl GrpcBackend {
    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> GrpcBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let with_te = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (te, conns) = (with_te.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                conns.fetch_add(1, Ordering::Relaxed);
                let te = te.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let te = te.clone();
                        async move { Ok::<_, Infallible>(answer(req, &te).await) }
                    });
                    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        GrpcBackend {
            addr,
            with_te,
            connections,
        }
    }
}

/// A response body made of fixed frames (data, then trailers).
struct Frames(std::collections::VecDeque<Frame<Bytes>>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.get_mut().0.pop_front().map(Ok))
    }
}

async fn answer(req: Request<Incoming>, with_te: &AtomicUsize) -> Response<Frames> {
    if req.headers().get("te").is_some_and(|v| v == "trailers") {
        with_te.fetch_add(1, Ordering::Relaxed);
    }
    let len = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("grpc-message", HeaderValue::from(len as u64));
    let frames = vec![
        Frame::data(Bytes::from(format!("received {len} bytes"))),
        Frame::trailers(trailers),
    ];
    Response::builder()
        .header("content-type", "application/grpc")
        .body(Frames(frames.into()))
        .unwrap()
}

/// Two worker threads, each of which keeps its own HTTP/2 connection to a backend: `pool`
/// (named `grpc`) gets `protocol = "h2"` and the backend `grpc-1` at `backend`.
fn config(backend: SocketAddr, pool: Pool) -> Config {
    Config::new()
        .runtime("threads", 2)
        .listener(Listener::new("web", "grpc"))
        .pool(pool.set("protocol", "h2").backend("grpc-1", backend))
}

/// One gRPC-style call through tether over h2c; returns (body, trailers).
async fn call(tether: SocketAddr, payload: &'static [u8]) -> (Bytes, HeaderMap) {
    let tcp = tokio::net::TcpStream::connect(tether).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::post("http://grpc.test/pkg.Service/Method")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(payload)))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    (collected.to_bytes(), trailers)
}

/// Pool `grpc` over TLS to the backend, verified against `ca` for the name `sni`.
fn tls_to(sni: &str, ca: &TestCert) -> Pool {
    Pool::new("grpc")
        .set("tls", true)
        .set("tls_ca", ca.cert.display().to_string())
        .set("tls_sni", sni)
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_over_h2c_keeps_te_and_trailers_and_shares_a_connection_per_worker() {
    let backend = GrpcBackend::start(None).await;
    let tether = Tether::start(config(backend.addr, Pool::new("grpc"))).await;
    for _ in 0..5 {
        let (body, trailers) = call(tether.addr("web"), b"hello grpc").await;
        assert_eq!(&body[..], b"received 10 bytes");
        assert_eq!(
            trailers.get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"0"[..])
        );
        assert_eq!(
            trailers.get("grpc-message").map(|v| v.as_bytes()),
            Some(&b"10"[..])
        );
    }
    assert_eq!(
        backend.with_te.load(Ordering::Relaxed),
        5,
        "te: trailers reached the backend"
    );
    let upstream = backend.connections.load(Ordering::Relaxed);
    assert!(
        (1..=2).contains(&upstream),
        "five calls multiplex over at most one upstream h2 connection per worker, not {upstream}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn h2_over_tls_to_the_backend_is_verified_against_the_configured_ca() {
    let cert = TestCert::new(&["backend.test"]);
    let backend = GrpcBackend::start(Some(pki::server(&cert, &[b"h2"]))).await;
    let tether = Tether::start(config(backend.addr, tls_to("backend.test", &cert))).await;
    let (body, trailers) = call(tether.addr("web"), b"over tls").await;
    assert_eq!(&body[..], b"received 8 bytes");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );

    // The wrong name fails verification: tether answers 502 instead of trusting it.
    let other = TestCert::new(&["other.test"]);
    let untrusted = Tether::start(config(backend.addr, tls_to("backend.test", &other))).await;
    let tcp = tokio::net::TcpStream::connect(untrusted.addr("web"))
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::post("http://grpc.test/pkg.Service/Method")
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    assert_eq!(send.send_request(req).await.unwrap().status(), 502);
}

/// `pool` with an HTTP health check every 100 ms that takes a backend down at the first
/// failure.
fn checked(pool: Pool) -> Pool {
    pool.set_in("health", "path", "/healthz")
        .set_in("health", "interval", "100ms")
        .set_in("health", "timeout", "90ms")
        .set_in("health", "rise", 1)
        .set_in("health", "fall", 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_speak_the_pools_transport_over_h2c_and_tls() {
    let cert = TestCert::new(&["backend.test"]);
    let clear = GrpcBackend::start(None).await;
    let secure = GrpcBackend::start(Some(pki::server(&cert, &[b"h2"]))).await;
    for (what, backend, pool) in [
        ("h2c", &clear, Pool::new("grpc")),
        ("h2 over TLS", &secure, tls_to("backend.test", &cert)),
    ] {
        let before = backend.connections.load(Ordering::Relaxed);
        let tether = Tether::start(config(backend.addr, checked(pool)).admin()).await;
        let admin = Admin::new(tether.addr("admin"));
        // Checks run on connections of their own: wait for several of them.
        let deadline = Instant::now() + Duration::from_secs(10);
        while backend.connections.load(Ordering::Relaxed) < before + 5 {
            assert!(
                Instant::now() < deadline,
                "{what}: no health checks reached the backend"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let b = admin.expect_backend("grpc", "grpc-1").await;
        assert_eq!(b["state"], "up", "{what}: {b}");
        assert_eq!(
            count(&b, "health_transitions"),
            0,
            "{what}: a check failed: {b}"
        );
        let (body, _) = call(tether.addr("web"), b"checked").await;
        assert_eq!(&body[..], b"received 7 bytes", "{what}");
    }
}
