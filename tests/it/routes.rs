//! Routes send one listener's requests to different pools by host (exact and wildcard), path
//! prefix and header, first match first; what no route matches goes to the listener's pool, or
//! gets 404 without one. Routes reload without rebinding the listener, and the access log,
//! `/status` and `/metrics` name the route.

use std::time::Duration;

use http::Method;
use toml::Value;

use crate::common::config::{table, Config, Listener, Pool};
use crate::common::{Admin, H2c, Http1, TestBackend, Tether};

fn route(name: &str, conditions: &[(&str, Value)], pool: &str) -> Value {
    let mut pairs: Vec<(&str, Value)> = vec![("name", name.into()), ("pool", pool.into())];
    pairs.extend(conditions.iter().cloned());
    table(pairs)
}

/// `web`: canary header, api.example.com/v1/, *.tenants.example.com, default www.
/// `strict`: /api only, no default.
fn config(www: &TestBackend, api: &TestBackend, canary: &TestBackend, v1_pool: &str) -> Config {
    let header = table([("name", "x-canary".into()), ("value", "1".into())]);
    let web = Listener::new("web", "www").set(
        "route",
        Value::Array(vec![
            route("canary", &[("header", header)], "canary"),
            route(
                "api-v1",
                &[
                    ("host", "api.example.com".into()),
                    ("path_prefix", "/v1/".into()),
                ],
                v1_pool,
            ),
            route(
                "tenants",
                &[("host", "*.tenants.example.com".into())],
                "api",
            ),
        ]),
    );
    let strict = Listener::routes_only("strict").set(
        "route",
        Value::Array(vec![route("api", &[("path_prefix", "/api".into())], "api")]),
    );
    Config::new()
        .admin()
        .listener(web)
        .listener(strict)
        .pool(Pool::new("www").backend(&www.id, www.addr))
        .pool(Pool::new("api").backend(&api.id, api.addr))
        .pool(Pool::new("canary").backend(&canary.id, canary.addr))
}

/// The backend that answered `GET path` sent with `Host: host` (and `extra` headers).
async fn served_by(client: &Http1, host: &str, path: &str, extra: &[(&str, &str)]) -> String {
    let mut request = client.request(Method::GET, path).header("host", host);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let reply = client
        .send(request.body(crate::common::body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "GET {host}{path}");
    reply.headers()["x-backend-id"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn requests_go_to_the_pool_of_the_first_route_they_match() {
    let (www, api, canary) = (
        TestBackend::start("www-1").await,
        TestBackend::start("api-1").await,
        TestBackend::start("canary-1").await,
    );
    let tether = Tether::start(config(&www, &api, &canary, "api")).await;
    let web = Http1::new(tether.addr("web"));
    let cases = [
        ("api.example.com", "/v1/users", &[][..], "api-1"),
        ("API.Example.COM:8080", "/v1/", &[], "api-1"),
        ("api.example.com", "/v10", &[], "www-1"),
        ("api.example.com", "/v1", &[], "www-1"),
        ("www.example.com", "/v1/users", &[], "www-1"),
        ("a.tenants.example.com", "/", &[], "api-1"),
        ("tenants.example.com", "/", &[], "www-1"),
        (
            "api.example.com",
            "/v1/users",
            &[("x-canary", "1")],
            "canary-1",
        ),
        (
            "api.example.com",
            "/v1/users",
            &[("x-canary", "0")],
            "api-1",
        ),
    ];
    for (host, path, extra, want) in cases {
        let got = served_by(&web, host, path, extra).await;
        assert_eq!(got, want, "Host: {host}, {path}, {extra:?}");
    }
    // HTTP/2 routes by :authority.
    let mut h2 = H2c::connect(tether.addr("web")).await;
    let reply = h2.get("http://api.example.com/v1/x").await;
    assert_eq!(reply.backend_id(), "api-1", "h2 :authority");

    // A listener without a default pool answers what no route matches with 404 and asks no one.
    let strict = Http1::new(tether.addr("strict"));
    assert_eq!(strict.get("/api/orders").await.backend_id(), "api-1");
    let before = www.requests() + api.requests() + canary.requests();
    let reply = strict.get("/elsewhere").await;
    assert_eq!(reply.status, 404);
    assert_eq!(www.requests() + api.requests() + canary.requests(), before);

    // The access log, /status and /metrics name the route.
    tether
        .wait_for_line(Duration::from_secs(5), |l| {
            l.contains("tether::access")
                && l.contains("route=tenants")
                && l.contains("backend.id=api-1")
        })
        .await;
    let admin = Admin::new(tether.addr("admin"));
    let status = admin.status().await;
    let routes = &status["listeners"]["web"]["routes"];
    assert_eq!(routes[1]["name"], "api-v1", "{status}");
    assert_eq!(
        routes[1]["requests"], 4,
        "three over HTTP/1, one over h2: {status}"
    );
    assert!(status["listeners"]["strict"]["pool"].is_null(), "{status}");
    let metrics = admin.metrics().await;
    assert!(
        metrics.contains(
            "tether_route_requests_total{listener=\"web\",route=\"canary\",pool=\"canary\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_reload_changes_routes_without_rebinding_the_listener() {
    let (www, api, canary) = (
        TestBackend::start("www-1").await,
        TestBackend::start("api-1").await,
        TestBackend::start("canary-1").await,
    );
    let tether = Tether::start(config(&www, &api, &canary, "api")).await;
    let addr = tether.addr("web");
    let web = Http1::new(addr);
    assert_eq!(
        served_by(&web, "api.example.com", "/v1/x", &[]).await,
        "api-1"
    );
    tether.rewrite_config(config(&www, &api, &canary, "www"));
    let admin = Admin::new(tether.addr("admin"));
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let body = String::from_utf8_lossy(&reply.body).to_string();
    assert!(body.contains("listener web changed"), "{body}");
    assert!(
        !tether.stderr_text().contains("stopped accepting"),
        "the listener kept its socket"
    );
    // The same socket, a new route.
    assert_eq!(
        served_by(&web, "api.example.com", "/v1/x", &[]).await,
        "www-1"
    );
}
