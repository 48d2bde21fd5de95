//! The access log: one `tracing` event per request, target `tether::access`.
//!
//! A record is written when it is dropped, so a streamed response is logged when its body has
//! ended (or the client went away), with the full duration and byte count.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderValue, Method, StatusCode};
use tokio::time::Instant;

/// What is known about one request, logged on drop.
#[derive(Debug)]
pub struct AccessRecord {
    /// Listener that accepted the request.
    pub listener: Arc<str>,
    /// Client address (TCP peer).
    pub client: SocketAddr,
    /// The client's method.
    pub method: Method,
    /// Request path, without the query (which may carry secrets).
    pub path: String,
    /// Response status sent to the client.
    pub status: StatusCode,
    /// The listener's route that chose the pool (`None`: its default pool, or no pool).
    pub route: Option<Arc<str>>,
    /// Backend that served the request, if any.
    pub backend: Option<Arc<str>>,
    /// Backends tried before the one that answered.
    pub retries: usize,
    /// The request's id (`X-Request-Id`), once known.
    pub request_id: Option<HeaderValue>,
    /// How the backend was chosen (`hit`, `new`, `redispatch_down`, ...).
    pub affinity: &'static str,
    /// Response body bytes sent.
    pub bytes: u64,
    /// The response body ended with an upstream error.
    pub aborted: bool,
    /// When the request head was received.
    pub start: Instant,
    /// Whether the access log is enabled (checked once per request; nothing is formatted or
    /// allocated for the log when it is off).
    pub enabled: bool,
}

impl AccessRecord {
    /// Whether `tether::access` lines would be written now.
    pub fn log_enabled() -> bool {
        tracing::enabled!(target: "tether::access", tracing::Level::INFO)
    }
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        if !self.enabled {
            return;
        }
        let duration_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: "tether::access",
            method = %self.method,
            listener.name = %self.listener,
            route = %self.route.as_deref().unwrap_or("-"),
            path = %self.path,
            status = self.status.as_u16(),
            backend.id = %self.backend.as_deref().unwrap_or("-"),
            retries = self.retries,
            affinity = %self.affinity,
            bytes = self.bytes,
            aborted = self.aborted,
            duration_ms = format_args!("{duration_ms:.3}"),
            client.addr = %self.client,
            request.id = %self.request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
        );
    }
}
