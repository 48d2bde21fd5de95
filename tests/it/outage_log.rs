//! With every backend refusing, the event log does not grow by a warning per attempt: each
//! backend logs a few per second and then one line saying how many it left out, while the
//! access log still has a line per request.

use std::time::{Duration, Instant};

use crate::common::config::{table, Config, Listener, Pool};
use crate::common::tether::field;
use crate::common::{dead_addr, Http1, Tether};

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_logs_a_few_warnings_per_second_and_a_count_of_the_rest() {
    let pool = Pool::app()
        .set("passive", table([("failures", 0.into())]))
        .backend("dead-1", dead_addr())
        .backend("dead-2", dead_addr());
    let tether = Tether::start(Config::new().listener(Listener::web()).pool(pool)).await;
    let client = Http1::new(tether.addr("web"));

    // Past at least one second boundary, so that a summary is due; bounded in count and time.
    let start = Instant::now();
    let mut requests = 0;
    while (start.elapsed() < Duration::from_millis(1_500) || requests < 100) && requests < 3_000 {
        let reply = client.get(&format!("/down/{requests}")).await;
        assert_eq!(reply.status, 502, "{}", reply.text());
        requests += 1;
    }
    let seconds = start.elapsed().as_secs() + 2;
    // A last request in a fresh second carries the summary of the one before.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    client.get("/down/last").await;
    requests += 1;

    let access = tether
        .wait_for_line(Duration::from_secs(5), |l| {
            l.contains("tether::access") && l.contains("/down/last")
        })
        .await;
    assert_eq!(field(&access, "status").as_deref(), Some("502"), "{access}");
    let lines = tether.stderr_lines();
    let logged = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
    assert_eq!(
        logged("tether::access"),
        requests,
        "one access line per request"
    );

    // Two attempts per request, one warning each without a limit.
    let unreachable = logged("backend unreachable");
    let cap = 2 * 5 * seconds as usize;
    assert!(
        unreachable <= cap,
        "{unreachable} warnings for {requests} requests over ~{seconds} s (cap {cap})"
    );
    let left_out: u64 = lines
        .iter()
        .filter(|l| l.contains("were left out"))
        .filter_map(|l| field(l, "left_out")?.parse::<u64>().ok())
        .sum();
    assert!(
        left_out > 0,
        "no summary of the warnings left out:\n{}",
        tether.stderr_text()
    );
    assert!(
        unreachable as u64 + left_out <= 2 * requests as u64,
        "{unreachable} logged + {left_out} left out > {} attempts",
        2 * requests
    );
}
