//! The response body tether sends to clients: a streamed upstream body or a short local one.
//!
//! An upstream body carries the request's end-of-life state: the backend's in-flight guard,
//! the client connection's activity guard, and the access-log record. All of them end when the
//! body is dropped, which hyper does after the last byte is written or when the client goes
//! away, so least_conn and the access log see the whole response, not just its headers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::access::AccessRecord;
use crate::backend::InFlight;
use crate::client::Busy;
use crate::stats::Failure;
use crate::upstream::h1::H1Body;
use crate::upstream::Release;

/// Any error a body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A backend's response body: read by hyper's client, or by [`crate::upstream::h1`] in the
/// client connection's task.
#[derive(Debug)]
pub enum UpstreamBody {
    /// From a hyper client connection (HTTP/2, TLS, requests with a body, upgrades).
    Hyper(Incoming),
    /// From a plain HTTP/1.1 socket read in place.
    Inline(H1Body),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Self::Inline(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Hyper(b) => b.is_end_stream(),
            Self::Inline(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Hyper(b) => b.size_hint(),
            Self::Inline(b) => b.size_hint(),
        }
    }
}

/// A response body sent to a client.
// Unboxed on purpose: the large variant is the common one, and boxing it would add an
// allocation to every proxied response.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ProxyBody {
    /// A backend's response body, streamed frame by frame.
    Upstream {
        /// The backend's body.
        inner: UpstreamBody,
        /// Logs the request when the body ends.
        record: AccessRecord,
        /// Keeps the client connection out of its idle timeout.
        busy: Option<Busy>,
        /// Returns the upstream connection for reuse once the body is done.
        release: Release,
        /// Keeps the request counted as in flight on its backend. Declared (so dropped) last:
        /// a request waiting for this backend's slot then finds the connection idle.
        in_flight: InFlight,
    },
    /// A body produced by tether itself (errors, admin answers).
    Local(Option<Bytes>),
}

impl ProxyBody {
    /// A complete body from bytes.
    pub fn local(bytes: impl Into<Bytes>) -> Self {
        Self::Local(Some(bytes.into()))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Upstream {
                inner,
                record,
                in_flight,
                ..
            } => {
                let polled = Pin::new(inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            record.bytes += data.len() as u64;
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        // The head went out as the backend's status; the body broke off: an
                        // upstream failure (logged `aborted=true`), whatever the status said.
                        record.aborted = true;
                        in_flight.backend().stats.count_failure(Failure::Upstream);
                    }
                    _ => {}
                }
                polled
            }
            Self::Local(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream { inner, .. } => inner.is_end_stream(),
            Self::Local(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream { inner, .. } => inner.size_hint(),
            Self::Local(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// A short plain-text response produced by tether.
pub fn local_response(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::local(text.to_owned()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
