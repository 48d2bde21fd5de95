//! Connections to backends: connect with a deadline, keep idle HTTP/1.1 connections per backend.
//!
//! tether manages upstream connections itself instead of using a pooled client so that the
//! proxy can tell the two failures apart that matter for retries: "could not connect" (the
//! request was never sent: safe to retry on another backend for any method) and "sent, then
//! failed" (not retried). The idle queue is a lock-free bounded queue, so checkout and return
//! take no lock.

use std::net::SocketAddr;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A ready-to-use HTTP/1.1 connection to a backend.
pub type Sender = SendRequest<crate::client_body::ClientBody>;

/// Why a connection to a backend could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connect did not finish within `connect_timeout`.
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    /// The TCP connect failed (refused, unreachable, ...).
    #[error("connect failed: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP/1.1 handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] hyper::Error),
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// Idle keep-alive connections to one backend, bounded.
pub struct IdleConns {
    queue: Option<ArrayQueue<Idle>>,
}

impl std::fmt::Debug for IdleConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleConns")
            .field("idle", &self.queue.as_ref().map_or(0, ArrayQueue::len))
            .finish()
    }
}

impl IdleConns {
    /// Room for `max` idle connections (0 disables reuse).
    pub fn new(max: usize) -> Self {
        Self {
            queue: (max > 0).then(|| ArrayQueue::new(max)),
        }
    }

    /// A live idle connection that has not been idle longer than `keepalive`, if any.
    pub fn checkout(&self, keepalive: Duration) -> Option<Sender> {
        let queue = self.queue.as_ref()?;
        while let Some(idle) = queue.pop() {
            // A connection the backend closed, or one idle so long the backend may be about to
            // close it, is dropped here rather than risked on a request.
            if idle.sender.is_ready() && idle.since.elapsed() < keepalive {
                return Some(idle.sender);
            }
        }
        None
    }

    /// Returns a connection for reuse; when the queue is full the connection is closed.
    pub fn put(&self, sender: Sender) {
        if let Some(queue) = &self.queue {
            let _ = queue.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Idle connections currently kept.
    pub fn len(&self) -> usize {
        self.queue.as_ref().map_or(0, ArrayQueue::len)
    }

    /// True when no idle connection is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Opens a new HTTP/1.1 connection to `addr` within `timeout`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Sender, ConnectError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectError::Timeout(timeout))??;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await?;
    // Upgrades (WebSocket) hand the connection over to a tunnel instead of closing it.
    let conn = conn.with_upgrades();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(backend.addr = %addr, error = %e, "upstream connection ended");
        }
    });
    Ok(sender)
}

/// Returns `sender` to `idle` once its current response has been read to the end.
///
/// An HTTP/1.1 connection becomes reusable only after the response body is consumed; the
/// wait runs in its own small task so the response can stream meanwhile. If the client
/// abandons the body, the connection closes and is simply dropped.
pub fn release_when_ready(mut sender: Sender, backend: std::sync::Arc<crate::backend::Backend>) {
    tokio::spawn(async move {
        if sender.ready().await.is_ok() {
            backend.idle.put(sender);
        }
    });
}
