//! End to end: `tether-bench run scenarios/dns-scale.toml --quick`. The pool discovers its
//! backends through the cell's own dnsmasq; app-5's address joins the answer and takes traffic,
//! app-2's leaves it and drains (cookie-pinned in-memory sessions all survive), and no request
//! fails. Skipped, saying so, when dnsmasq is not installed.

mod common;

use serde_json::Value;

use common::{dnsmasq_installed, run_quick};

fn cell<'a>(report: &'a Value, affinity: &str) -> &'a Value {
    common::cell(report, Some(affinity), None)
}

#[test]
fn scale_out_and_in_through_dns_cost_no_request() {
    if !dnsmasq_installed() {
        eprintln!("SKIPPED: dnsmasq is not installed (apt-get install -y dnsmasq)");
        return;
    }
    let (run, report, out) = run_quick("dns-scale");
    let stdout = String::from_utf8_lossy(&run.stdout);

    for affinity in ["none", "cookie", "ip_hash"] {
        let c = cell(&report, affinity);
        assert_eq!(c["ran"], true, "{affinity}: {}", c["skip_reason"]);
        for e in c["events"].as_array().unwrap() {
            assert_eq!(
                e["ok"], true,
                "{affinity}: event {} {} failed: {}",
                e["action"], e["backend"], e["detail"]
            );
        }
        assert_eq!(
            c["errors"], 0,
            "{affinity}: requests failed: {}",
            c["error_kinds"]
        );
        // Added only to the DNS answer, never through the admin API: discovery brought it in.
        let added = c["backends"]["app-5"]["requests"].as_u64().unwrap_or(0);
        assert!(added > 0, "{affinity}: app-5, added to DNS, got no traffic");
        let so = &c["scale_out"];
        assert_eq!(so["backend"], "app-5", "{affinity}: {so}");
        assert!(so["fair_share_50_s"].is_number(), "{affinity}: {so}");
        assert_eq!(c["scale_in"]["backend"], "app-2", "{affinity}");
    }

    // Round robin: once tether's next lookup sees the answer, app-2 gets nothing new.
    let none = &cell(&report, "none")["scale_in"];
    assert!(
        none["last_answer_s"].as_f64().unwrap_or(0.0) < 2.0,
        "{none}"
    );

    // Cookie: app-2's pinned users are served by it while it drains, so their in-memory
    // carts survive; the drain ends when they have left, before the run does.
    let cookie = cell(&report, "cookie");
    assert_eq!(cookie["sessions_lost"], 0, "{cookie}");
    let drain = &cookie["scale_in"];
    assert!(drain["answered_after"].as_u64().unwrap() > 10, "{drain}");
    let ended = drain["removed_at_s"].as_f64().unwrap() + drain["last_answer_s"].as_f64().unwrap();
    assert!(ended < 8.0, "app-2 still answered at {ended:.1}s: {drain}");

    assert!(run.status.success(), "expectations failed:\n{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}
