//! Expectations: the lab's claims as `METRIC_min` / `METRIC_max` thresholds, and the cells each
//! applies to.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Thresholds for the cells it matches: `METRIC_min` / `METRIC_max` keys.
#[derive(Deserialize, Debug, Clone)]
pub struct Expect {
    /// Affinity modes it applies to (empty: all).
    #[serde(default)]
    pub affinity: Vec<String>,
    /// Session stores, or app variants, it applies to (empty: all).
    #[serde(default, alias = "variant")]
    pub sessions: Vec<String>,
    /// The claim, in words, shown next to a failed check.
    #[serde(default)]
    pub claim: String,
    /// Figures that must agree with their theory, within its tolerance (see `theory`).
    #[serde(default)]
    pub within_theory: Vec<String>,
    /// `METRIC_min` / `METRIC_max` = number.
    #[serde(flatten)]
    pub limits: BTreeMap<String, f64>,
}

impl Expect {
    /// Whether this expectation applies to a cell.
    pub fn matches(&self, affinity: &str, sessions: &str) -> bool {
        (self.affinity.is_empty() || self.affinity.iter().any(|a| a == affinity))
            && (self.sessions.is_empty() || self.sessions.iter().any(|s| s == sessions))
    }
}

/// Metrics `theory` predicts for some cells, which `within_theory` may name.
pub const THEORY_METRICS: &[&str] = &[
    "users_lost_ratio",
    "users_lost",
    "sessions_lost",
    "revocation_window_max_ms",
    "admitted_per_user_s",
    "admitted_peak_1s",
    "lost_updates",
    "ws_killed_dropped",
    "ws_kill_drop_spread_ms",
    "ws_drained_dropped",
    "ws_drain_close_s",
];

/// Metrics an expectation may name (see `stats::CellStats::metric`).
pub const METRICS: &[&str] = &[
    "requests",
    "errors",
    "error_rate",
    "sessions_started",
    "sessions_lost",
    "sessions_lost_ratio",
    "users_lost_ratio",
    "users_lost",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "sticky_ratio",
    "max_mean_load",
    "fair_share_50_s",
    "fair_share_90_s",
    "answered_after_removal",
    "drain_s",
    "send_lag_p99_ms",
    "revocation_window_max_ms",
    "revocation_still_open",
    "service_p99_ms",
    "admitted_per_user_s",
    "admitted_peak_1s",
    "limited",
    "lost_updates",
    "writes_acked",
    "ws_reconnects",
    "ws_messages_lost",
];
