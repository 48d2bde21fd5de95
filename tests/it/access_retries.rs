//! The access log's `retries` agrees with what the client was told: a 502 after trying two
//! backends ("(2 tried)") is logged with `retries=1`, not 0.

use std::time::Duration;

use crate::common::config::{Config, Listener, Pool};
use crate::common::tether::field;
use crate::common::{dead_addr, Http1, Tether};

#[tokio::test(flavor = "multi_thread")]
async fn a_502_after_every_backend_refused_logs_the_retries_it_made() {
    let config = Config::new().listener(Listener::web()).pool(
        Pool::app()
            .set("balance", "round_robin")
            .backends(&[("dead-1", dead_addr()), ("dead-2", dead_addr())]),
    );
    let tether = Tether::start(&config).await;
    let client = Http1::new(tether.addr("web"));

    let reply = client.get("/").await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(reply.text().contains("(2 tried)"), "{}", reply.text());

    let line = tether
        .wait_for_line(Duration::from_secs(5), |l| {
            l.contains("tether::access") && field(l, "status").as_deref() == Some("502")
        })
        .await;
    assert_eq!(field(&line, "retries").as_deref(), Some("1"), "{line}");
}
