//! A response body read from the backend's socket as the client's side polls for it; the
//! socket goes back to its backend's idle stack when the body ends and allows reuse.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::chunked::{self, take, Chunk, Step};
use super::error::Error;
use crate::backend::Backend;

/// Bytes asked of the socket per read of a body.
const READ_CHUNK: usize = 16 * 1024;

/// How a response body is delimited (RFC 9112 6.3).
#[derive(Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: a HEAD response, 1xx, 204 or 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the backend closes the connection.
    UntilClose,
}

/// The backend connection a body reads from, and where it goes back to.
struct Conn {
    stream: TcpStream,
    backend: Arc<Backend>,
}

/// Where a body is in its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes still to come.
    Length(u64),
    /// Within chunked framing.
    Chunked(Chunk),
    /// Until the backend closes.
    UntilClose,
    /// The body has ended.
    Done,
}

/// A response body read from the backend's socket as it is polled.
pub struct H1Body {
    /// The connection, until the body ends (or fails).
    conn: Option<Conn>,
    /// Bytes read past what has been delivered.
    buf: BytesMut,
    state: State,
    /// The connection may carry another request once this body has ended.
    reusable: bool,
    /// The first frame, decoded by [`Self::check_start`] before the head was forwarded.
    early: Option<Frame<Bytes>>,
}

impl std::fmt::Debug for H1Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Body")
            .field("state", &self.state)
            .finish()
    }
}

impl H1Body {
    /// The body of a response framed as `framing`, read on from `stream` after the head (`buf`
    /// holds what was read past it). `reusable`: the connection may carry another request
    /// once the body has ended, when it goes back to `backend`.
    pub(super) fn new(
        stream: TcpStream,
        backend: &Arc<Backend>,
        buf: BytesMut,
        framing: Framing,
        reusable: bool,
    ) -> Self {
        let mut body = H1Body {
            conn: Some(Conn {
                stream,
                backend: Arc::clone(backend),
            }),
            buf,
            state: match framing {
                Framing::Empty => State::Done,
                Framing::Length(0) => State::Done,
                Framing::Length(n) => State::Length(n),
                Framing::Chunked => State::Chunked(Chunk::Size),
                Framing::UntilClose => State::UntilClose,
            },
            reusable,
            early: None,
        };
        if body.state == State::Done {
            body.finish();
        }
        body
    }

    /// The body has ended: a connection that can carry another request, with nothing unread
    /// (a stray byte would be read as the next response), goes back to its backend.
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take() {
            if self.reusable && self.buf.is_empty() {
                conn.backend.idle.put_bare(conn.stream);
            }
        }
    }

    /// Fails the body: the connection is closed, never reused.
    fn fail(&mut self, why: &'static str) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.conn = None;
        self.state = State::Done;
        Poll::Ready(Some(Err(Error::Body(why))))
    }

    /// Decodes the start of a chunked body from the bytes that came with the head, before the
    /// head is forwarded: a body broken from its first byte (a chunk size that overflows, say)
    /// is then answered 502 instead of a 200 head the client may never even receive. Never
    /// waits for the backend; a body whose start has not arrived yet is left as it is.
    pub fn check_start(&mut self) -> Result<(), Error> {
        let State::Chunked(mut at) = self.state else {
            return Ok(());
        };
        match chunked::step(&mut at, &mut self.buf) {
            Ok(Some(Step::Data(data))) => self.early = Some(Frame::data(data)),
            Ok(Some(Step::End(trailers))) => {
                self.finish();
                if !trailers.is_empty() {
                    self.early = Some(Frame::trailers(trailers));
                }
                return Ok(());
            }
            Ok(None) => {}
            Err(why) => {
                self.conn = None;
                self.state = State::Done;
                return Err(Error::Body(why));
            }
        }
        self.state = State::Chunked(at);
        Ok(())
    }

    /// Reads more from the socket into `buf`; `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        self.buf.reserve(READ_CHUNK);
        let read = conn.stream.read_buf(&mut self.buf);
        tokio::pin!(read);
        std::future::Future::poll(read, cx)
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        if let Some(frame) = this.early.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        loop {
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) => {
                    if !this.buf.is_empty() {
                        let (data, left) = take(&mut this.buf, left);
                        this.state = State::Length(left);
                        if left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                State::UntilClose => {
                    if !this.buf.is_empty() {
                        let data = this.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                State::Chunked(mut at) => {
                    let stepped = chunked::step(&mut at, &mut this.buf);
                    this.state = State::Chunked(at);
                    match stepped {
                        Ok(Some(Step::Data(data))) => {
                            return Poll::Ready(Some(Ok(Frame::data(data))))
                        }
                        Ok(Some(Step::End(trailers))) => {
                            this.finish();
                            if trailers.is_empty() {
                                return Poll::Ready(None);
                            }
                            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                        }
                        Ok(None) => {}
                        Err(why) => return this.fail(why),
                    }
                }
            }
            match ready!(this.poll_fill(cx)) {
                Ok(0) if this.state == State::UntilClose => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail("backend closed the connection mid-body"),
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(Error::Io(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done && self.early.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done if self.early.is_none() => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
