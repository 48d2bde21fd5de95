//! Stickiness is stateless across instances: two tether processes with the same config honour each other's cookies (with configured or derived keys) and map every client IP identically.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::common::affinity::{self, explain, set_cookies, Jar};
use crate::common::config::Pool;
use crate::common::source::{client_ip, explain_each};
use crate::common::{Http1, TestBackend, Tether};

const IDS: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];

async fn start_backends(n: usize) -> Vec<TestBackend> {
    let mut backends = Vec::new();
    for id in &IDS[..n] {
        backends.push(TestBackend::start(id).await);
    }
    backends
}

/// Pins 9 clients on `first` (round robin: every backend gets some) and checks that `second`
/// sends each of them to the same backend as a hit, without re-issuing the cookie.
async fn cookies_carry_over(first: &Tether, second: &Tether) {
    let (one, two) = (
        Http1::new(first.addr("web")),
        Http1::new(second.addr("web")),
    );
    let mut pinned_to = BTreeSet::new();
    for n in 0..9 {
        let mut jar = Jar::app();
        let pinned = explain(&jar.get(&one, "/").await);
        assert_eq!(pinned.why, "new");
        pinned_to.insert(pinned.backend.clone());
        for i in 0..3 {
            let reply = jar.get(&two, "/").await;
            let seen = explain(&reply);
            assert_eq!(
                (seen.why.as_str(), seen.backend.as_str()),
                ("hit", pinned.backend.as_str()),
                "client {n}, request {i} on the second instance"
            );
            assert!(set_cookies(&reply).is_empty(), "{:?}", set_cookies(&reply));
        }
    }
    assert_eq!(
        pinned_to.len(),
        3,
        "the test must pin clients to every backend"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cookie_sealed_with_a_configured_key_works_on_both_instances() {
    let backends = start_backends(3).await;
    let listed: Vec<(&str, _)> = backends.iter().map(|b| (b.id.as_str(), b.addr)).collect();
    let config = affinity::config(
        Pool::app()
            .set("balance", "round_robin")
            .set("affinity", "cookie")
            .set_in("cookie", "keys", vec!["shared-secret-0123456789"]),
        &listed,
    );
    let first = Tether::start(&config).await;
    let second = Tether::start(&config).await;
    cookies_carry_over(&first, &second).await;
    cookies_carry_over(&second, &first).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cookie_sealed_with_the_derived_key_works_on_both_instances() {
    let backends = start_backends(3).await;
    let listed: Vec<(&str, _)> = backends.iter().map(|b| (b.id.as_str(), b.addr)).collect();
    let config = affinity::config(
        Pool::app()
            .set("balance", "round_robin")
            .set("affinity", "cookie"),
        &listed,
    );
    let first = Tether::start(&config).await;
    let second = Tether::start(&config).await;
    cookies_carry_over(&first, &second).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_hash_maps_every_client_identically_on_both_instances() {
    let backends = start_backends(4).await;
    let listed: Vec<(&str, _)> = backends.iter().map(|b| (b.id.as_str(), b.addr)).collect();
    let config = affinity::config(Pool::app().set("affinity", "ip_hash"), &listed);
    let first = Tether::start(&config).await;
    let second = Tether::start(&config).await;
    // Another range than ip_hash.rs uses, so the two tests do not merely agree by construction.
    let clients: Vec<Ipv4Addr> = (1000..1050).map(client_ip).collect();

    let on_first = explain_each(first.addr("web"), &clients, "/").await;
    let on_second = explain_each(second.addr("web"), &clients, "/").await;
    for ((client, a), b) in clients.iter().zip(&on_first).zip(&on_second) {
        assert_eq!(a.why, "hash", "{client}: {a:?}");
        assert_eq!(a, b, "{client} maps differently on the two instances");
    }
    let used: BTreeSet<&str> = on_first.iter().map(|e| e.backend.as_str()).collect();
    assert_eq!(used.len(), 4, "50 clients all mapped onto {used:?}");
}
