//! A ready-to-use connection to a backend, HTTP/1.1 or HTTP/2.

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};

use super::park::Park;
use crate::client::ClientBody;

/// A ready-to-use connection to a backend.
pub enum Sender {
    /// An HTTP/1.1 connection (one request at a time), and its parking handle if it is plain
    /// TCP.
    H1(http1::SendRequest<ClientBody>, Option<Arc<Park>>),
    /// A handle on a multiplexed HTTP/2 connection.
    H2(http2::SendRequest<ClientBody>),
}

impl Sender {
    /// Can take a request now.
    pub fn is_ready(&self) -> bool {
        match self {
            Sender::H1(s, _) => s.is_ready(),
            Sender::H2(s) => s.is_ready(),
        }
    }

    /// Sends a request; if it could not be sent at all, the error gives it back.
    pub async fn send(
        &mut self,
        req: Request<ClientBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<ClientBody>>> {
        match self {
            Sender::H1(s, _) => s.try_send_request(req).await,
            Sender::H2(s) => s.try_send_request(req).await,
        }
    }
}
