//! What a request needs to know about the listener that accepted it.

use std::sync::Arc;

/// What a request needs to know about the listener that accepted it.
#[derive(Debug)]
pub struct ListenerCtx {
    /// Listener name: its route table in the snapshot, and logs.
    pub name: Arc<str>,
    /// The default pool the listener had when it started: what its open connections use once
    /// a reload has removed the listener (and its route table) from the snapshot.
    pub pool: Option<String>,
    /// Scheme clients used (`http` or `https`), for `X-Forwarded-Proto`.
    pub proto: &'static str,
    /// Slowest accepted request body, bytes per second (0 = no check).
    pub min_body_rate: u64,
    /// Time before the body rate is enforced.
    pub body_grace: std::time::Duration,
}
