//! JUnit XML for CI: one suite per scenario, one case per cell.

use std::fmt::Write as _;

use super::html::esc;
use crate::report::ScenarioReport;

/// JUnit XML: one suite per scenario, one case per cell.
pub fn junit(reports: &[ScenarioReport]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for r in reports {
        let failures = r.cells.iter().filter(|c| !c.passed()).count();
        let skipped = r.cells.iter().filter(|c| !c.ran).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"tether-lab.{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
            esc(&r.scenario),
            r.cells.len()
        );
        for c in &r.cells {
            let _ = write!(
                out,
                "    <testcase classname=\"tether-lab.{}\" name=\"{}\">",
                esc(&r.scenario),
                esc(&c.name())
            );
            if let Some(why) = &c.skip_reason {
                let _ = write!(out, "<skipped message=\"{}\"/>", esc(why));
            }
            for k in c.checks.iter().filter(|k| !k.pass) {
                let _ = write!(
                    out,
                    "<failure message=\"{} = {} (limit {})\">{}</failure>",
                    esc(&k.expect),
                    k.value.map_or("never".into(), |v| format!("{v:.3}")),
                    k.limit,
                    esc(&k.claim)
                );
            }
            let _ = writeln!(out, "</testcase>");
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    out.push_str("</testsuites>\n");
    out
}
