//! Protocol upgrades (WebSocket and other `Upgrade:` protocols): after the backend answers 101,
//! the two connections are spliced into one byte stream.
//!
//! An upgraded connection *is* session state that no store can hold, so it is treated as one
//! long request: it counts as in flight on its backend (least_conn sees it) for its whole life,
//! affinity applied to the upgrade request, and when its backend finishes draining (the drain
//! deadline) or is disabled, tether closes it.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::backend::{DrainPolicy, InFlight, State};
use crate::client::Busy;

/// An upgrade a client asked for: the protocol, and the client's side of the connection, which
/// resolves once tether's 101 has been written.
pub struct Upgrade {
    protocol: HeaderValue,
    client: OnUpgrade,
}

impl Upgrade {
    /// Takes the upgrade out of `req`, if it is an HTTP/1.1 upgrade request.
    pub fn take<B>(req: &mut Request<B>) -> Option<Self> {
        if req.version() != Version::HTTP_11
            || !crate::headers::lists_token(req.headers(), &header::CONNECTION, "upgrade")
        {
            return None;
        }
        let protocol = req.headers().get(header::UPGRADE)?.clone();
        Some(Self {
            protocol,
            client: hyper::upgrade::on(req),
        })
    }

    /// Puts the upgrade fields back on the request to the backend (hop-by-hop stripping
    /// removed them).
    pub fn forward(&self, headers: &mut HeaderMap) {
        restore_headers(headers, self.protocol.clone());
    }

    /// Makes the backend's response head the client's: hop-by-hop fields go, and a 101 to an
    /// upgrade the client asked for keeps its `Upgrade` and `Connection`. True when the
    /// connection is to become a tunnel ([`Self::splice`]).
    pub fn answer<B>(requested: Option<&Self>, resp: &mut Response<B>) -> bool {
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        let upgraded_to = switching
            .then(|| resp.headers().get(header::UPGRADE).cloned())
            .flatten();
        crate::headers::strip_hop_by_hop(resp.headers_mut());
        if let Some(protocol) = upgraded_to.filter(|_| requested.is_some()) {
            restore_headers(resp.headers_mut(), protocol);
        }
        switching && requested.is_some()
    }

    /// Prepares tether's 101 to the client from the backend's, and splices the two
    /// connections in the background. The tunnel counts as in flight on its backend and keeps
    /// the client connection busy for its whole life; it is closed when the backend finishes
    /// draining or is disabled.
    pub fn splice<B>(
        self,
        mut backend_resp: Response<B>,
        in_flight: InFlight,
        busy: Busy,
        drain: DrainPolicy,
    ) -> Response<()> {
        let backend_side = hyper::upgrade::on(&mut backend_resp);
        let (parts, _) = backend_resp.into_parts();
        let mut resp = Response::from_parts(parts, ());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let tunnel = Tunnel {
            client: self.client,
            in_flight,
            busy,
            drain,
        };
        tokio::spawn(run(backend_side, tunnel));
        resp
    }
}

fn restore_headers(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::UPGRADE, protocol);
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
}

/// Everything the tunnel needs to live as long as the upgraded connection.
struct Tunnel {
    /// The client's side, resolved once our 101 has been written.
    client: OnUpgrade,
    /// Keeps the upgraded connection counted on its backend.
    in_flight: InFlight,
    /// Keeps the client connection out of idle timeouts.
    busy: Busy,
    /// The backend's drain policy, to close the tunnel at the drain deadline.
    drain: DrainPolicy,
}

async fn run(backend: OnUpgrade, t: Tunnel) {
    let id = std::sync::Arc::clone(&t.in_flight.backend().id);
    let (client, backend) = match tokio::try_join!(t.client, backend) {
        Ok(both) => both,
        Err(e) => {
            tracing::debug!(backend.id = %id, error = %e, "upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    let owner = std::sync::Arc::clone(t.in_flight.backend());
    let drained = async {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            if matches!(owner.state(&t.drain), State::Drained | State::Disabled) {
                return;
            }
        }
    };
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut backend) => {
            if let Err(e) = copied {
                tracing::debug!(backend.id = %id, error = %e, "upgraded connection ended with an error");
            }
        }
        () = drained => {
            tracing::info!(backend.id = %id, "closing upgraded connection: its backend finished draining or was disabled");
        }
    }
    drop((t.in_flight, t.busy));
}
