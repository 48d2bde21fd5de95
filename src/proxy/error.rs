//! Why a request could not be proxied, and the status each reason maps to.

use http::StatusCode;

/// A proxying failure, answered to the client with a short plain-text body.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listener's pool has no backend that may take a request.
    #[error("no backend available")]
    NoBackend,
    /// Every eligible backend was at `max_connections` with its queue full, or the wait for
    /// one timed out.
    #[error("backends busy: queue full or queue_timeout reached")]
    QueueFull,
    /// Every eligible backend refused or timed out the connection.
    #[error("no backend reachable ({attempts} tried)")]
    AllUnreachable {
        /// Backends tried.
        attempts: usize,
    },
    /// A backend could not be connected to and another was not tried: the request had
    /// reached `max_attempts` (a replay refused by the retry budget answers the backend's own
    /// failure instead).
    #[error("no backend answered ({attempts} tried; {why})")]
    RetryLimit {
        /// Backends tried.
        attempts: usize,
        /// Which limit stopped it.
        why: &'static str,
    },
    /// The backend failed after the request was sent (reset, malformed response, ...).
    #[error("upstream failed")]
    Upstream(#[source] hyper::Error),
    /// The backend failed after the request was sent, on a connection tether reads itself.
    #[error("upstream failed")]
    UpstreamH1(#[source] crate::upstream::h1::Error),
    /// The backend did not send response headers within `response_timeout`.
    #[error("upstream timed out")]
    Timeout,
    /// The client's request body broke off or was malformed while it was being forwarded.
    #[error("bad request body")]
    ClientBody,
    /// The client sent its request body slower than the listener's `min_body_rate`.
    #[error("request body sent too slowly")]
    ClientTooSlow,
}

impl ProxyError {
    /// The status the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoBackend | Self::QueueFull => StatusCode::SERVICE_UNAVAILABLE,
            Self::AllUnreachable { .. }
            | Self::RetryLimit { .. }
            | Self::Upstream(_)
            | Self::UpstreamH1(_) => StatusCode::BAD_GATEWAY,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::ClientBody => StatusCode::BAD_REQUEST,
            Self::ClientTooSlow => StatusCode::REQUEST_TIMEOUT,
        }
    }
}
