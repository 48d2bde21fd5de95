//! One attempt on one backend: reuse an idle connection or open one, send, and say whether a
//! failure left the request fit for another connection.

use std::sync::Arc;

use http::{Request, Response};
use tokio::net::TcpStream;

use super::body::UpstreamBody;
use super::error::ProxyError;
use super::rewrite::absolute_uri;
use crate::backend::Backend;
use crate::client::ClientBody;
use crate::conn::{Reuse, Sender};
use crate::pool::PoolSettings;
use crate::upstream::{self, h1, ConnectError, Release};

/// Why one attempt on one backend did not produce a response.
// The large variant carries the request back for the next attempt; boxing it would cost an
// allocation on every retry for nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Failure {
    /// The backend cannot have acted on the request (nothing was sent, or a reused connection
    /// was found closed before any response to an idempotent request): it comes back for
    /// another connection.
    Resendable(Request<ClientBody>, ConnectError),
    /// The request was sent (at least partly) and then failed. With `replay` asked for, the
    /// request comes back to be sent elsewhere: still in hand after an exchange of [`h1`],
    /// which only borrows it, or a copy made before hyper's client took it.
    Sent(ProxyError, Option<Request<ClientBody>>),
}

/// A connection to send one request on.
enum Conn {
    /// Through hyper's client.
    Hyper(Sender),
    /// A plain socket that [`h1`] drives in this task.
    Bare {
        stream: TcpStream,
        /// It carried a request before (taken from the idle stack).
        reused: bool,
    },
}

/// One backend: reuse an idle connection or open one, then send.
pub(super) async fn attempt(
    backend: &Arc<Backend>,
    settings: &PoolSettings,
    mut req: Request<ClientBody>,
    replay: bool,
) -> Result<(Response<UpstreamBody>, Release), Failure> {
    // Bodiless requests to plain HTTP/1.1 backends skip hyper's client (see `upstream::h1`).
    let inline = settings.upstream.plain_h1() && h1::eligible(&req);
    let reused = match backend.idle.checkout(settings.keepalive_timeout) {
        Some(Reuse::Live(sender)) => Some(Conn::Hyper(sender)),
        Some(Reuse::Parked(stream)) if inline => Some(Conn::Bare {
            stream,
            reused: true,
        }),
        // A fresh HTTP/1 handshake on a socket known to be open: no I/O, nothing to wait for.
        Some(Reuse::Parked(stream)) => upstream::resume(stream, backend.addr, &backend.idle)
            .await
            .ok()
            .map(Conn::Hyper),
        None => None,
    };
    if let Some(conn) = reused {
        match send(conn, backend, settings, req, replay).await {
            // The backend closed the idle connection just as we took it: not the backend's
            // fault and nothing was sent, so a fresh connection to it gets the request.
            Err(Failure::Resendable(back, _)) => req = back,
            done => return done,
        }
    }
    // Boxed: opening a connection (TLS and HTTP/2 handshakes) is a large future, which inline
    // would size every request's future for a path most requests never take.
    let fresh = if inline {
        Box::pin(upstream::connect_plain(
            backend.addr,
            settings.connect_timeout,
        ))
        .await
        .map(|stream| Conn::Bare {
            stream,
            reused: false,
        })
    } else {
        Box::pin(upstream::connect(
            backend.addr,
            backend.name.as_deref(),
            settings.connect_timeout,
            &settings.upstream,
            &backend.idle,
        ))
        .await
        .map(Conn::Hyper)
    };
    match fresh {
        Ok(conn) => send(conn, backend, settings, req, replay).await,
        Err(e) => Err(Failure::Resendable(req, e)),
    }
}

async fn send(
    conn: Conn,
    backend: &Arc<Backend>,
    settings: &PoolSettings,
    mut req: Request<ClientBody>,
    replay: bool,
) -> Result<(Response<UpstreamBody>, Release), Failure> {
    let mut sender = match conn {
        Conn::Hyper(sender) => sender,
        Conn::Bare { stream, reused } => {
            let exchange = h1::exchange(stream, &req, backend, reused);
            return match tokio::time::timeout(settings.response_timeout, exchange).await {
                Err(_) => Err(Failure::Sent(ProxyError::Timeout, replay.then_some(req))),
                Ok(Ok(resp)) => Ok((resp.map(UpstreamBody::Inline), Release::none())),
                Ok(Err(h1::Failed {
                    resendable: true,
                    error,
                })) => Err(Failure::Resendable(
                    req,
                    ConnectError::Io(std::io::Error::other(error)),
                )),
                Ok(Err(h1::Failed { error, .. })) => Err(Failure::Sent(
                    ProxyError::UpstreamH1(error),
                    replay.then_some(req),
                )),
            };
        }
    };
    if let Sender::H2(_) = sender {
        absolute_uri(&mut req, settings, backend);
    }
    // hyper's client keeps the request once it is sent: a header-map clone, made only here.
    let copy = replay.then(|| copy_bodiless(&req));
    let sent = tokio::time::timeout(settings.response_timeout, sender.send(req)).await;
    match sent {
        Err(_) => Err(Failure::Sent(ProxyError::Timeout, copy)),
        Ok(Ok(resp)) => Ok((resp.map(UpstreamBody::Hyper), Release::new(sender, backend))),
        Ok(Err(mut e)) => match e.take_message() {
            Some(back) => Err(Failure::Resendable(
                back,
                ConnectError::Handshake(e.into_error()),
            )),
            None => Err(Failure::Sent(ProxyError::Upstream(e.into_error()), copy)),
        },
    }
}

/// A copy of a bodiless request: method, target, version and headers.
fn copy_bodiless(req: &Request<ClientBody>) -> Request<ClientBody> {
    let mut copy = Request::new(ClientBody::empty());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}
