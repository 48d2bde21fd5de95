//! Bodies stream through tether in both directions: hundreds of MiB pass, tether's memory stays small.

use std::time::Duration;

use crate::common::body;
use crate::common::config::{Config, Listener, Pool};
use crate::common::serial;
use crate::common::{Http1, TestBackend, Tether};
use http::Method;

const MIB: u64 = 1024 * 1024;

/// Far below the bodies sent, far above what a streaming proxy needs.
const PEAK_RSS_LIMIT: u64 = 64 * MIB;

/// Generous for a debug build on two cores; a stall fails instead of hanging.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(90);

fn config(backend: &TestBackend) -> Config {
    Config::round_robin(backend, Listener::web(), Pool::app())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_mib_response_streams_through_without_tether_holding_it() {
    let _alone = serial::alone().await;
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(config(&backend)).await;
    let client = Http1::new(tether.addr("web"));
    let size = 200 * MIB;

    let request = client
        .request(Method::GET, &format!("/big?bytes={size}"))
        .body(body::empty())
        .unwrap();
    let response = client.send(request).await.expect("GET /big");
    assert_eq!(response.status(), 200);
    let received = tokio::time::timeout(TRANSFER_DEADLINE, body::count(response.into_body()))
        .await
        .expect("200 MiB arrived within the deadline")
        .expect("response body streamed without error");

    assert_eq!(received, size);
    let peak = tether.peak_rss_bytes();
    assert!(
        peak < PEAK_RSS_LIMIT,
        "tether peaked at {} MiB of resident memory streaming {} MiB",
        peak / MIB,
        size / MIB
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_50_mib_upload_streams_through_and_arrives_whole() {
    let _alone = serial::alone().await;
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(config(&backend)).await;
    let client = Http1::new(tether.addr("web"));
    let size = 50 * MIB;

    let upload = tokio::time::timeout(
        TRANSFER_DEADLINE,
        client.call(Method::POST, "/echo", body::generated(size)),
    )
    .await
    .expect("50 MiB upload finished within the deadline");

    assert_eq!(upload.echo().body_len, size);
    let peak = tether.peak_rss_bytes();
    assert!(
        peak < PEAK_RSS_LIMIT,
        "tether peaked at {} MiB of resident memory streaming a {} MiB upload",
        peak / MIB,
        size / MIB
    );
}
