//! What a request needs to know about the listener that accepted it.

use std::sync::Arc;

/// What a request needs to know about the listener that accepted it.
#[derive(Debug)]
pub struct ListenerCtx {
    /// Listener name, for logs.
    pub name: Arc<str>,
    /// Scheme clients used (`http` or `https`), for `X-Forwarded-Proto`.
    pub proto: &'static str,
    /// Slowest accepted request body, bytes per second (0 = no check).
    pub min_body_rate: u64,
    /// Time before the body rate is enforced.
    pub body_grace: std::time::Duration,
}
