//! What a careful peer refuses, tether refuses before anything reaches a backend: credentials in
//! the target, an authority-form target on GET, a transfer coding it would drop, and an HTTP/2
//! Host that names another authority than `:authority`. A GET's chunked body is forwarded, not
//! lost.

use crate::common::client::H2c;
use crate::common::config::{Config, Listener, Pool};
use crate::common::hostile::attack;
use crate::common::{TestBackend, Tether};

async fn start() -> (TestBackend, Tether) {
    let backend = TestBackend::start("app-1").await;
    let config = Config::round_robin(&backend, Listener::web(), Pool::app());
    let tether = Tether::start(config).await;
    (backend, tether)
}

#[tokio::test(flavor = "multi_thread")]
async fn targets_and_codings_a_proxy_would_guess_at_are_refused() {
    let (backend, tether) = start().await;
    let cases: [(&[u8], u16, &str); 3] = [
        (
            b"GET http://user:secret@shop.example/echo HTTP/1.1\r\nHost: shop.example\r\n\r\n",
            400,
            "userinfo",
        ),
        (
            b"GET shop.example:80 HTTP/1.1\r\nHost: shop.example\r\n\r\n",
            400,
            "authority-form",
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n",
            501,
            "transfer codings",
        ),
    ];
    for (bytes, status, reason) in cases {
        let outcome = attack(tether.addr("web"), &backend, bytes).await;
        let what = String::from_utf8_lossy(bytes);
        assert_eq!(
            outcome.status(),
            Some(status),
            "{what}: {}",
            outcome.describe()
        );
        let body = &outcome.response.as_ref().expect("a response").body;
        assert!(
            String::from_utf8_lossy(body).contains(reason),
            "{what}: {}",
            outcome.describe()
        );
        assert_eq!(outcome.backend_requests, 0, "{what} reached the backend");
        assert!(outcome.closed_after, "{what}: the connection stayed open");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_with_a_chunked_body_reaches_the_backend_whole() {
    let (backend, tether) = start().await;
    let outcome = attack(
        tether.addr("web"),
        &backend,
        b"GET /echo HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    let echo = outcome
        .echo()
        .unwrap_or_else(|| panic!("no /echo answer: {}", outcome.describe()));
    assert_eq!(echo.method, "GET");
    assert_eq!(echo.body_len, 11, "the body was lost on the way: {echo:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_h2_host_naming_another_authority_is_refused() {
    let (backend, tether) = start().await;
    let mut h2 = H2c::connect(tether.addr("web")).await;
    let agreeing = h2
        .get_with_host("http://shop.example/echo", Some("SHOP.example"))
        .await;
    assert_eq!(agreeing.status, 200, "{agreeing:?}");
    let before = backend.requests();
    let other = h2
        .get_with_host("http://shop.example/echo", Some("admin.internal"))
        .await;
    assert_eq!(other.status, 400, "{other:?}");
    assert!(other.text().contains(":authority"), "{other:?}");
    assert_eq!(
        backend.requests(),
        before,
        "the request reached the backend"
    );
}
