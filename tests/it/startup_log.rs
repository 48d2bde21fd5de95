//! `tether run` says what it is running (version, config path) and warns, as `check` does, about
//! a cookie key derived from the config.

use std::time::Duration;

use crate::common::affinity;
use crate::common::config::Pool;
use crate::common::{TestBackend, Tether};

#[tokio::test(flavor = "multi_thread")]
async fn run_logs_its_version_and_config_and_the_derived_cookie_key_warning() {
    let a = TestBackend::start("a").await;
    let config = affinity::config(Pool::app().set("affinity", "cookie"), &[("a", a.addr)]);
    let tether = Tether::start(&config).await;

    let start = tether
        .wait_for_line(Duration::from_secs(5), |l| l.contains("tether starting"))
        .await;
    assert!(start.contains(" INFO "), "{start}");
    assert!(
        start.contains(&format!("version={}", env!("CARGO_PKG_VERSION"))),
        "{start}"
    );
    assert!(start.contains("config=/"), "no config path in {start}");

    let warning = tether
        .wait_for_line(Duration::from_secs(5), |l| {
            l.contains("pool.app.cookie.keys")
        })
        .await;
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(warning.contains("forge"), "{warning}");
}
