//! Draining a pinned backend keeps its pinned clients until the drain completes (quiet for drain_quiet, or drain_timeout), then re-pins them; new clients never land on it.

use std::time::{Duration, Instant};

use crate::common::admin::count;
use crate::common::affinity::{self, explain, issued, set_cookies, Jar, COOKIE};
use crate::common::config::Pool;
use crate::common::serial;
use crate::common::{Admin, Http1, TestBackend, Tether};

const IDS: [&str; 3] = ["alpha", "bravo", "charlie"];
/// Scheduling and /status polling on a loaded 2-core debug build.
const SLACK: Duration = Duration::from_millis(1500);

async fn start(drain_timeout: &str, drain_quiet: &str) -> (Vec<TestBackend>, Tether) {
    let mut backends = Vec::new();
    for id in IDS {
        backends.push(TestBackend::start(id).await);
    }
    let pool = Pool::app()
        .set("balance", "round_robin")
        .set("affinity", "cookie")
        .set("drain_timeout", drain_timeout)
        .set("drain_quiet", drain_quiet)
        .set_in("cookie", "keys", vec!["drain-key-0123456789"]);
    let listed: Vec<(&str, _)> = backends.iter().map(|b| (b.id.as_str(), b.addr)).collect();
    let config = affinity::config(pool, &listed);
    let tether = Tether::start(&config).await;
    (backends, tether)
}

async fn drain(admin: &Admin, id: &str) -> Instant {
    let reply = admin.post(&format!("/pools/app/backends/{id}/drain")).await;
    assert_eq!(reply.status, 200, "drain {id}: {}", reply.text());
    Instant::now()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pinned_client_stays_until_it_goes_quiet_then_moves() {
    let _timed = serial::timed().await;
    let quiet = Duration::from_secs(1);
    let (_backends, tether) = start("30s", "1s").await;
    let client = Http1::new(tether.addr("web"));
    let admin = Admin::new(tether.addr("admin"));

    let mut pinned = Jar::app();
    let draining = explain(&pinned.get(&client, "/").await).backend;
    let drain_started = drain(&admin, &draining).await;

    // Longer than drain_quiet in all, but the pinned client never pauses that long.
    let rounds = 8;
    let mut last_pinned = Instant::now();
    for round in 0..rounds {
        last_pinned = Instant::now();
        let reply = pinned.get(&client, &format!("/pinned/{round}")).await;
        let seen = explain(&reply);
        assert_eq!(
            (seen.why.as_str(), seen.backend.as_str()),
            ("hit", draining.as_str()),
            "round {round}: the pinned client left its draining backend"
        );
        assert!(set_cookies(&reply).is_empty(), "round {round}: re-issued");
        for n in 0..3 {
            let fresh = affinity::get(&client, "/fresh", None).await;
            assert_eq!(fresh.status, 200, "{}", fresh.text());
            let seen = explain(&fresh);
            assert_ne!(
                seen.backend, draining,
                "round {round}: new client {n} sent to a draining backend"
            );
            assert_eq!(seen.why, "new");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        drain_started.elapsed() > quiet,
        "the loop must outlast drain_quiet"
    );
    assert_eq!(
        admin.state("app", &draining).await.as_deref(),
        Some("draining"),
        "drained while its pinned client was still active"
    );

    admin
        .wait_state("app", &draining, "drained", quiet + SLACK)
        .await;
    // Measured from before the last pinned request was sent, so never short of drain_quiet.
    let quiet_for = last_pinned.elapsed();
    assert!(
        quiet_for >= quiet - Duration::from_millis(20),
        "drained {quiet_for:?} after the last pinned request; drain_quiet is {quiet:?}"
    );

    let moved = pinned.get(&client, "/after").await;
    let seen = explain(&moved);
    assert_eq!(seen.why, "redispatch_drain", "{seen:?}");
    assert_ne!(seen.backend, draining);
    assert!(issued(&moved, COOKIE).is_some(), "not re-pinned");
    let again = explain(&pinned.get(&client, "/after/again").await);
    assert_eq!(
        (again.why.as_str(), again.backend.as_str()),
        ("hit", seen.backend.as_str())
    );
    for n in 0..6 {
        let fresh = explain(&affinity::get(&client, "/fresh", None).await);
        assert_ne!(
            fresh.backend, draining,
            "new client {n} sent to a drained backend"
        );
    }

    let status = admin.expect_backend("app", &draining).await;
    assert_eq!(count(&status, "pinned_while_draining"), rounds, "{status}");
    assert!(count(&status, "redispatches") >= 1, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_continuously_active_pinned_client_moves_at_the_drain_deadline() {
    let _timed = serial::timed().await;
    let timeout = Duration::from_secs(1);
    let (_backends, tether) = start("1s", "10s").await;
    let client = Http1::new(tether.addr("web"));
    let admin = Admin::new(tether.addr("admin"));

    let mut pinned = Jar::app();
    let draining = explain(&pinned.get(&client, "/").await).backend;
    let drain_started = drain(&admin, &draining).await;

    let mut hits = 0;
    let (moved, moved_after) = loop {
        let sent_at = drain_started.elapsed();
        assert!(
            sent_at < timeout + SLACK * 2,
            "still pinned to a draining backend {sent_at:?} into a {timeout:?} drain"
        );
        let reply = pinned.get(&client, "/busy").await;
        let seen = explain(&reply);
        if seen.why != "hit" {
            break (seen, sent_at);
        }
        assert_eq!(seen.backend, draining, "a hit on another backend?");
        hits += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(moved.why, "redispatch_drain", "{moved:?}");
    assert_ne!(moved.backend, draining);
    assert!(
        moved_after >= timeout - Duration::from_millis(100),
        "re-pinned {moved_after:?} into the drain, before drain_timeout {timeout:?}"
    );
    assert!(
        hits >= 5,
        "only {hits} pinned requests were served while draining"
    );
    assert_eq!(
        admin.state("app", &draining).await.as_deref(),
        Some("drained")
    );
    let status = admin.expect_backend("app", &draining).await;
    assert_eq!(count(&status, "pinned_while_draining"), hits, "{status}");
    assert!(count(&status, "redispatches") >= 1, "{status}");
}
