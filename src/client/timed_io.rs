//! A client connection with tether's own deadlines and request-head hygiene.
//!
//! hyper's own header-read timer also runs while a keep-alive connection waits for its next
//! request, so it cannot express "10 s to send a head, but 60 s of idle keep-alive". tether
//! instead wraps each client connection in [`TimedIo`], which knows from a per-connection
//! activity counter whether a request is in progress and arms the right deadline.
//!
//! While it reads an HTTP/1 request head it runs [`HeadScan`] over the bytes, which poisons
//! bare LF line endings and a head with both `Content-Length` and `Transfer-Encoding`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::activity::Activity;
use super::head_scan::HeadScan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head: `header_timeout` applies.
    AwaitHead,
    /// A request is in progress: upstream timeouts apply, not ours.
    Busy,
    /// Keep-alive connection with nothing in progress: `idle_timeout` applies.
    Idle,
}

/// A client connection (TCP or TLS) with tether's header-read and idle deadlines.
pub struct TimedIo<T> {
    io: T,
    activity: Arc<Activity>,
    phase: Phase,
    /// Unknown until the first bytes; HTTP/2 has no "request head" phase on the connection.
    h2: Option<bool>,
    deadline: Instant,
    sleep: Pin<Box<Sleep>>,
    header_timeout: Duration,
    idle_timeout: Duration,
    head: HeadScan,
    /// Idle time after which an HTTP/1 connection ends its parser session (see [`Self::released`]).
    release_after: Option<Duration>,
    /// When the current idle period may release the session; cleared once it has.
    release_at: Option<Instant>,
    /// The parser session was ended by a release, not by the client.
    released: bool,
    /// Bytes read ahead (to tell HTTP/2 from HTTP/1), served before the socket's.
    rewind: Option<bytes::Bytes>,
    /// Request heads are read by tether's own HTTP/1 path ([`crate::h1`]), which checks them
    /// itself: no scan here. `Some(true)`: that path holds unparsed bytes, so the connection
    /// is not released.
    inline: Option<bool>,
}

impl<T> TimedIo<T> {
    /// Wraps a fresh connection: the first request head is due within `header_timeout`.
    /// With `release_after`, an HTTP/1 connection idle that long whose parser has no bytes
    /// left over reads as ended once (see [`Self::released`]).
    pub fn new(
        io: T,
        header_timeout: Duration,
        idle_timeout: Duration,
        release_after: Option<Duration>,
    ) -> Self {
        let deadline = Instant::now() + header_timeout;
        Self {
            io,
            activity: Arc::default(),
            phase: Phase::AwaitHead,
            h2: None,
            deadline,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            header_timeout,
            idle_timeout,
            head: HeadScan::started(),
            release_after,
            release_at: None,
            released: false,
            rewind: None,
            inline: None,
        }
    }

    /// Request heads are read by tether's own HTTP/1 path from now on: they are not scanned
    /// here. `holding`: it has unparsed bytes, so the connection must not be released.
    pub fn set_inline(&mut self, holding: bool) {
        self.inline = Some(holding);
    }

    /// A request began (tether's own HTTP/1 path read its head): the head's deadline no longer
    /// applies, and the idle deadline starts when the request ends. (hyper's server reads
    /// while a request is in progress, which tells `poll_read` the same; a response ready at
    /// once leaves no such read.)
    pub fn request_started(&mut self) {
        self.phase = Phase::Busy;
    }

    /// Unparsed bytes of the next head are held after a response: `header_timeout` applies to
    /// the rest of it, not `idle_timeout`.
    pub fn head_pending(&mut self) {
        if self.phase != Phase::AwaitHead {
            self.set_deadline(Phase::AwaitHead, self.header_timeout);
        }
    }

    /// Hands the connection from tether's own HTTP/1 path to hyper's: `bytes` (the start of a
    /// request head, and what followed it) are served again first, scanned as if they had
    /// just been read, and heads are scanned from here on.
    pub fn hand_over(&mut self, mut bytes: bytes::BytesMut) {
        self.inline = None;
        // A head has begun, whatever the phase was while it was read ahead.
        self.set_deadline(Phase::AwaitHead, self.header_timeout);
        self.head.start();
        if self.head.scan(&mut bytes) {
            // As in `poll_read`: the line end after the NUL makes the parser fail now.
            bytes.extend_from_slice(b"\r\n\r\n");
        }
        self.rewind(bytes.freeze());
    }

