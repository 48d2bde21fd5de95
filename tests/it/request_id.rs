//! Every request has an id, end to end: the backend receives it as `X-Request-Id`, the client
//! gets it back, and the access log names it (`request.id`). An incoming id is kept only from a
//! trusted proxy; anyone else's is replaced.

use std::time::Duration;

use http::Method;

use crate::common::body::empty;
use crate::common::client::Reply;
use crate::common::config::{Config, Listener, Pool};
use crate::common::tether::field;
use crate::common::{Http1, TestBackend, Tether};

/// GET /echo with `id` as `X-Request-Id`, if any.
async fn get(client: &Http1, id: Option<&str>) -> Reply {
    let mut request = client.request(Method::GET, "/echo");
    if let Some(id) = id {
        request = request.header("x-request-id", id);
    }
    let response = client
        .send(request.body(empty()).expect("request"))
        .await
        .expect("response");
    Reply::read(response).await
}

/// (id the backend received, id the client got back, id the access log names) for one request.
async fn ids(tether: &Tether, client: &Http1, sent: Option<&str>) -> [String; 3] {
    let reply = get(client, sent).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.echo();
    let at_backend = echo.values("x-request-id");
    assert_eq!(at_backend.len(), 1, "backend got {at_backend:?}");
    let returned = reply
        .headers
        .get("x-request-id")
        .expect("X-Request-Id on the response")
        .to_str()
        .expect("ascii")
        .to_string();
    // Waits for the access line naming the returned id (a missing one times out, failing).
    let line = tether
        .wait_for_line(Duration::from_secs(5), |l| {
            l.contains("tether::access")
                && field(l, "request.id").as_deref() == Some(returned.as_str())
        })
        .await;
    let logged = field(&line, "request.id").unwrap_or_default();
    [at_backend[0].to_string(), returned, logged]
}

fn config(backend: &TestBackend, pool: Pool) -> Config {
    Config::round_robin(backend, Listener::web(), pool)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_id_is_generated_and_an_untrusted_clients_id_is_replaced() {
    let backend = TestBackend::start("a").await;
    let tether = Tether::start(config(&backend, Pool::app())).await;
    let client = Http1::new(tether.addr("web"));

    let [at_backend, returned, logged] = ids(&tether, &client, None).await;
    assert!(!at_backend.is_empty());
    assert_eq!(returned, at_backend);
    assert_eq!(logged, at_backend);

    let [at_backend, returned, logged] = ids(&tether, &client, Some("forged-id")).await;
    assert_ne!(at_backend, "forged-id");
    assert_eq!(returned, at_backend);
    assert_eq!(logged, at_backend);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxys_id_is_kept_end_to_end() {
    let backend = TestBackend::start("a").await;
    let pool = Pool::app().set("trusted_proxies", vec!["127.0.0.1/32"]);
    let tether = Tether::start(config(&backend, pool)).await;
    let client = Http1::new(tether.addr("web"));

    let ids = ids(&tether, &client, Some("edge-7f3a")).await;
    assert_eq!(ids, ["edge-7f3a"; 3].map(String::from));
}
