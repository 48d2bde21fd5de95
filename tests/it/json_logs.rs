//! `[log] format = "json"`: every line tether writes is one JSON object, event fields at the top
//! level, and a request's id is the same at the backend, on the response and in the access log.

use std::time::Duration;

use serde_json::Value;

use crate::common::config::{Config, Listener, Pool};
use crate::common::{Http1, TestBackend, Tether};

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line_with_the_request_id_end_to_end() {
    let backend = TestBackend::start("a").await;
    let config = Config::round_robin(&backend, Listener::web(), Pool::app());
    let tether = Tether::start(format!("{config}\n[log]\nformat = \"json\"\n")).await;
    let client = Http1::new(tether.addr("web"));

    let reply = client.get("/echo").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let returned = reply
        .headers
        .get("x-request-id")
        .expect("X-Request-Id on the response")
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(reply.echo().values("x-request-id"), [returned.as_str()]);

    let line = tether
        .wait_for_line(Duration::from_secs(5), |l| l.contains("tether::access"))
        .await;
    let access: Value = serde_json::from_str(&line).expect("the access line is JSON");
    assert_eq!(access["target"], "tether::access", "{line}");
    assert_eq!(access["request.id"], returned.as_str(), "{line}");
    assert_eq!(access["status"], 200, "{line}");
    assert_eq!(access["backend.id"], "a", "{line}");

    let lines = tether.stderr_lines();
    assert!(lines.iter().any(|l| l.contains("tether starting")));
    for line in &lines {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"));
        assert!(parsed.is_object(), "{line}");
        assert!(parsed["level"].is_string(), "{line}");
    }
}
