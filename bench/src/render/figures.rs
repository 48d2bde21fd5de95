//! The figures some scenarios add under the table, one line per cell: concurrent writes and
//! the updates lost, what a rate limit let through, and the WebSockets held, dropped and
//! reconnected.

use crate::report::ScenarioReport;

/// One line per figure of each cell that ran.
pub fn figure_lines(r: &ScenarioReport) -> Vec<String> {
    let mut out = Vec::new();
    for c in r.cells.iter().filter(|c| c.ran) {
        if let Some(how) = &c.cart_write {
            let w = &c.stats.writes;
            out.push(format!(
                "writes {} ({how}): {} acknowledged, {} lost (a later read of the session came back without them)",
                c.name(), w.writes_acked, w.lost_updates
            ));
        }
        if let Some(w) = &c.stats.ws {
            let list = |m: Vec<String>| {
                if m.is_empty() {
                    "none".to_string()
                } else {
                    m.join(", ")
                }
            };
            let landed = w
                .reconnected_to
                .iter()
                .map(|(b, n)| format!("{b} {n}"))
                .collect();
            let drops = w
                .drops
                .iter()
                .map(|(b, d)| format!("{b} {} at {:.2}-{:.2}s", d.count, d.first_s, d.last_s))
                .collect();
            out.push(format!(
                "websocket {}: {} connections opened ({} attempts failed); drops: {}; {} reconnects, landed on: {}; {} messages echoed, {} lost",
                c.name(), w.opened, w.failed_opens, list(drops), w.reconnects, list(landed), w.echoes, w.messages_lost
            ));
        }
        if let Some(f) = &c.stats.rate {
            out.push(format!(
                "rate limit {}: {} admitted, {} refused (429); {:.2} admitted per user per second, at most {} to one user within one second",
                c.name(), f.admitted, f.limited, f.per_user_s, f.peak_1s
            ));
        }
    }
    out
}
