//! Anti-affinity (`affinity = "spread"`): each client's next request goes to a different backend than its last one, remembered only in tether's cookie.

use crate::common::affinity::{self, explain, Jar};
use crate::common::config::Pool;
use crate::common::{Http1, TestBackend, Tether};

const IDS: [&str; 3] = ["alpha", "bravo", "charlie"];

#[tokio::test(flavor = "multi_thread")]
async fn no_client_hits_the_same_backend_twice_in_a_row() {
    let mut backends = Vec::new();
    for id in IDS {
        backends.push(TestBackend::start(id).await);
    }
    let listed: Vec<(&str, _)> = backends.iter().map(|b| (b.id.as_str(), b.addr)).collect();
    let config = affinity::config(
        Pool::app()
            .set("balance", "round_robin")
            .set("affinity", "spread")
            .set_in("cookie", "keys", vec!["spread-key-0123456789"]),
        &listed,
    );
    let tether = Tether::start(&config).await;
    let client = Http1::new(tether.addr("web"));

    // Three jars interleaved: plain round robin over three backends would give each of them
    // the same backend every time, so only the cookie can keep them moving.
    let mut jars = [Jar::app(), Jar::app(), Jar::app()];
    let mut history: [Vec<String>; 3] = Default::default();
    for round in 0..30 {
        for (jar, seen) in jars.iter_mut().zip(history.iter_mut()) {
            let reply = jar.get(&client, &format!("/r/{round}")).await;
            let e = explain(&reply);
            assert_eq!(e.why, "spread", "{e:?}");
            seen.push(e.backend);
        }
    }
    for (n, seen) in history.iter().enumerate() {
        for (i, pair) in seen.windows(2).enumerate() {
            assert_ne!(
                pair[0],
                pair[1],
                "jar {n}: requests {i} and {} both went to {}; history {seen:?}",
                i + 1,
                pair[0]
            );
        }
    }
}
