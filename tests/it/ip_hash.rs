//! Consistent hashing by client: each client IP (or hash key) keeps its backend, clients spread evenly, and losing one backend moves exactly its own clients, who come back when it returns.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use http::Method;

use crate::common::affinity::{self, explain, Explain};
use crate::common::config::Pool;
use crate::common::source::{client_ip, explain_each};
use crate::common::{body, Admin, Http1, KillSwitch, Reply, TestBackend, Tether};

const IDS: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];
const CLIENTS: usize = 200;

/// The backend each client landed on, asserting every choice was made by the hash.
fn backends_of(explained: &[Explain]) -> Vec<String> {
    explained
        .iter()
        .map(|e| {
            assert_eq!(e.why, "hash", "{e:?}");
            e.backend.clone()
        })
        .collect()
}

/// Asserts that exactly the clients of `lost` moved between `before` and `after`, and that
/// none of them landed on `lost`; returns how many moved.
fn only_lost_clients_moved(
    clients: &[Ipv4Addr],
    before: &[String],
    after: &[String],
    lost: &str,
) -> usize {
    let mut moved = 0;
    for ((client, was), is) in clients.iter().zip(before).zip(after) {
        if was == lost {
            assert_ne!(is, lost, "{client} still served by lost backend {lost}");
            moved += 1;
        } else {
            assert_eq!(
                is, was,
                "{client} moved off {was}, though only {lost} was lost"
            );
        }
    }
    moved
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_spread_evenly_and_only_a_lost_backends_clients_move() {
    let mut backends = Vec::new();
    for id in IDS {
        backends.push(TestBackend::start(id).await);
    }
    // delta sits behind a relay so it can be killed outright later.
    let mut delta_switch = KillSwitch::start(backends[3].addr).await;
    let config = affinity::config(
        Pool::app().set("affinity", "ip_hash"),
        &[
            (IDS[0], backends[0].addr),
            (IDS[1], backends[1].addr),
            (IDS[2], backends[2].addr),
            (IDS[3], delta_switch.addr),
        ],
    );
    let tether = Tether::start(&config).await;
    let web = tether.addr("web");
    let admin = Admin::new(tether.addr("admin"));
    let clients: Vec<Ipv4Addr> = (0..CLIENTS).map(client_ip).collect();

    let base = backends_of(&explain_each(web, &clients, "/").await);
    for round in 0..2 {
        let again = backends_of(&explain_each(web, &clients, "/").await);
        assert_eq!(again, base, "round {round}: some client changed backend");
    }
    let mut share: BTreeMap<&str, usize> = IDS.iter().map(|id| (*id, 0)).collect();
    for b in &base {
        *share.get_mut(b.as_str()).expect("known backend") += 1;
    }
    for (id, n) in &share {
        let percent = n * 100 / CLIENTS;
        assert!(
            (15..=35).contains(&percent),
            "{id} got {n} of {CLIENTS} clients ({percent}%); all: {share:?}"
        );
    }

    let reply = admin.post("/pools/app/backends/bravo/disable").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    admin
        .wait_state("app", "bravo", "disabled", Duration::from_secs(2))
        .await;
    let disabled = backends_of(&explain_each(web, &clients, "/").await);
    let moved = only_lost_clients_moved(&clients, &base, &disabled, "bravo");
    assert_eq!(moved, share["bravo"]);

    let reply = admin.post("/pools/app/backends/bravo/enable").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    admin
        .wait_state("app", "bravo", "up", Duration::from_secs(2))
        .await;
    let back = backends_of(&explain_each(web, &clients, "/").await);
    assert_eq!(
        back, base,
        "clients did not return to bravo when it came back"
    );

    // Killed without a health check: its clients are retried along the ring, every request
    // still a 200, and nobody else moves.
    delta_switch.kill().await;
    let killed = backends_of(&explain_each(web, &clients, "/").await);
    let moved = only_lost_clients_moved(&clients, &base, &killed, "delta");
    assert_eq!(moved, share["delta"]);
}

async fn get_as(client: &Http1, user: Option<&str>) -> Reply {
    let mut request = client.request(Method::GET, "/");
    if let Some(user) = user {
        request = request.header("x-user", user);
    }
    let request = request.body(body::empty()).expect("request");
    let response = client.send(request).await.expect("GET / via tether");
    let reply = Reply::read(response).await;
    assert_eq!(reply.status, 200, "user {user:?}: {}", reply.text());
    reply
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_hash_keeps_each_user_on_one_backend() {
    let mut backends = Vec::new();
    for id in &IDS[..3] {
        backends.push(TestBackend::start(id).await);
    }
    let listed: Vec<(&str, _)> = backends.iter().map(|b| (b.id.as_str(), b.addr)).collect();
    let config = affinity::config(
        Pool::app()
            .set("balance", "hash")
            .set("hash_key", "header:x-user"),
        &listed,
    );
    let tether = Tether::start(&config).await;
    // One connection, one peer address for every user: only the header can tell them apart.
    let client = Http1::new(tether.addr("web"));

    let mut home: BTreeMap<String, String> = BTreeMap::new();
    for round in 0..4 {
        for u in 0..30 {
            let user = format!("user-{u}");
            let seen = explain(&get_as(&client, Some(&user)).await);
            assert_eq!(seen.why, "hash", "{user}");
            let first = home.entry(user.clone()).or_insert(seen.backend.clone());
            assert_eq!(
                *first, seen.backend,
                "round {round}: {user} changed backend"
            );
        }
    }
    let used: std::collections::BTreeSet<&String> = home.values().collect();
    assert_eq!(used.len(), 3, "30 users all hashed onto {used:?}");

    // Without the header there is nothing to hash: plain balancing, still served.
    let seen = explain(&get_as(&client, None).await);
    assert_eq!(seen.why, "none");
}
