//! The admin API changes the backend set at runtime (add, re-weight, remove with a drain), refuses bad input with a 4xx that changes nothing, and enforces its bearer token.

use std::time::Duration;

use http::Method;
use serde_json::Value;

use crate::common::admin::{backend_in, count, ids_in, json};
use crate::common::client::Reply;
use crate::common::config::{Config, Listener, Pool};
use crate::common::{body, Admin, Http1, TestBackend, Tether};

fn config(backends: &[&TestBackend], token: Option<&str>) -> Config {
    let config = match token {
        Some(token) => Config::new().admin_token(token),
        None => Config::new().admin(),
    };
    let pool = backends.iter().fold(
        Pool::app()
            .set("balance", "round_robin")
            .set("drain_quiet", "300ms"),
        |pool, b| pool.backend(&b.id, b.addr),
    );
    config.listener(Listener::web()).pool(pool)
}

/// Sends `n` GETs and returns how many each of `backends` received meanwhile.
async fn traffic(client: &Http1, n: usize, backends: &[&TestBackend]) -> Vec<u64> {
    let before: Vec<u64> = backends.iter().map(|b| b.requests()).collect();
    for i in 0..n {
        let reply = client.get(&format!("/r/{i}")).await;
        assert_eq!(reply.status, 200, "GET {i}: {}", reply.text());
    }
    backends
        .iter()
        .zip(before)
        .map(|(b, n)| b.requests() - n)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_put_at_runtime_takes_traffic_and_can_be_reweighted() {
    let a = TestBackend::start("a").await;
    let c = TestBackend::start("c").await;
    let tether = Tether::start(config(&[&a], None)).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));
    assert_eq!(traffic(&client, 4, &[&a, &c]).await, [4, 0]);

    let put = format!(r#"{{"addr": "{}", "weight": 1}}"#, c.addr);
    let reply = admin.put("/pools/app/backends/c", &put).await;
    assert_eq!(reply.status, 201, "add: {}", reply.text());
    let listed = admin.expect_backend("app", "c").await;
    assert_eq!(listed["addr"], c.addr.to_string(), "{listed}");
    assert_eq!(listed["weight"], 1, "{listed}");
    assert_eq!(listed["state"], "up", "{listed}");
    assert_eq!(traffic(&client, 20, &[&a, &c]).await, [10, 10]);

    let put = format!(r#"{{"addr": "{}", "weight": 3}}"#, c.addr);
    let reply = admin.put("/pools/app/backends/c", &put).await;
    assert_eq!(reply.status, 200, "update: {}", reply.text());
    let listed = admin.expect_backend("app", "c").await;
    assert_eq!(listed["weight"], 3, "{listed}");
    assert_eq!(
        count(&listed, "requests"),
        10,
        "an update must keep the backend's counters: {listed}"
    );
    assert_eq!(traffic(&client, 40, &[&a, &c]).await, [10, 30]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_backend_drains_its_open_request_then_leaves_status() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let tether = Tether::start(config(&[&a, &b], None)).await;
    let admin = Admin::new(tether.addr("admin"));

    let hold_client = Http1::new(tether.addr("web"));
    let request = hold_client
        .request(Method::GET, "/hold")
        .body(body::empty())
        .expect("request");
    let held = hold_client.send(request).await.expect("/hold headers");
    let id = held.headers()["x-backend-id"].to_str().unwrap().to_string();
    let (leaving, staying) = if id == "a" { (&a, &b) } else { (&b, &a) };

    let reply = admin
        .delete(&format!("/pools/app/backends/{}", leaving.id))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(json(&reply)["id"], leaving.id.as_str());
    // Its request is still open, so it must still be listed, draining.
    assert_eq!(
        admin.state("app", &leaving.id).await.as_deref(),
        Some("draining")
    );

    let client = Http1::new(tether.addr("web"));
    assert_eq!(traffic(&client, 10, &[leaving, staying]).await, [0, 10]);

    leaving.release_holds();
    let held = tokio::time::timeout(Duration::from_secs(10), Reply::read(held))
        .await
        .expect("held body ends once released");
    assert_eq!(held.status, 200);
    assert_eq!(held.text(), "held\nreleased\n");

    let (_, states) = admin
        .wait_gone("app", &leaving.id, Duration::from_secs(5))
        .await;
    assert!(
        states.iter().all(|s| s == "draining" || s == "drained"),
        "a deleted backend must only drain on its way out: {states:?}"
    );
    assert_eq!(ids_in(&admin.status().await, "app"), [staying.id.as_str()]);
    assert_eq!(traffic(&client, 10, &[leaving, staying]).await, [0, 10]);

    let reply = admin
        .delete(&format!("/pools/app/backends/{}", leaving.id))
        .await;
    assert_eq!(reply.status, 404, "deleting it twice: {}", reply.text());
}

/// The parts of `/status` an admin call could change: ids, addresses, weights, states.
fn shape(status: &Value) -> Vec<(String, String, String, u64, String)> {
    let mut shape = Vec::new();
    for (pool, p) in status["pools"].as_object().expect("pools object") {
        for b in p["backends"].as_array().expect("backends array") {
            shape.push((
                pool.clone(),
                b["id"].as_str().unwrap().to_string(),
                b["addr"].as_str().unwrap().to_string(),
                b["weight"].as_u64().unwrap(),
                b["state"].as_str().unwrap().to_string(),
            ));
        }
    }
    shape
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_admin_input_gets_a_4xx_with_a_reason_and_changes_nothing() {
    let a = TestBackend::start("a").await;
    let tether = Tether::start(config(&[&a], None)).await;
    let admin = Admin::new(tether.addr("admin"));
    let good = format!(r#"{{"addr": "{}", "weight": 1}}"#, a.addr);
    let cases: Vec<(Method, &str, String, u16)> = vec![
        (
            Method::POST,
            "/pools/nope/backends/a/drain",
            String::new(),
            404,
        ),
        (
            Method::POST,
            "/pools/app/backends/nope/drain",
            String::new(),
            404,
        ),
        (
            Method::POST,
            "/pools/app/backends/nope/enable",
            String::new(),
            404,
        ),
        (
            Method::POST,
            "/pools/app/backends/a/explode",
            String::new(),
            404,
        ),
        (Method::PUT, "/pools/nope/backends/x", good.clone(), 404),
        (
            Method::PUT,
            "/pools/app/backends/x",
            "{not json".into(),
            400,
        ),
        (Method::PUT, "/pools/app/backends/x", String::new(), 400),
        (
            Method::PUT,
            "/pools/app/backends/x",
            r#"{"weight": 1}"#.into(),
            400,
        ),
        (
            Method::PUT,
            "/pools/app/backends/x",
            format!(r#"{{"addr": "{}", "weight": 1, "colour": "red"}}"#, a.addr),
            400,
        ),
        (
            Method::PUT,
            "/pools/app/backends/a",
            r#"{"addr": "not-an-address"}"#.into(),
            400,
        ),
        (
            Method::PUT,
            "/pools/app/backends/a",
            r#"{"addr": "localhost:80"}"#.into(),
            400,
        ),
        (
            Method::PUT,
            "/pools/app/backends/a",
            format!(r#"{{"addr": "{}", "weight": 0}}"#, a.addr),
            400,
        ),
        (
            Method::PUT,
            "/pools/app/backends/a",
            format!(r#"{{"addr": "{}", "weight": 1001}}"#, a.addr),
            400,
        ),
        (
            Method::PUT,
            "/pools/app/backends/a",
            format!(r#"{{"addr": "{}", "weight": "2"}}"#, a.addr),
            400,
        ),
        (Method::DELETE, "/pools/nope/backends/a", String::new(), 404),
        (
            Method::DELETE,
            "/pools/app/backends/nope",
            String::new(),
            404,
        ),
        (Method::DELETE, "/pools/app/backends/a", String::new(), 400),
        (Method::GET, "/reload", String::new(), 405),
        (Method::DELETE, "/status", String::new(), 405),
        (Method::POST, "/metrics", String::new(), 405),
        (
            Method::GET,
            "/pools/app/backends/a/drain",
            String::new(),
            405,
        ),
        (Method::GET, "/no/such/endpoint", String::new(), 404),
    ];
    let before = admin.status().await;
    for (method, path, body, expected) in cases {
        let reply = admin.call(method.clone(), path, body.clone()).await;
        assert_eq!(
            reply.status.as_u16(),
            expected,
            "{method} {path} {body:?}: {}",
            reply.text()
        );
        let error = json(&reply);
        let reason = error["error"].as_str().unwrap_or("");
        assert!(!reason.is_empty(), "{method} {path}: no reason in {error}");
        let after = admin.status().await;
        assert_eq!(
            shape(&after),
            shape(&before),
            "{method} {path} {body:?} changed the backends"
        );
        assert_eq!(after, before, "{method} {path} {body:?} changed /status");
    }
    let listed = backend_in(&before, "app", "a").expect("a listed").clone();
    assert_eq!(listed["addr"], a.addr.to_string());
    let client = Http1::new(tether.addr("web"));
    assert_eq!(client.get("/").await.backend_id(), "a");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_every_admin_call_needs_it() {
    const TOKEN: &str = "test-token-0123456789abcdef";
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let tether = Tether::start(config(&[&a, &b], Some(TOKEN))).await;
    let anonymous = Admin::new(tether.addr("admin"));
    let wrong = anonymous.with_token("test-token-0123456789abcdeX");
    let right = anonymous.with_token(TOKEN);

    for client in [&anonymous, &wrong] {
        for (method, path) in [
            (Method::GET, "/healthz"),
            (Method::GET, "/status"),
            (Method::GET, "/metrics"),
            (Method::POST, "/pools/app/backends/a/disable"),
            (Method::DELETE, "/pools/app/backends/b"),
            (Method::POST, "/reload"),
        ] {
            let reply: Reply = client.call(method.clone(), path, "").await;
            assert_eq!(reply.status, 401, "{method} {path}: {}", reply.text());
            assert!(json(&reply)["error"].is_string(), "{}", reply.text());
        }
    }
    // A token sent without the Bearer scheme is not a token.
    let reply = anonymous
        .call_with(Method::GET, "/status", "", &[("authorization", TOKEN)])
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text());

    let reply = right.get("/healthz").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text().trim(), "ok");
    let status = right.status().await;
    assert_eq!(ids_in(&status, "app"), ["a", "b"], "{status}");
    assert_eq!(backend_in(&status, "app", "a").unwrap()["state"], "up");
    assert_eq!(right.get("/metrics").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_call_from_another_site_changes_nothing() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let tether = Tether::start(config(&[&a, &b], None)).await;
    let admin = Admin::new(tether.addr("admin"));
    // What a page elsewhere makes the browser send to a loopback admin listener.
    for headers in [
        &[("origin", "http://evil.example")][..],
        &[("sec-fetch-site", "cross-site")][..],
    ] {
        let reply = admin
            .call_with(Method::POST, "/pools/app/backends/a/drain", "", headers)
            .await;
        assert_eq!(reply.status, 403, "{headers:?}: {}", reply.text());
        assert_eq!(admin.state("app", "a").await.as_deref(), Some("up"));
    }
    // The dashboard's own calls come from the admin listener's origin.
    let origin = format!("http://{}", tether.addr("admin"));
    let reply = admin
        .call_with(
            Method::POST,
            "/pools/app/backends/a/drain",
            "{}",
            &[
                ("origin", origin.as_str()),
                ("sec-fetch-site", "same-origin"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}
