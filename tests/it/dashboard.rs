//! The admin listener serves a live dashboard: in a real headless Chromium, with the admin
//! token given as a Basic password, the page shows the backends' states, reflects a drain made
//! through the API within about a second, and its buttons change a backend's state through the
//! same API.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::common::browser::{chromium, Browser};
use crate::common::config::{Config, Pool};
use crate::common::{serial, Admin, Http1, TestBackend, Tether};

const TOKEN: &str = "dashboard-test-token-0123456789";

/// The state the page shows for `pool/id`, as its badge says (`null` until rendered).
fn state_of(key: &str) -> String {
    format!(
        "document.querySelector('[data-backend=\"{key}\"] [data-state]')?.dataset.state ?? null"
    )
}

async fn wait_for(
    browser: &mut Browser,
    expression: &str,
    want: &str,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let got = browser.eval(expression).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{expression}: still {got} after {within:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn the_dashboard_shows_states_reflects_a_drain_and_its_buttons_use_the_api() {
    let Some(bin) = chromium() else {
        eprintln!("SKIPPED: no chromium to drive (apt-get install chromium; .ci/run installs it)");
        return;
    };
    let _timed = serial::timed().await;
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let config = Config::new()
        .admin_token(TOKEN)
        .listener(crate::common::config::Listener::web())
        .pool(Pool::app().backend(&a.id, a.addr).backend(&b.id, b.addr));
    let tether = Tether::start(config).await;
    let admin_addr = tether.addr("admin");
    let admin = Admin::new(admin_addr).with_token(TOKEN);

    // Without credentials the page is refused, and a browser is asked for a Basic password.
    let anonymous = Http1::new(admin_addr).get("/dashboard").await;
    assert_eq!(anonymous.status, 401);
    let challenges: Vec<_> = anonymous
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic")),
        "{challenges:?}"
    );

    let mut browser = Browser::launch(bin).await;
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{TOKEN}"));
    browser
        .extra_headers(json!({"Authorization": format!("Basic {basic}")}))
        .await;
    browser
        .open(&format!("http://{admin_addr}/dashboard"))
        .await;
    wait_for(
        &mut browser,
        &state_of("app/a"),
        "up",
        Duration::from_secs(10),
    )
    .await;
    wait_for(
        &mut browser,
        &state_of("app/b"),
        "up",
        Duration::from_secs(2),
    )
    .await;

    // A drain through the API shows on the open page at its next refresh (every second).
    let reply = admin.post("/pools/app/backends/b/drain").await;
    assert_eq!(reply.status, 200);
    let took = wait_for(
        &mut browser,
        &state_of("app/b"),
        "draining",
        Duration::from_secs(3),
    )
    .await;
    eprintln!("the page showed the drain after {took:?}");
    let drain = browser
        .eval("document.querySelector('[data-backend=\"app/b\"]').textContent")
        .await;
    assert!(drain.as_str().unwrap().contains("to deadline"), "{drain}");

    // The page's own button disables a through the API.
    browser
        .eval(
            "document.querySelector('[data-backend=\"app/a\"] [data-action=\"disable\"]').click()",
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while admin.state("app", "a").await.as_deref() != Some("disabled") {
        assert!(
            Instant::now() < deadline,
            "the disable button did not reach the API"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    wait_for(
        &mut browser,
        &state_of("app/a"),
        "disabled",
        Duration::from_secs(3),
    )
    .await;
}
