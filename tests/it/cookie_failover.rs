//! A killed pinned backend costs its clients nothing: the next request is served elsewhere, re-pinned with a new cookie, and sticks to its new backend.

use crate::common::admin::count;
use crate::common::affinity::{self, explain, issued, set_cookies, Jar, COOKIE};
use crate::common::config::Pool;
use crate::common::{Admin, Http1, KillSwitch, TestBackend, Tether};

const IDS: [&str; 3] = ["alpha", "bravo", "charlie"];

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_pinned_backend_is_replaced_without_an_error() {
    let mut backends = Vec::new();
    let mut switches = Vec::new();
    for id in IDS {
        let backend = TestBackend::start(id).await;
        switches.push(KillSwitch::start(backend.addr).await);
        backends.push(backend);
    }
    let config = affinity::config(
        Pool::app()
            .set("balance", "round_robin")
            .set("affinity", "cookie")
            .set_in("cookie", "keys", vec!["failover-key-0123456789"]),
        &[
            (IDS[0], switches[0].addr),
            (IDS[1], switches[1].addr),
            (IDS[2], switches[2].addr),
        ],
    );
    let tether = Tether::start(&config).await;
    let client = Http1::new(tether.addr("web"));
    let admin = Admin::new(tether.addr("admin"));

    let mut jar = Jar::app();
    let first = jar.get(&client, "/").await;
    let dead = explain(&first).backend;
    let dead_cookie = jar.header().expect("pinned");
    // A few hits leave an idle keep-alive connection to the pinned backend in tether's pool.
    for _ in 0..5 {
        let reply = jar.get(&client, "/").await;
        assert_eq!(explain(&reply).backend, dead);
    }

    let index = IDS.iter().position(|id| *id == dead).expect("known id");
    switches[index].kill().await;
    let served_before_kill = backends[index].requests();

    let moved = jar.get(&client, "/").await;
    let seen = explain(&moved);
    assert_eq!(seen.why, "redispatch_down", "{seen:?}");
    assert_ne!(seen.backend, dead, "served by the killed backend?");
    let new_cookie = jar.header().expect("cookie");
    assert_ne!(
        new_cookie,
        dead_cookie,
        "not re-pinned: {:?}",
        set_cookies(&moved)
    );
    let home = seen.backend;

    for i in 0..20 {
        let reply = jar.get(&client, &format!("/after/{i}")).await;
        let seen = explain(&reply);
        assert_eq!(
            (seen.why.as_str(), seen.backend.as_str()),
            ("hit", home.as_str()),
            "request {i} after the re-pin"
        );
        assert!(
            set_cookies(&reply).is_empty(),
            "{i}: {:?}",
            set_cookies(&reply)
        );
    }

    // The old cookie keeps working too: every use is re-pinned, never an error.
    for i in 0..5 {
        let reply = affinity::get(&client, "/", Some(&dead_cookie)).await;
        assert_eq!(reply.status, 200, "old cookie {i}: {}", reply.text());
        let seen = explain(&reply);
        assert_eq!(seen.why, "redispatch_down", "old cookie {i}");
        assert_ne!(seen.backend, dead);
        assert!(
            issued(&reply, COOKIE).is_some(),
            "old cookie {i} not re-pinned"
        );
    }

    assert_eq!(
        backends[index].requests(),
        served_before_kill,
        "the killed backend was still reached"
    );
    let status = admin.expect_backend("app", &dead).await;
    assert!(count(&status, "redispatches") >= 1, "{status}");
    let status = admin.expect_backend("app", &home).await;
    assert!(count(&status, "pins") >= 1, "{status}");
}
