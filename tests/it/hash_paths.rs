//! Paths users rely on that no other test walks: hash keys from a cookie or a query
//! parameter, bounded load spilling a hot key, a draining backend in a hash mode, slow start
//! (and its absence on the hash path), and `all_down = "route"`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use http::Method;

use crate::common::affinity::{self, explain, Explain};
use crate::common::config::{Config, Listener, Pool};
use crate::common::source::{client_ip, explain_each};
use crate::common::{body, serial, Admin, Http1, Reply, TestBackend, Tether};

const IDS: [&str; 3] = ["alpha", "bravo", "charlie"];

async fn backends() -> Vec<TestBackend> {
    let mut all = Vec::new();
    for id in IDS {
        all.push(TestBackend::start(id).await);
    }
    all
}

fn listed(backends: &[TestBackend]) -> Vec<(&str, std::net::SocketAddr)> {
    backends.iter().map(|b| (b.id.as_str(), b.addr)).collect()
}

/// `GET path` with extra headers; the whole reply, asserted 200.
async fn get(client: &Http1, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = client.request(Method::GET, path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = client
        .send(request.body(body::empty()).expect("request"))
        .await
        .expect("GET via tether");
    let reply = Reply::read(response).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_and_query_hash_keys_keep_each_user_on_one_backend() {
    let backends = backends().await;
    for key in ["cookie:uid", "query:user"] {
        let pool = Pool::app().set("balance", "hash").set("hash_key", key);
        let tether = Tether::start(&affinity::config(pool, &listed(&backends))).await;
        let client = Http1::new(tether.addr("web"));
        let mut home: BTreeMap<String, String> = BTreeMap::new();
        for round in 0..3 {
            for u in 0..30 {
                let user = format!("user-{u}");
                let cookie = format!("theme=dark; uid={user}");
                let reply = if key.starts_with("cookie") {
                    get(&client, "/", &[("cookie", &cookie)]).await
                } else {
                    get(&client, &format!("/?page=2&user={user}"), &[]).await
                };
                let seen = explain(&reply);
                assert_eq!(seen.why, "hash", "{key} {user}");
                let first = home.entry(user.clone()).or_insert(seen.backend.clone());
                assert_eq!(*first, seen.backend, "{key} round {round}: {user} moved");
            }
        }
        let used: std::collections::BTreeSet<&String> = home.values().collect();
        assert_eq!(used.len(), 3, "{key}: 30 users all on {used:?}");
        // No key in the request: plain balancing.
        assert_eq!(explain(&get(&client, "/?page=2", &[]).await).why, "none");
    }
}

/// `n` concurrent `/slow` requests for one user; how each was explained.
async fn hot_user(client: &Http1, n: usize) -> Vec<Explain> {
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        calls.spawn(
            async move { explain(&get(&client, "/slow?ms=600", &[("x-user", "hot")]).await) },
        );
    }
    let mut seen = Vec::new();
    while let Some(done) = calls.join_next().await {
        seen.push(done.expect("request task"));
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn bounded_load_spills_a_hot_key_and_without_it_one_backend_takes_all() {
    let _timed = serial::timed().await;
    let backends = backends().await;
    let pool = |max_load: Option<f64>| {
        let pool = Pool::app()
            .set("balance", "hash")
            .set("hash_key", "header:x-user");
        match max_load {
            Some(f) => pool.set("max_load", f),
            None => pool,
        }
    };
    let unbounded = Tether::start(&affinity::config(pool(None), &listed(&backends))).await;
    let seen = hot_user(&Http1::new(unbounded.addr("web")), 12).await;
    let homes: std::collections::BTreeSet<&str> = seen.iter().map(|e| e.backend.as_str()).collect();
    assert_eq!(
        homes.len(),
        1,
        "without max_load one backend takes the key: {seen:?}"
    );
    let home = homes.into_iter().next().unwrap().to_string();

    let bounded = Tether::start(&affinity::config(pool(Some(1.25)), &listed(&backends))).await;
    let seen = hot_user(&Http1::new(bounded.addr("web")), 12).await;
    let spilled: Vec<&Explain> = seen.iter().filter(|e| e.why == "spill").collect();
    assert!(
        !spilled.is_empty(),
        "12 at once on one key, nothing spilled: {seen:?}"
    );
    assert!(spilled.iter().all(|e| e.backend != home), "{seen:?}");
    let at_home = seen.iter().filter(|e| e.backend == home).count();
    // 1.25 x the mean of 12 over 3 backends is 5.
    assert!(
        (1..=5).contains(&at_home),
        "{at_home} of 12 at home: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn in_ip_hash_a_draining_backend_keeps_every_client_that_hashes_to_it_until_drained() {
    let backends = backends().await;
    let pool = Pool::app()
        .set("affinity", "ip_hash")
        .set("drain_quiet", "300ms")
        .set("drain_timeout", "30s");
    let tether = Tether::start(&affinity::config(pool, &listed(&backends))).await;
    let admin = Admin::new(tether.addr("admin"));
    let web = tether.addr("web");
    // Clients seen before the drain, and clients first seen during it.
    let known: Vec<_> = (0..60).map(client_ip).collect();
    let fresh: Vec<_> = (60..120).map(client_ip).collect();
    let before = explain_each(web, &known, "/").await;

    let reply = admin.post("/pools/app/backends/bravo/drain").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // While it drains, tether cannot tell a new client from a returning one: both keep the
    // backend they hash to.
    let during = explain_each(web, &known, "/").await;
    for (b, d) in before.iter().zip(&during) {
        assert_eq!(b.backend, d.backend, "a client moved during the drain");
    }
    let fresh_during = explain_each(web, &fresh, "/").await;
    assert!(
        fresh_during.iter().any(|e| e.backend == "bravo"),
        "no new client hashed to the draining backend: {fresh_during:?}"
    );
    // Quiet for drain_quiet: drained, and its clients (only they) move along the ring.
    admin
        .wait_state("app", "bravo", "drained", Duration::from_secs(5))
        .await;
    let after = explain_each(web, &known, "/").await;
    for (b, a) in before.iter().zip(&after) {
        if b.backend == "bravo" {
            assert_ne!(a.backend, "bravo");
        } else {
            assert_eq!(a.backend, b.backend, "a client of {} moved", b.backend);
        }
    }
}

/// Share of `n` round-robin requests that `id` served.
async fn share(client: &Http1, id: &str, n: usize) -> f64 {
    let mut hits = 0;
    for _ in 0..n {
        if explain(&get(client, "/", &[]).await).backend == id {
            hits += 1;
        }
    }
    hits as f64 / n as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_start_ramps_a_returning_backend_but_not_on_the_hash_path() {
    let _timed = serial::timed().await;
    let backends = backends().await;
    let two = &listed(&backends)[..2];
    let config = |pool: Pool| affinity::config(pool.set("slow_start", "6s"), two);

    let balanced = Tether::start(&config(Pool::app().set("balance", "round_robin"))).await;
    let admin = Admin::new(balanced.addr("admin"));
    let client = Http1::new(balanced.addr("web"));
    assert!((share(&client, "bravo", 40).await - 0.5).abs() < 0.15);
    admin.post("/pools/app/backends/bravo/disable").await;
    admin.post("/pools/app/backends/bravo/enable").await;
    let enabled = Instant::now();
    let early = share(&client, "bravo", 100).await;
    assert!(
        enabled.elapsed() < Duration::from_secs(3),
        "too slow to measure the ramp"
    );
    assert!(early < 0.3, "bravo took {early:.2} right after enable");

    // Hashed clients go home at once: their backend is theirs, not a share to ramp.
    let hashed = Tether::start(&config(Pool::app().set("affinity", "ip_hash"))).await;
    let admin = Admin::new(hashed.addr("admin"));
    let clients: Vec<_> = (0..40).map(client_ip).collect();
    let before = explain_each(hashed.addr("web"), &clients, "/").await;
    assert!(before.iter().any(|e| e.backend == "bravo"));
    admin.post("/pools/app/backends/bravo/disable").await;
    admin.post("/pools/app/backends/bravo/enable").await;
    let after = explain_each(hashed.addr("web"), &clients, "/").await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            b.backend, a.backend,
            "a hashed client did not go home at once"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_all_down_route_a_pool_whose_checks_all_fail_still_serves() {
    let backends = backends().await;
    let pool = Pool::app()
        .set("all_down", "route")
        .set_in("health", "path", "/healthz")
        .set_in("health", "interval", "100ms")
        .set_in("health", "timeout", "90ms")
        .set_in("health", "fall", 1);
    let config = Config::new()
        .admin()
        .listener(Listener::web())
        .pool(pool.backends(&listed(&backends)));
    let tether = Tether::start(&config).await;
    let admin = Admin::new(tether.addr("admin"));
    for b in &backends {
        b.set_health(500);
    }
    for id in IDS {
        admin
            .wait_state("app", id, "down", Duration::from_secs(5))
            .await;
    }
    let client = Http1::new(tether.addr("web"));
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let reply = get(&client, "/", &[]).await;
        served.insert(reply.backend_id().to_string());
    }
    assert_eq!(
        served.len(),
        3,
        "failing open should still spread: {served:?}"
    );
}
