//! TLS termination: SNI picks the certificate, ALPN negotiates h2 or HTTP/1.1, and the
//! affinity cookie is Secure on TLS listeners.

use crate::common;
use crate::common::config::{table, Config, Listener, Pool};
use std::net::SocketAddr;

use crate::common::pki::{self, TestCert};
use crate::common::{TestBackend, Tether};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;

fn config(backend: &TestBackend, a: &TestCert, b: &TestCert) -> Config {
    let certs = vec![cert_and_key(a), cert_and_key(b)];
    Config::new()
        .listener(Listener::new("tls", "app").set("tls", table([("certs", certs.into())])))
        .pool(
            Pool::app()
                .set("affinity", "cookie")
                .set_in("cookie", "keys", vec!["0123456789abcdef0123"])
                .backend(&backend.id, backend.addr),
        )
}

/// `{ cert = "...", key = "..." }` for one test certificate.
fn cert_and_key(cert: &TestCert) -> toml::Value {
    table([
        ("cert", cert.cert.display().to_string().into()),
        ("key", cert.key.display().to_string().into()),
    ])
}

/// Connects with TLS to `addr` for `sni`; returns the negotiated ALPN and the peer's leaf cert.
async fn handshake(
    addr: SocketAddr,
    sni: &str,
    roots: &[&TestCert],
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    pki::client(roots, alpn).connect(name, tcp).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_picks_the_certificate_for_the_name() {
    let backend = TestBackend::start("app-1").await;
    let a = TestCert::new(&["a.test"]);
    let b = TestCert::new(&["b.test", "*.b.test"]);
    let tether = Tether::start(config(&backend, &a, &b)).await;
    let addr = tether.addr("tls");

    // Each name verifies only against its own certificate.
    assert!(handshake(addr, "a.test", &[&a], &[b"http/1.1"])
        .await
        .is_ok());
    assert!(handshake(addr, "b.test", &[&b], &[b"http/1.1"])
        .await
        .is_ok());
    assert!(
        handshake(addr, "api.b.test", &[&b], &[b"http/1.1"])
            .await
            .is_ok(),
        "wildcard"
    );
    assert!(
        handshake(addr, "b.test", &[&a], &[b"http/1.1"])
            .await
            .is_err(),
        "b.test must not be served a.test's certificate"
    );
    // Unknown names get the first (default) certificate: the client's name check fails and
    // rustls says which names the served certificate is valid for.
    let err = handshake(addr, "other.test", &[&a, &b], &[b"http/1.1"])
        .await
        .expect_err("other.test is in no certificate")
        .to_string();
    assert!(err.contains("a.test") && !err.contains("b.test"), "{err}");
    let served = handshake(addr, "a.test", &[&a], &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(served.get_ref().1.peer_certificates().unwrap()[0], a.der);
}

#[tokio::test(flavor = "multi_thread")]
async fn alpn_h2_and_http1_both_reach_the_backend_and_the_cookie_is_secure() {
    let backend = TestBackend::start("app-1").await;
    let a = TestCert::new(&["a.test"]);
    let b = TestCert::new(&["b.test"]);
    let tether = Tether::start(config(&backend, &a, &b)).await;
    let addr = tether.addr("tls");

    let h2 = handshake(addr, "a.test", &[&a], &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(h2))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://a.test/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"app-1");

    let h1 = handshake(addr, "a.test", &[&a], &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(h1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(h1))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/echo")
        .header("host", "a.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let echo = common::Echo::parse(&body);
    assert_eq!(echo.joined("x-forwarded-proto").as_deref(), Some("https"));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_names_an_unreadable_certificate() {
    let out = common::tether::check_config(
        r#"
[[listener]]
listen = "127.0.0.1:0"
pool = "app"
tls = { cert = "/nonexistent/cert.pem", key = "/nonexistent/key.pem" }
[pool.app]
[[pool.app.backend]]
id = "a"
addr = "127.0.0.1:1"
"#,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listener[0].tls"), "{err}");
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_swaps_certificates_for_new_handshakes_without_dropping_connections() {
    let backend = TestBackend::start("app-1").await;
    let old = TestCert::new(&["a.test"]);
    let new = TestCert::new(&["a.test"]);
    // The listener's files are fixed paths; the reload re-reads whatever they hold then.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("a.pem"), dir.path().join("a.key"));
    std::fs::copy(&old.cert, &cert).unwrap();
    std::fs::copy(&old.key, &key).unwrap();
    let config = Config::new()
        .admin()
        .listener(Listener::new("tls", "app").set(
            "tls",
            table([
                ("cert", cert.display().to_string().into()),
                ("key", key.display().to_string().into()),
            ]),
        ))
        .pool(Pool::app().backend(&backend.id, backend.addr));
    let tether = Tether::start(&config).await;
    let addr = tether.addr("tls");

    // An established connection on the old certificate...
    let stream = handshake(addr, "a.test", &[&old], &[b"http/1.1"])
        .await
        .unwrap();
    let (mut open, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let get = || {
        http::Request::get("/")
            .header("host", "a.test")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    assert_eq!(open.send_request(get()).await.unwrap().status(), 200);

    std::fs::copy(&new.cert, &cert).unwrap();
    std::fs::copy(&new.key, &key).unwrap();
    let admin = common::Admin::new(tether.addr("admin"));
    assert_eq!(admin.post("/reload").await.status, 200);

    // ...keeps working, while new handshakes get the new certificate.
    open.ready().await.unwrap();
    assert_eq!(open.send_request(get()).await.unwrap().status(), 200);
    let fresh = handshake(addr, "a.test", &[&new], &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(fresh.get_ref().1.peer_certificates().unwrap()[0], new.der);
    assert!(handshake(addr, "a.test", &[&old], &[b"http/1.1"])
        .await
        .is_err());
}
