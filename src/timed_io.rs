//! A client connection with tether's own deadlines and request-head hygiene.
//!
//! hyper's own header-read timer also runs while a keep-alive connection waits for its next
//! request, so it cannot express "10 s to send a head, but 60 s of idle keep-alive". tether
//! instead wraps each client connection in [`TimedIo`], which knows from a per-connection
//! activity counter whether a request is in progress and arms the right deadline.
//!
//! While it reads an HTTP/1 request head it also refuses bare LF line endings, which hyper's
//! parser tolerates but which some backends and middleboxes read differently (a request
//! smuggling vector): such a byte is replaced by NUL, so the parser fails and the client gets
//! 400 instead of an ambiguous request being forwarded.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests in progress on one client connection.
#[derive(Debug, Default)]
pub struct Activity {
    active: AtomicUsize,
    /// The connection's reader, parked without a deadline while a request was in progress.
    reader: AtomicWaker,
}

/// Marks a request in progress on its connection until dropped (it lives in the response body).
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Busy {
    /// Counts a request as in progress on `activity`'s connection.
    pub fn new(activity: &Arc<Activity>) -> Self {
        activity.active.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // The last request ended: hyper may not poll the socket again until the client sends
        // something, so wake the reader to arm the idle deadline now.
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.reader.wake();
        }
    }
}

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
}

/// Line-ending and framing check over the bytes of one HTTP/1 request head.
#[derive(Debug, Clone, Copy, Default)]
struct HeadScan {
    /// Scanning: between the start of a head and its blank line.
    active: bool,
    prev_cr: bool,
    /// The current line has no bytes yet (so CRLF here ends the head).
    line_empty: bool,
    /// Still reading the current line's header name (up to its colon).
    in_name: bool,
    /// The name so far, lower-cased; only the two framing names matter, so it is short.
    name: [u8; NAME_MAX],
    name_len: usize,
    /// The head has a `Content-Length` / `Transfer-Encoding` line.
    has_length: bool,
    has_encoding: bool,
    /// Reading the value of a `Content-Length` line.
    in_length: bool,
    /// The declared body length; `None` if absent, unparsable or given twice.
    length: Option<u64>,
    /// Bytes delivered after the end of this head (its body, or pipelined requests).
    after: u64,
}

/// Longest header name the scanner needs to recognise (`transfer-encoding`).
const NAME_MAX: usize = 17;

impl HeadScan {
    fn start(&mut self) {
        *self = HeadScan {
            active: true,
            ..HeadScan::default()
        };
    }

    /// True when every byte delivered since this head began has been a byte of this head or of
    /// its declared body: once its request is answered, the parser's buffer is empty.
    fn fully_consumed(&self) -> bool {
        !self.active && !self.has_encoding && self.after == self.length.unwrap_or(0)
    }

    /// Counts bytes that arrived after the head ended.
    fn count_after(&mut self, n: usize) {
        self.after = self.after.saturating_add(n as u64);
    }

