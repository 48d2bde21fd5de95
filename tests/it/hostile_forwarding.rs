//! Forwarding headers a client sends from an untrusted address (every spelling and repeat of
//! X-Forwarded-*, Forwarded, the explain header) are replaced by tether's own.

use crate::common::config::{Config, Listener, Pool};
use crate::common::hostile::attack;
use crate::common::{TestBackend, Tether};

#[tokio::test(flavor = "multi_thread")]
async fn spoofed_forwarding_headers_from_an_untrusted_client_are_replaced() {
    let backend = TestBackend::start("app-1").await;
    // Trusts some other network, not the loopback client.
    let tether = Tether::start(Config::round_robin(
        &backend,
        Listener::web(),
        Pool::app().set("trusted_proxies", vec!["10.0.0.0/8"]),
    ))
    .await;

    let outcome = attack(
        tether.addr("web"),
        &backend,
        b"GET /echo HTTP/1.1\r\nHost: shop.example\r\n\
          X-Forwarded-For: 203.0.113.9\r\n\
          x-forwarded-for: 198.51.100.1, 10.0.0.1\r\n\
          X-FORWARDED-FOR: 192.0.2.77\r\n\
          X-Forwarded-Proto: https\r\n\
          X-Forwarded-Host: admin.internal\r\n\
          Forwarded: for=203.0.113.9;proto=https;host=admin.internal\r\n\
          forwarded: for=\"[2001:db8::1]\"\r\n\
          X-Tether-Affinity: hit; backend=app-9\r\n\
          Connection: close\r\n\r\n",
    )
    .await;
    let echo = outcome
        .echo()
        .unwrap_or_else(|| panic!("no /echo answer: {}", outcome.describe()));

    assert_eq!(echo.values("x-forwarded-for"), ["127.0.0.1"], "{echo:?}");
    assert_eq!(echo.values("x-forwarded-proto"), ["http"], "{echo:?}");
    assert_eq!(
        echo.values("x-forwarded-host"),
        ["shop.example"],
        "{echo:?}"
    );
    assert_eq!(echo.values("host"), ["shop.example"], "{echo:?}");
    assert!(
        echo.values("forwarded")
            .iter()
            .all(|v| !v.contains("203.0.113.9")
                && !v.contains("2001:db8")
                && !v.contains("admin.internal")),
        "a client-supplied Forwarded reached the backend: {echo:?}"
    );
    assert!(!echo.has("x-tether-affinity"), "{echo:?}");
    assert_eq!(outcome.backend_requests, 1);
}
