//! What the control plane needs to know about a listener's config: whether a running
//! listener can keep its socket, and its TLS acceptor.

use tokio_rustls::TlsAcceptor;

use crate::config::ListenerConfig;

/// The TLS acceptor of a listener, if it has certificates.
pub(super) fn load_tls(l: &ListenerConfig) -> Result<Option<TlsAcceptor>, String> {
    if l.tls.is_empty() {
        return Ok(None);
    }
    crate::tls::acceptor(&l.tls)
        .map(Some)
        .map_err(|e| format!("listener {:?}: {e}", l.name))
}

/// True when a running listener can serve `new` as it is: everything but its routes and
/// default pool (which requests read from the snapshot) is the same.
pub(super) fn same_socket(running: &ListenerConfig, new: &ListenerConfig) -> bool {
    let routing_aside = |l: &ListenerConfig| ListenerConfig {
        pool: None,
        routes: Vec::new(),
        ..l.clone()
    };
    routing_aside(running) == routing_aside(new)
}
