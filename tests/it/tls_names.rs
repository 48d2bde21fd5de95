//! TLS to backends reached by name: a backend at `localhost:PORT`, or discovered under a name a
//! real name server (dnsmasq) answers (by `dns`, or as an SRV record's target), is verified
//! against that name, which is also the SNI it receives, with no `tls_sni`; a certificate for
//! another name is refused; `tls_sni` still overrides the name; active health checks verify it
//! against the same name.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

use crate::common::config::{Config, Listener, Pool};
use crate::common::dns::{resolver, skip};
use crate::common::dnsmasq::Dnsmasq;
use crate::common::pki::{self, TestCert};
use crate::common::{Admin, Http1, Tether};

/// An HTTP/1.1 backend over TLS with one certificate, noting the SNI of each handshake.
struct TlsBackend {
    addr: SocketAddr,
    sni: Arc<Mutex<Vec<Option<String>>>>,
}

impl TlsBackend {
    async fn start(cert: &TestCert) -> TlsBackend {
        let acceptor = pki::server(cert, &[b"http/1.1"]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sni = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&sni);
        tokio::spawn(async move {
            // Ends with the test's runtime.
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), Arc::clone(&seen));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let name = tls.get_ref().1.server_name().map(str::to_string);
                    seen.lock().unwrap().push(name);
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"tls ok"))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TlsBackend { addr, sni }
    }

    fn sni_seen(&self) -> Vec<Option<String>> {
        self.sni.lock().unwrap().clone()
    }
}

/// Every handshake `backend` saw (at least one) asked for `name`.
fn assert_sni(backend: &TlsBackend, name: &str) {
    let seen = backend.sni_seen();
    assert!(
        !seen.is_empty() && seen.iter().all(|s| s.as_deref() == Some(name)),
        "SNI seen: {seen:?}"
    );
}

/// Pool `app` over TLS, trusting exactly `ca`.
fn tls_pool(ca: &TestCert) -> Pool {
    Pool::app()
        .set("tls", true)
        .set("tls_ca", ca.cert.display().to_string())
}

/// `config` with backend `id` at `localhost:PORT` (names cannot be given to the builder).
fn with_named_backend(config: Config, port: u16) -> String {
    format!("{config}\n[[pool.app.backend]]\nid = \"named\"\naddr = \"localhost:{port}\"\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_reached_by_name_is_verified_against_that_name_without_tls_sni() {
    // The certificate names `localhost` only, not 127.0.0.1: verifying the IP would fail.
    let cert = TestCert::new(&["localhost"]);
    let backend = TlsBackend::start(&cert).await;
    let config = Config::new()
        .listener(Listener::web())
        .pool(tls_pool(&cert));
    let tether = Tether::start(&with_named_backend(config, backend.addr.port())).await;
    let reply = Http1::new(tether.addr("web")).get("/").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "tls ok");
    assert_sni(&backend, "localhost");

    // Verification is on: a certificate for another name is refused.
    let other = TestCert::new(&["other.test"]);
    let impostor = TlsBackend::start(&other).await;
    let config = Config::new()
        .listener(Listener::web())
        .pool(tls_pool(&cert));
    let tether = Tether::start(&with_named_backend(config, impostor.addr.port())).await;
    assert_eq!(Http1::new(tether.addr("web")).get("/").await.status, 502);

    // The pool's tls_sni still decides when set.
    let pool = tls_pool(&other).set("tls_sni", "other.test");
    let config = Config::new().listener(Listener::web()).pool(pool);
    let tether = Tether::start(&with_named_backend(config, impostor.addr.port())).await;
    assert_eq!(Http1::new(tether.addr("web")).get("/").await.status, 200);
    assert_eq!(impostor.sni_seen().last(), Some(&Some("other.test".into())));
}

#[tokio::test(flavor = "multi_thread")]
async fn discovered_backends_are_verified_against_the_name_they_were_discovered_by() {
    if skip() {
        return;
    }
    let cert = TestCert::new(&["secure.app.test"]);
    let backend = TlsBackend::start(&cert).await;
    let dns = Dnsmasq::start(&[("127.0.0.1", "secure.app.test")], &[])
        .await
        .expect("dnsmasq");
    let pool = tls_pool(&cert)
        .set_in("discover", "dns", "secure.app.test")
        .set_in("discover", "port", i64::from(backend.addr.port()));
    let config = resolver(Config::new().listener(Listener::web()).pool(pool), &dns);
    let tether = Tether::start(&config).await;
    let reply = Http1::new(tether.addr("web")).get("/").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_sni(&backend, "secure.app.test");
}

#[tokio::test(flavor = "multi_thread")]
async fn srv_discovered_backends_are_verified_against_their_record_target() {
    if skip() {
        return;
    }
    let cert = TestCert::new(&["one.app.test"]);
    let backend = TlsBackend::start(&cert).await;
    let record = format!(
        "--srv-host=_https._tcp.app.test,one.app.test,{},0,1",
        backend.addr.port()
    );
    let dns = Dnsmasq::start(&[("127.0.0.1", "one.app.test")], &[record])
        .await
        .expect("dnsmasq");
    let pool = tls_pool(&cert).set_in("discover", "srv", "_https._tcp.app.test");
    let config = resolver(Config::new().listener(Listener::web()).pool(pool), &dns);
    let tether = Tether::start(&config).await;
    let reply = Http1::new(tether.addr("web")).get("/").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_sni(&backend, "one.app.test");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_verify_a_named_backend_against_its_name_too() {
    let cert = TestCert::new(&["localhost"]);
    let backend = TlsBackend::start(&cert).await;
    // A check every 100 ms that takes the backend down at its first failure.
    let pool = tls_pool(&cert)
        .set_in("health", "interval", "100ms")
        .set_in("health", "timeout", "90ms")
        .set_in("health", "fall", 1);
    let config = Config::new().admin().listener(Listener::web()).pool(pool);
    let tether = Tether::start(&with_named_backend(config, backend.addr.port())).await;
    let admin = Admin::new(tether.addr("admin"));
    // Checks run on connections of their own: wait for several handshakes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.sni_seen().len() < 5 {
        assert!(
            Instant::now() < deadline,
            "no health checks reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_sni(&backend, "localhost");
    let b = admin.expect_backend("app", "named").await;
    assert_eq!(b["state"], "up", "{b}");
    assert_eq!(b["health_transitions"], 0, "a check failed: {b}");
}
