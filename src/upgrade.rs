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
use crate::server::Busy;

/// The protocol a client asks to upgrade to, if the request is an HTTP/1.1 upgrade.
pub fn requested(req: &Request<hyper::body::Incoming>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let wants = crate::headers::lists_token(req.headers(), &header::CONNECTION, "upgrade");
    wants
        .then(|| req.headers().get(header::UPGRADE).cloned())
        .flatten()
}

/// Restores the upgrade headers that hop-by-hop stripping removed.
pub fn restore_headers(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::UPGRADE, protocol);
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
}

/// Everything the tunnel needs to live as long as the upgraded connection.
pub struct Tunnel {
    /// The client's side, resolved once our 101 has been written.
    pub client: OnUpgrade,
    /// Keeps the upgraded connection counted on its backend.
    pub in_flight: InFlight,
    /// Keeps the client connection out of idle timeouts.
    pub busy: Busy,
    /// The backend's drain policy, to close the tunnel at the drain deadline.
    pub drain: DrainPolicy,
}

/// Prepares our 101 to the client from the backend's, and starts splicing in the background.
pub fn splice<B>(mut backend_resp: Response<B>, tunnel: Tunnel) -> Response<()> {
    let backend_side = hyper::upgrade::on(&mut backend_resp);
    let (parts, _) = backend_resp.into_parts();
    let mut resp = Response::from_parts(parts, ());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    tokio::spawn(run(backend_side, tunnel));
    resp
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