    /// Scans `bytes`, poisoning a bare LF, and the final LF of a head that carries both
    /// `Content-Length` and `Transfer-Encoding` (RFC 9112 6.1: a request smuggling signature
    /// that a proxy should refuse rather than resolve); stops at the end of the head, counting
    /// the bytes after it. Returns true if it poisoned a byte.
    fn scan(&mut self, bytes: &mut [u8]) -> bool {
        let mut i = 0;
        while i < bytes.len() {
            if !self.active {
                self.count_after(bytes.len() - i);
                return false;
            }
            let b = bytes[i];
            match b {
                b'\n' if !self.prev_cr => {
                    bytes[i] = 0;
                    self.active = false;
                    return true;
                }
                b'\n' => {
                    if self.line_empty {
                        self.active = false;
                        if self.has_length && self.has_encoding {
                            bytes[i] = 0;
                            return true;
                        }
                    }
                    self.line_empty = true;
                    self.in_length = false;
                    // The line after the request line, and every one after it, starts a name.
                    self.in_name = true;
                    self.name_len = 0;
                }
                b'\r' => {}
                b':' if self.in_name => {
                    self.in_name = false;
                    match &self.name[..self.name_len] {
                        b"content-length" => {
                            // A second Content-Length leaves the length unknown.
                            self.length = (!self.has_length).then_some(0);
                            self.has_length = true;
                            self.in_length = true;
                        }
                        b"transfer-encoding" => self.has_encoding = true,
                        _ => {}
                    }
                    self.line_empty = false;
                }
                c if self.in_length => {
                    self.length = match c {
                        b'0'..=b'9' => self
                            .length
                            .and_then(|n| n.checked_mul(10))
                            .and_then(|n| n.checked_add(u64::from(c - b'0'))),
                        b' ' | b'\t' => self.length,
                        _ => None,
                    };
                    self.line_empty = false;
                }
                c if self.in_name => {
                    if self.name_len < NAME_MAX {
                        self.name[self.name_len] = c.to_ascii_lowercase();
                        self.name_len += 1;
                    } else {
                        // Longer than any name we look for.
                        self.in_name = false;
                    }
                    self.line_empty = false;
                }
                _ => {
                    // The request line, a value, or a name too long to matter: nothing up to
                    // the end of the line counts, so skip to its CR or LF.
                    let rest = &bytes[i..];
                    i += rest
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n')
                        .unwrap_or(rest.len());
                    self.line_empty = false;
                    self.prev_cr = false;
                    continue;
                }
            }
            self.prev_cr = b == b'\r';
            i += 1;
        }
        false
    }
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
            head: HeadScan {
                active: true,
                ..HeadScan::default()
            },
            release_after,
            release_at: None,
            released: false,
            rewind: None,
        }
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
        let busy = this.activity.active.load(Ordering::Acquire) > 0;
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
                    if !h2 && this.phase != Phase::AwaitHead {
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
                    this.activity.reader.register(cx.waker());
                    // The request may have ended between the load and the registration.
                    if this.activity.active.load(Ordering::Acquire) > 0 {
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
                    .filter(|_| this.head.fully_consumed());
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The scanned bytes; the same however the input is split into reads (checked for every
    /// piece size, down to the one-byte reads of a slow client), as are the bytes counted
    /// after a clean head (a poisoned one ends the connection, so its count is unused).
    fn scanned(input: &[u8]) -> Vec<u8> {
        let run = |piece: usize| {
            let mut scan = HeadScan::default();
            scan.start();
            let mut bytes = input.to_vec();
            for chunk in bytes.chunks_mut(piece) {
                let _ = scan.scan(chunk);
            }
            (bytes, scan.after)
        };
        let whole = run(input.len());
        let clean = whole.0 == input;
        for piece in 1..input.len() {
            let split = run(piece);
            assert_eq!(split.0, whole.0, "pieces of {piece}");
            if clean {
                assert_eq!(split.1, whole.1, "bytes after the head, pieces of {piece}");
            }
        }
        whole.0
    }

    #[test]
    fn bytes_after_the_head_are_counted() {
        let mut scan = HeadScan::default();
        scan.start();
        let mut bytes = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec();
        assert!(!scan.scan(&mut bytes));
        assert_eq!((scan.length, scan.after), (Some(3), 3));
        assert!(scan.fully_consumed());
    }

    #[test]
    fn crlf_heads_pass_untouched_and_the_body_is_not_scanned() {
        let input = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na\nb";
        assert_eq!(scanned(input), input.to_vec());
    }

    #[test]
    fn content_length_with_transfer_encoding_is_poisoned_at_the_end_of_the_head() {
        let out = scanned(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTRANSFER-ENCODING: chunked\r\n\r\nabc",
        );
        assert!(out.contains(&0), "{out:?}");
        let clean =
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-Transfer-Encoding: y\r\n\r\nabc";
        assert_eq!(scanned(clean), clean.to_vec());
    }

    #[test]
    fn a_bare_lf_in_the_head_is_poisoned() {
        let out = scanned(b"GET / HTTP/1.1\nHost: x\r\n\r\n");
        assert_eq!(out[14], 0);
        let out = scanned(b"GET / HTTP/1.1\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(out.contains(&0));
    }
}
