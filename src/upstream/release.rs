//! Returning an HTTP/1.1 connection to its backend's idle stack when its response is done.

use std::sync::Arc;

use crate::backend::Backend;
use crate::conn::Sender;

/// Gives an HTTP/1.1 connection back for reuse when its response is finished: dropped with the
/// response body (after its last byte, or when the client went away).
pub struct Release(Option<(Sender, Arc<Backend>)>);

impl Release {
    /// Returns `sender` to `backend`'s idle connections when dropped (HTTP/2 needs nothing).
    pub fn new(sender: Sender, backend: &Arc<Backend>) -> Self {
        match sender {
            Sender::H1(..) => Self(Some((sender, Arc::clone(backend)))),
            Sender::H2(_) => Self(None),
        }
    }

    /// Nothing to give back (e.g. an upgraded connection, which the tunnel owns).
    pub fn none() -> Self {
        Self(None)
    }
}

impl std::fmt::Debug for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Release")
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let Some((Sender::H1(mut sender, park), backend)) = self.0.take() else {
            return;
        };
        // Usually the connection is already idle by the time the body is dropped; only when it
        // is not (the client went away mid-body, or hyper has not seen the end yet) does the
        // wait need a task of its own. A connection that closes instead is simply dropped.
        if sender.is_ready() {
            backend.idle.put(sender, park);
        } else if !sender.is_closed() {
            tokio::spawn(async move {
                if sender.ready().await.is_ok() {
                    backend.idle.put(sender, park);
                }
            });
        }
    }
}