    /// True once after the connection sat idle for `release_after` with nothing buffered: the
    /// read that saw it returned end-of-stream, so the HTTP/1 session above it ended cleanly
    /// (and its shutdown was not passed to the socket). The client connection is still open;
    /// the caller holds it without buffers until the client sends again.
    pub fn released(&self) -> bool {
        self.released
    }

    /// Takes the connection back after a release, for the next session.
    pub fn resume(&mut self) {
        self.released = false;
    }

    /// Puts bytes already read back in front of what is left to read (they were checked when
    /// read).
    pub fn rewind(&mut self, bytes: bytes::Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.rewind = Some(match self.rewind.take() {
            None => bytes,
            Some(rest) => {
                let mut both = bytes::BytesMut::from(&bytes[..]);
                both.extend_from_slice(&rest);
                both.freeze()
            }
        });
    }

    /// Records what the connection speaks, once the caller has read enough to know.
    pub fn set_h2(&mut self, h2: bool) {
        self.h2 = Some(h2);
    }

    /// The activity counter requests on this connection report to.
    pub fn activity(&self) -> Arc<Activity> {
        Arc::clone(&self.activity)
    }

    /// Enters `phase` with a deadline `after` from now; returns now.
    fn set_deadline(&mut self, phase: Phase, after: Duration) -> Instant {
        let now = Instant::now();
        self.phase = phase;
        self.deadline = now + after;
        now
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(ahead) = &mut this.rewind {
            let n = ahead.len().min(buf.remaining());
            buf.put_slice(&ahead.split_to(n));
            if ahead.is_empty() {
                this.rewind = None;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let busy = this.activity.busy();
        match polled {
            Poll::Ready(Ok(())) => {
                let fresh = &mut buf.filled_mut()[before..];
                if !fresh.is_empty() {
                    let h2 = *this
                        .h2
                        .get_or_insert_with(|| fresh.starts_with(b"PRI * HTTP/2.0"));
                    if busy {
                        this.phase = Phase::Busy;
                    } else if h2 {
                        // Any frame (PING, SETTINGS) is activity on an idle HTTP/2 connection.
                        this.set_deadline(Phase::Idle, this.idle_timeout);
                    } else if this.phase != Phase::AwaitHead {
                        // First bytes of the next request on a keep-alive connection.
                        this.set_deadline(Phase::AwaitHead, this.header_timeout);
                        this.head.start();
                    }
                    if this.inline.is_some() {
                        // tether's own path checks the heads it reads.
                    } else if !h2 && this.phase != Phase::AwaitHead {
                        // A body, or a request pipelined behind the current one.
                        this.head.count_after(fresh.len());
                    } else if !h2 && this.head.scan(fresh) {
                        // The parser would wait for more after the NUL; a line end after it
                        // makes it fail now, with 400. Without room for it, close instead.
                        if buf.remaining() < 4 {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "malformed request head",
                            )));
                        }
                        buf.put_slice(b"\r\n\r\n");
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if busy {
                    this.phase = Phase::Busy;
                    this.activity.register_reader(cx.waker());
                    // The request may have ended between the load and the registration.
                    if this.activity.busy() {
                        return Poll::Pending;
                    }
                }
                if this.phase == Phase::Busy {
                    let idle_since = this.set_deadline(Phase::Idle, this.idle_timeout);
                    this.release_at = this.release_after.map(|after| idle_since + after);
                }
                // Release only what the parser has fully consumed: a leftover byte would be
                // read as a truncated request.
                let release_at = this
                    .release_at
                    .filter(|_| this.phase == Phase::Idle && this.h2 == Some(false))
                    .filter(|_| match this.inline {
                        Some(holding) => !holding,
                        None => this.head.fully_consumed(),
                    });
                let wake_at = release_at.map_or(this.deadline, |at| at.min(this.deadline));
                if this.sleep.deadline() != wake_at {
                    this.sleep.as_mut().reset(wake_at);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) if release_at.is_some_and(|at| at <= Instant::now()) => {
                        this.release_at = None;
                        this.released = true;
                        Poll::Ready(Ok(()))
                    }
                    Poll::Ready(()) => {
                        let what = match this.phase {
                            Phase::AwaitHead => "request head not received within header_timeout",
                            _ => "idle keep-alive connection reached idle_timeout",
                        };
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.released {
            // The session ended, not the connection.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
