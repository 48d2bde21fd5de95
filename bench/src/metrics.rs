//! A cell's figures by the names `[[expect]]` uses (`scenario::METRICS`), and a threshold
//! judged against them.

use crate::stats::CellStats;

impl CellStats {
    /// Value of a metric named in an expectation (`scenario::METRICS`); `None` when it has no
    /// value in this cell (a share that was never reached).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let so = self.scale_out.as_ref();
        Some(match name {
            "requests" => self.requests as f64,
            "errors" => self.errors as f64,
            "error_rate" => self.error_rate,
            "sessions_started" => self.sessions_started as f64,
            "sessions_lost" => self.sessions_lost as f64,
            "sessions_lost_ratio" => self.sessions_lost_ratio,
            "users_lost_ratio" => self.users_lost_ratio,
            "users_lost" => self.users_lost as f64,
            "p50_ms" => self.latency_ms.p50,
            "p90_ms" => self.latency_ms.p90,
            "p99_ms" => self.latency_ms.p99,
            "p999_ms" => self.latency_ms.p999,
            "max_ms" => self.latency_ms.max,
            "sticky_ratio" => self.sticky_ratio,
            "max_mean_load" => self.max_mean_load,
            "fair_share_50_s" => so?.fair_share_50_s?,
            "fair_share_90_s" => so?.fair_share_90_s?,
            "answered_after_removal" => self.scale_in.as_ref()?.answered_after as f64,
            // Nothing answered after the removal: it drained at once.
            "drain_s" => self.scale_in.as_ref()?.last_answer_s.unwrap_or(0.0),
            "send_lag_p99_ms" => self.send_lag_ms.p99,
            "revocation_window_max_ms" => self.revocation.as_ref()?.window_max_ms,
            "revocation_still_open" => self.revocation.as_ref()?.still_open as f64,
            "service_p99_ms" => self.service_ms.p99,
            "admitted_per_user_s" => self.rate.as_ref()?.per_user_s,
            "admitted_peak_1s" => self.rate.as_ref()?.peak_1s as f64,
            "lost_updates" => self.writes.lost_updates as f64,
            "writes_acked" => self.writes.writes_acked as f64,
            "ws_reconnects" => self.ws.as_ref()?.reconnects as f64,
            "ws_messages_lost" => self.ws.as_ref()?.messages_lost as f64,
            "limited" => self.rate.as_ref().map_or(0, |f| f.limited) as f64,
            _ => return None,
        })
    }
}

impl CellStats {
    /// Judges a `METRIC_min` / `METRIC_max` key against `limit`: the measured value and whether
    /// it held. Only "never reached" has no value: slower than any minimum, over any maximum.
    pub fn judge(&self, key: &str, limit: f64) -> (Option<f64>, bool) {
        // `theory:METRIC`: the distance from the theory's value, within its tolerance.
        if let Some(m) = key.strip_prefix("theory:") {
            return match self.theory.iter().find(|t| t.metric == m) {
                Some(t) => (Some((t.measured - t.expected).abs()), t.holds),
                None => (None, false),
            };
        }
        let (metric, is_min) = match key.strip_suffix("_min") {
            Some(m) => (m, true),
            None => (key.strip_suffix("_max").unwrap_or(key), false),
        };
        let value = self.metric(metric);
        let pass = match value {
            Some(v) if is_min => v >= limit,
            Some(v) => v <= limit,
            None => is_min,
        };
        (value, pass)
    }
}
