//! A pool's upstream settings, and the TLS client built for its backends.

use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::backend::DrainPolicy;
use crate::config::{AllDown, HealthConfig, PassiveConfig, PoolConfig, Protocol};
use crate::conn::UpstreamProto;

/// Per-pool upstream settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Time to establish a TCP connection.
    pub connect_timeout: Duration,
    /// Time to receive response headers.
    pub response_timeout: Duration,
    /// Time an idle upstream connection may be reused.
    pub keepalive_timeout: Duration,
    /// Idle time after which a plain HTTP/1.1 upstream connection is parked (`None`: never).
    pub idle_release: Option<Duration>,
    /// How long a draining backend keeps its pinned clients.
    pub drain: DrainPolicy,
    /// Ramp-up after a backend comes up.
    pub slow_start: Duration,
    /// Behaviour when no backend is up.
    pub all_down: AllDown,
    /// Passive health policy.
    pub passive: PassiveConfig,
    /// Active health checks.
    pub health: Option<HealthConfig>,
    /// Protocol and TLS toward backends.
    pub upstream: UpstreamProto,
    /// Replay GET/HEAD/OPTIONS without a body on another backend after a reset.
    pub retry_idempotent: bool,
    /// Requests in flight to one backend at once (0: no cap).
    pub max_connections: usize,
    /// Requests that may wait for one backend at its cap.
    pub max_pending: usize,
    /// Longest such a wait.
    pub queue_timeout: Duration,
}

/// The pool's upstream protocol and TLS client (certificates were checked by validation).
pub(super) fn upstream_proto(config: &PoolConfig) -> UpstreamProto {
    let alpn: &[u8] = match config.protocol {
        Protocol::Http1 => b"http/1.1",
        Protocol::H2 => b"h2",
    };
    let tls = config.tls.as_ref().and_then(|t| {
        match crate::tls::connector(t.ca.as_deref(), alpn) {
            Ok(connector) => {
                let name = t
                    .sni
                    .as_ref()
                    .and_then(|s| ServerName::try_from(s.clone()).ok());
                Some((connector, name))
            }
            Err(e) => {
                // Validation loaded the same files moments ago. Never fall back to plain text:
                // every connect fails instead (and is logged) until a reload fixes it.
                tracing::error!(error = %e, "cannot set up TLS to backends; connections will fail");
                None
            }
        }
    });
    UpstreamProto {
        protocol: config.protocol,
        tls_broken: config.tls.is_some() && tls.is_none(),
        tls,
    }
}
