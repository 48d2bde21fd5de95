//! The request body as forwarded upstream, with a minimum delivery rate.
//!
//! A client that opens an upload and then trickles bytes (slow POST, "R-U-Dead-Yet") would
//! otherwise hold a connection to tether and one to a backend for as long as it likes. After a
//! grace period, the body must have averaged at least `min_rate` bytes per second; otherwise
//! it fails, the upstream request is aborted, and the client gets 408.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// How often the rate is checked while the client sends nothing.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The error a too-slow body ends with.
#[derive(Debug, thiserror::Error)]
#[error("client sent the request body slower than {0} bytes/s")]
pub struct TooSlow(pub u64);

impl TooSlow {
    /// True when `err` (or its cause) is a body that failed for being too slow.
    pub fn caused(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur = Some(err);
        while let Some(e) = cur {
            if e.is::<TooSlow>() {
                return true;
            }
            cur = e.source();
        }
        false
    }
}

/// A client's request body on its way to a backend.
#[derive(Debug)]
pub struct ClientBody {
    /// `None`: an empty body (a replayed bodiless request).
    inner: Option<Incoming>,
    min_rate: u64,
    grace: Duration,
    /// When the body began; `None` for an empty one, which is never timed.
    started: Option<Instant>,
    received: u64,
    check: Option<Pin<Box<Sleep>>>,
}

impl ClientBody {
    /// Wraps `inner` (`None`: a bodiless request); `min_rate` 0 disables the check, which
    /// otherwise fails the body with [`TooSlow`].
    pub fn new(inner: Option<Incoming>, min_rate: u64, grace: Duration) -> Self {
        if inner.is_none() {
            // Nothing to time: no clock read.
            return Self::empty();
        }
        Self {
            inner,
            min_rate,
            grace,
            started: Some(Instant::now()),
            received: 0,
            check: None,
        }
    }

    /// An empty body (a bodiless request, or one replayed on another backend).
    pub fn empty() -> Self {
        Self {
            inner: None,
            min_rate: 0,
            grace: Duration::ZERO,
            started: None,
            received: 0,
            check: None,
        }
    }

    fn below_rate(&self) -> bool {
        let elapsed = self.started.map_or(Duration::ZERO, |s| s.elapsed());
        elapsed > self.grace
            && (self.received as f64) < self.min_rate as f64 * elapsed.as_secs_f64()
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if this.min_rate == 0 => Poll::Pending,
            Poll::Pending => {
                if this.below_rate() {
                    return Poll::Ready(Some(Err(Box::new(TooSlow(this.min_rate)))));
                }
                let check = this
                    .check
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(CHECK_EVERY)));
                if check.as_mut().poll(cx).is_ready() {
                    check.as_mut().reset(Instant::now() + CHECK_EVERY);
                    // Re-arm: polling the fresh sleep registers the waker.
                    let _ = check.as_mut().poll(cx);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}
