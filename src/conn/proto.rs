//! How to reach a pool's backends: the protocol, and the TLS client if any.

use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::config::Protocol;

/// How to reach a pool's backends.
#[derive(Clone)]
pub struct UpstreamProto {
    /// HTTP version.
    pub protocol: Protocol,
    /// TLS client settings and the name to send and verify, if the pool uses TLS.
    pub tls: Option<(TlsConnector, Option<ServerName<'static>>)>,
    /// TLS is configured but could not be set up: refuse to connect rather than go plain.
    pub tls_broken: bool,
}

impl UpstreamProto {
    /// Plain HTTP/1.1: bodiless requests can go through [`crate::upstream::h1`].
    pub fn plain_h1(&self) -> bool {
        self.protocol == Protocol::Http1 && self.tls.is_none() && !self.tls_broken
    }
}

impl std::fmt::Debug for UpstreamProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamProto")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.as_ref().map(|(_, name)| name))
            .finish()
    }
}
