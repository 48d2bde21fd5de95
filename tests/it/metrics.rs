//! GET /metrics is Prometheus text a real parser reads, and its per-backend counters, state gauge and latency histogram agree with the traffic sent.

use prometheus_parse::{LineInfo, Sample, Scrape, Value};

use std::time::{Duration, Instant};

use crate::common::config::{Config, Listener, Pool};
use crate::common::{Admin, Http1, RawConn, TestBackend, Tether};

fn config(a: &TestBackend) -> Config {
    Config::round_robin(a, Listener::web(), Pool::app()).admin()
}

/// Parses `text`, first insisting every line is one the parser understood (it skips the rest).
fn parse(text: &str) -> Scrape {
    for line in text.lines() {
        assert!(
            !matches!(LineInfo::parse(line), LineInfo::Ignored),
            "not Prometheus text format: {line:?}"
        );
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parse /metrics")
}

/// The one sample of `metric` whose labels include all of `labels`.
fn sample<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> &'a Sample {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:#?}");
    found[0]
}

fn number(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, metric, labels).value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{metric} is not a number: {other:?}"),
    }
}

/// Polls until `web` reports `open` connections; returns its accepted total then.
async fn wait_open_connections(admin: &Admin, open: f64) -> f64 {
    let web = [("listener", "web")];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let scrape = parse(&admin.metrics().await);
        if number(&scrape, "tether_listener_connections", &web) == open {
            return number(&scrape, "tether_listener_connections_total", &web);
        }
        assert!(
            Instant::now() < deadline,
            "tether_listener_connections did not reach {open}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_count_exactly_what_was_served() {
    const OK: u64 = 25;
    const FAILED: u64 = 5;
    let a = TestBackend::start("a").await;
    let tether = Tether::start(config(&a)).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));

    let reply = admin.get("/metrics").await;
    let content_type = reply.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "{content_type}"
    );

    for i in 0..OK {
        assert_eq!(client.get(&format!("/ok/{i}")).await.status, 200);
    }
    a.answer_with(503);
    for i in 0..FAILED {
        assert_eq!(client.get(&format!("/fail/{i}")).await.status, 503);
    }

    let scrape = parse(&admin.metrics().await);
    let addr = a.addr.to_string();
    let backend = [("pool", "app"), ("backend", "a"), ("addr", addr.as_str())];
    let with = |extra: (&'static str, &'static str)| {
        let mut labels = backend.to_vec();
        labels.push(extra);
        labels
    };
    let responses = "tether_backend_responses_total";
    assert_eq!(
        number(&scrape, responses, &with(("class", "2xx"))),
        OK as f64
    );
    assert_eq!(
        number(&scrape, responses, &with(("class", "5xx"))),
        FAILED as f64
    );
    for class in ["1xx", "3xx", "4xx"] {
        assert_eq!(
            number(&scrape, responses, &with(("class", class))),
            0.0,
            "{class}"
        );
    }
    for kind in ["connect", "timeout", "upstream"] {
        let failures = number(
            &scrape,
            "tether_backend_failures_total",
            &with(("kind", kind)),
        );
        assert_eq!(failures, 0.0, "{kind}");
    }
    assert_eq!(number(&scrape, "tether_backend_in_flight", &backend), 0.0);
    for (state, expected) in [
        ("up", 1.0),
        ("down", 0.0),
        ("draining", 0.0),
        ("drained", 0.0),
        ("disabled", 0.0),
    ] {
        let v = number(&scrape, "tether_backend_state", &with(("state", state)));
        assert_eq!(v, expected, "state={state}");
    }
    assert_eq!(
        number(&scrape, "tether_backend_health_transitions_total", &backend),
        0.0
    );
    assert_eq!(
        number(&scrape, "tether_backend_ejections_total", &backend),
        0.0
    );

    // The histogram: cumulative buckets ending in +Inf, and _count = every response.
    let histogram = sample(&scrape, "tether_backend_response_seconds", &backend);
    let Value::Histogram(buckets) = &histogram.value else {
        panic!("not a histogram: {histogram:?}");
    };
    assert!(buckets.len() >= 2, "{buckets:?}");
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count),
        "buckets not cumulative: {buckets:?}"
    );
    let last = buckets.last().unwrap();
    assert!(last.less_than.is_infinite(), "{buckets:?}");
    let total = (OK + FAILED) as f64;
    assert_eq!(last.count, total);
    assert_eq!(
        number(&scrape, "tether_backend_response_seconds_count", &backend),
        total
    );
    let sum = number(&scrape, "tether_backend_response_seconds_sum", &backend);
    assert!(
        sum > 0.0 && sum < total,
        "sum {sum} s for {total} responses of a local backend"
    );

    // Listener connections: the test client's pooled connections close when it is dropped,
    // then three raw connections are counted exactly while open and after they close.
    let web = [("listener", "web")];
    drop(client);
    let accepted = wait_open_connections(&admin, 0.0).await;
    assert!(accepted >= 1.0, "{accepted}");
    let mut raw = Vec::new();
    for _ in 0..3 {
        let mut conn = RawConn::connect(tether.addr("web")).await;
        conn.send(b"GET /raw HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(conn.read_response().await.unwrap().status, 503);
        raw.push(conn);
    }
    let scrape = parse(&admin.metrics().await);
    assert_eq!(number(&scrape, "tether_listener_connections", &web), 3.0);
    assert_eq!(
        number(&scrape, "tether_listener_connections_total", &web),
        accepted + 3.0
    );
    drop(raw);
    assert_eq!(wait_open_connections(&admin, 0.0).await, accepted + 3.0);

    // The state gauge follows the admin API.
    let reply = admin.post("/pools/app/backends/a/disable").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let scrape = parse(&admin.metrics().await);
    assert_eq!(
        number(
            &scrape,
            "tether_backend_state",
            &with(("state", "disabled"))
        ),
        1.0
    );
    assert_eq!(
        number(&scrape, "tether_backend_state", &with(("state", "up"))),
        0.0
    );
}
