//! HTTP/2 clients with prior knowledge (h2c) are served, proxied to HTTP/1.1 backends.

use crate::common::config::{Config, Listener, Pool};
use crate::common::{H2c, TestBackend, Tether};

fn config(backend: &TestBackend) -> Config {
    Config::round_robin(backend, Listener::web(), Pool::app())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_h2c_request_reaches_an_http1_backend_with_authority_as_host() {
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(config(&backend)).await;
    let mut h2 = H2c::connect(tether.addr("web")).await;

    let reply = h2.get("http://shop.example/").await;
    assert_eq!(reply.status, 200, "body: {}", reply.text());
    assert_eq!(reply.backend_id(), "app-1");
    assert_eq!(reply.text(), "app-1");

    let echo = h2.get("http://shop.example/echo?via=h2").await.echo();
    assert_eq!(echo.version, "HTTP/1.1", "backends speak HTTP/1.1");
    assert_eq!(echo.path, "/echo?via=h2");
    assert_eq!(
        echo.joined("host").as_deref(),
        Some("shop.example"),
        "{echo:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_streams_on_one_h2c_connection_all_complete() {
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(config(&backend)).await;
    let h2 = H2c::connect(tether.addr("web")).await;

    let mut streams = tokio::task::JoinSet::new();
    for i in 0..20 {
        let mut h2 = h2.clone();
        streams.spawn(async move {
            h2.get(&format!("http://shop.example/slow?ms={}", 50 + i))
                .await
        });
    }
    let mut done = 0;
    while let Some(reply) = streams.join_next().await {
        let reply = reply.expect("stream task");
        assert_eq!(reply.status, 200, "body: {}", reply.text());
        assert_eq!(reply.text(), "app-1");
        done += 1;
    }
    assert_eq!(done, 20);
    assert_eq!(backend.requests(), 20);
}
