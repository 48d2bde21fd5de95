//! What a kill and a drain do to the WebSockets their backend holds: a killed backend's
//! connections all drop with it; a draining backend's stay until tether closes them at the
//! drain deadline (`drain_timeout`; tether checks every 250 ms).

use crate::load::LoadResult;
use crate::ws_figures::{drops_after, open_on};

/// One predicted figure: metric, expected, tolerance, measured, basis.
pub type Prediction = (&'static str, f64, f64, f64, String);

/// How often tether's tunnel looks at its backend's drain state (src/proxy/upgrade.rs).
const TUNNEL_CHECK_S: f64 = 0.25;

/// Predictions for a cell whose users held WebSockets: `events` as (s, action, backend);
/// `drain_timeout` of the pool (s).
pub fn predict(
    r: &LoadResult,
    events: &[(f64, &str, &str)],
    drain_timeout: Option<f64>,
) -> Vec<Prediction> {
    let mut out = Vec::new();
    for &(t, action, id) in events.iter().filter(|e| e.2.starts_with("app-")) {
        let held = open_on(r, id, t) as f64;
        let drops = drops_after(r, id, t);
        match action {
            "kill" => {
                let soon: Vec<f64> = drops.iter().copied().filter(|d| *d < t + 1.0).collect();
                out.push((
                    "ws_killed_dropped",
                    held,
                    0.0,
                    soon.len() as f64,
                    format!("every connection {id} held when it was killed (from the record) drops within a second"),
                ));
                let spread = soon.iter().copied().fold(f64::MIN, f64::max)
                    - soon.iter().copied().fold(f64::MAX, f64::min);
                out.push((
                    "ws_kill_drop_spread_ms",
                    0.0,
                    200.0,
                    if soon.is_empty() { 0.0 } else { spread * 1000.0 },
                    "they drop at once: the dead process's sockets close, and tether closes each client's; +/- 200 ms".to_string(),
                ));
            }
            "drain" => {
                let Some(deadline) = drain_timeout else {
                    continue;
                };
                let mut after: Vec<f64> = drops.iter().map(|d| d - t).collect();
                after.sort_by(f64::total_cmp);
                out.push((
                    "ws_drained_dropped",
                    held,
                    0.0,
                    after.len() as f64,
                    format!("every connection {id} held when its drain began is closed by tether (from the record)"),
                ));
                if let Some(median) = after.get(after.len() / 2) {
                    out.push((
                        "ws_drain_close_s",
                        deadline + TUNNEL_CHECK_S / 2.0,
                        TUNNEL_CHECK_S / 2.0 + 0.1,
                        *median,
                        format!("an upgraded connection counts as in flight, so the drain lasts to its deadline ({deadline} s), and each tunnel notices within 250 ms; +/- 225 ms"),
                    ));
                }
            }
            _ => {}
        }
    }
    out
}
