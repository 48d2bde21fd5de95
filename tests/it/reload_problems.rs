//! A refused reload (POST /reload or SIGHUP) names every problem in the file, unknown keys with
//! their suggestion among them, not just the first one serde met.

use std::time::Duration;

use crate::common::admin::json;
use crate::common::config::{Config, Listener, Pool};
use crate::common::{Admin, TestBackend, Tether};

/// What every refusal must name: an unknown key (with its near miss), a bad balance (with its
/// near miss), an address without a port and a bad duration.
const EXPECTED: [&str; 4] = [
    "pool.app.balance",
    "did you mean `health`?",
    "no port; expected IP:port",
    "pool.app.drain_quiet",
];

/// `good` with four mistakes, the first an unknown key (which alone stopped the parse before).
fn broken(good: &str, backend: &TestBackend) -> String {
    good.replacen(
        "balance = \"round_robin\"",
        "helth = { path = \"/\" }\nbalance = \"least_con\"",
        1,
    )
    .replacen("drain_quiet = \"300ms\"", "drain_quiet = \"soon\"", 1)
    .replacen(&backend.addr.to_string(), &backend.addr.ip().to_string(), 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_reload_lists_every_problem_by_admin_call_and_by_sighup() {
    let a = TestBackend::start("a").await;
    let good = Config::new()
        .admin()
        .listener(Listener::new("web", "app"))
        .pool(
            Pool::app()
                .set("balance", "round_robin")
                .set("drain_quiet", "300ms")
                .backend(&a.id, a.addr),
        )
        .to_string();
    let tether = Tether::start(&good).await;
    let admin = Admin::new(tether.addr("admin"));

    tether.rewrite_config(broken(&good, &a));
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let error = json(&reply)["error"].as_str().unwrap_or("").to_string();
    for want in EXPECTED {
        assert!(error.contains(want), "{want:?} missing from {error}");
    }
    assert!(
        error.contains("did you mean \"least_conn\"?"),
        "no balance suggestion in {error}"
    );

    tether.signal("HUP");
    let line = tether
        .wait_for_line(Duration::from_secs(5), |l| l.contains("reload refused"))
        .await;
    for want in EXPECTED {
        assert!(line.contains(want), "{want:?} missing from the log: {line}");
    }
}
