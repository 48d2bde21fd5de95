//! tether's own HTTP/1.1 server for bodiless requests: the head parsed with httparse in the
//! connection's task, the request proxied, the response head and body written from the same
//! task. A request it does not serve ends the session with its bytes untouched, and the
//! connection goes on in a hyper session (see docs/architecture.md).

use std::future::{poll_fn, Future};
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::encode::{self, Framing};
use crate::client::request_head::{self, Parsed};
use crate::client::{Activity, Busy, TimedIo};
use crate::proxy::{self, ListenerCtx, ProxyBody};
use crate::snapshot::Shared;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 4096;

/// Response bytes gathered before a write; a body chunk this large is written as it is.
const WRITE_AT: usize = 16 * 1024;

/// A write buffer grown past this by a large head is let go after the response.
const KEEP_WRITE_BUF: usize = 64 * 1024;

/// What a session's requests share.
pub struct Session<'a> {
    /// The snapshot requests read.
    pub shared: &'a Arc<Shared>,
    /// The listener.
    pub listener: &'a Arc<ListenerCtx>,
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether a request is in progress on the connection.
    pub activity: &'a Arc<Activity>,
    /// The largest request head accepted (`max_header_size`); a longer one goes to hyper,
    /// which answers 431.
    pub max_head: usize,
}

/// How a session ended.
#[derive(Debug)]
pub enum End {
    /// The connection is over (the client closed, asked to, or tether closed it).
    Closed,
    /// The connection sat idle for `idle_release` and is held without buffers until the client
    /// sends again.
    Released,
    /// A request for hyper: these bytes, in front of the socket's, are its start.
    Handoff(BytesMut),
    /// The connection failed (a deadline, a reset, a body that broke off).
    Failed(io::Error),
}

/// Serves requests on `io` until the connection ends, idles out, or a request needs hyper.
/// `drained` resolves when the process starts to shut down; it is made once per session (one
/// wait, not one per request) and, as it ends the session once ready, never polled again.
pub async fn serve<T, D>(
    io: &mut TimedIo<T>,
    session: &Session<'_>,
    mut drained: Pin<&mut D>,
) -> End
where
    T: AsyncRead + AsyncWrite + Unpin,
    D: Future<Output = ()>,
{
    let mut ahead = Ahead {
        buf: BytesMut::new(),
        limit: session.max_head,
        eof: false,
    };
    let mut out = Vec::new();
    loop {
        // Bytes of the buffer already known to hold no complete head: a head trickled in
        // small reads is parsed again only once it may have ended.
        let mut scanned = 0;
        let (req, asked_close) = loop {
            let buf = &mut ahead.buf;
            if scanned == 0 || request_head::may_end_head(buf, scanned) {
                match request_head::parse_within(buf, ahead.limit) {
                    Parsed::Simple { req, close } => break (req, close),
                    Parsed::Other => return End::Handoff(ahead.buf),
                    Parsed::BareLf => {
                        encode::bad_request(&mut out);
                        let _ = write_out(io, &mut out).await;
                        let _ = io.shutdown().await;
                        return End::Closed;
                    }
                    Parsed::Partial => {}
                }
            }
            scanned = buf.len();
            if ahead.eof || buf.len() >= ahead.limit {
                // Cut off by the client's close, or too long: hyper's session answers it.
                return End::Handoff(ahead.buf);
            }
            buf.reserve(READ_CHUNK);
            // Idle release only with nothing unparsed.
            io.set_inline(!buf.is_empty());
            // No request is in progress: a drain closes the connection (as hyper's graceful
            // shutdown closes one whose next head has not been read whole).
            let read = tokio::select! {
                read = io.read_buf(buf) => read,
                () = drained.as_mut() => return End::Closed,
            };
            match read {
                Ok(0) if io.released() => return End::Released,
                Ok(0) if buf.is_empty() => return End::Closed,
                Ok(0) => ahead.eof = true,
                Ok(_) => {}
                Err(e) => return End::Failed(e),
            }
        };
        let method = req.method().clone();
        io.request_started();
        let busy = Busy::new(session.activity);
        // Pinned where it is made: `watched` takes it by reference, so the request's future
        // (several KiB) is not moved again.
        let handled = pin!(proxy::handle(
            Arc::clone(session.shared),
            Arc::clone(session.listener),
            session.peer,
            busy,
            req.map(|()| None),
        ));
        let resp = match watched(io, &mut ahead, handled).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(never)) => match never {},
            Err(end) => return end,
        };
        let (parts, mut body) = resp.into_parts();
        let draining = poll_fn(|cx| Poll::Ready(drained.as_mut().poll(cx).is_ready())).await;
        let close = asked_close || draining || parts.status.is_informational();
        let encoded = encode::head(&parts, &method, &body.size_hint(), close, &mut out);
        drop(parts);
        let close = encoded.close;
        if let Err(end) = send_body(io, &mut ahead, &mut body, encoded.framing, &mut out).await {
            return end;
        }
        // The access record is written and the backend's connection released here.
        drop(body);
        if out.capacity() > KEEP_WRITE_BUF {
            out = Vec::new();
        }
        if close || (ahead.eof && ahead.buf.is_empty()) {
            let _ = io.shutdown().await;
            return End::Closed;
        }
        if !ahead.buf.is_empty() {
            io.head_pending();
        }
    }
}

/// Writes the body after its head (already in `out`), gathering what is ready into one write.
async fn send_body<T>(
    io: &mut TimedIo<T>,
    ahead: &mut Ahead,
    body: &mut ProxyBody,
    framing: Framing,
    out: &mut Vec<u8>,
) -> Result<(), End>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    loop {
        let ready = poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await;
        let frame = match ready {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                // Nothing more for now: what is gathered goes out while the body waits.
                write_out(io, out).await.map_err(End::Failed)?;
                let next = pin!(poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)));
                watched(io, ahead, next).await?
            }
        };
        let data = match frame {
            None => break,
            Some(Err(e)) => {
                // The backend's body broke off: the client gets what came, then the connection
                // ends, so it cannot take the response for a whole one.
                let _ = write_out(io, out).await;
                return Err(End::Failed(io::Error::other(e)));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                _ => continue,
            },
        };
        match framing {
            Framing::None => {}
            Framing::Length(_) => {
                if data.len() as u64 > left {
                    let _ = write_out(io, out).await;
                    return Err(End::Failed(io::Error::other(
                        "response body longer than its Content-Length",
                    )));
                }
                left -= data.len() as u64;
                push(io, out, &data).await?;
            }
            Framing::Chunked => {
                // Writing to a Vec cannot fail.
                let _ = write!(out, "{:X}\r\n", data.len());
                push(io, out, &data).await?;
                out.extend_from_slice(b"\r\n");
            }
        }
        if out.len() >= WRITE_AT {
            write_out(io, out).await.map_err(End::Failed)?;
        }
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    write_out(io, out).await.map_err(End::Failed)?;
    if left > 0 {
        return Err(End::Failed(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "response body shorter than its Content-Length",
        )));
    }
    Ok(())
}

/// Appends `data` to `out`, or writes both now when `data` is large (no copy).
async fn push<T>(io: &mut TimedIo<T>, out: &mut Vec<u8>, data: &Bytes) -> Result<(), End>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    if data.len() < WRITE_AT {
        out.extend_from_slice(data);
        return Ok(());
    }
    write_out(io, out).await.map_err(End::Failed)?;
    io.write_all(data).await.map_err(End::Failed)?;
    io.flush().await.map_err(End::Failed)
}

/// Writes and empties `out`.
async fn write_out<T>(io: &mut TimedIo<T>, out: &mut Vec<u8>) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    if out.is_empty() {
        return Ok(());
    }
    io.write_all(out).await?;
    out.clear();
    // TLS holds records until flushed; for TCP this does nothing.
    io.flush().await
}

/// The client's bytes read past the request in progress.
struct Ahead {
    /// Unparsed bytes: the next request's head, or part of it.
    buf: BytesMut,
    /// Most bytes held (`max_header_size`).
    limit: usize,
    /// The client has closed its side: no more requests will come.
    eof: bool,
}

/// Runs `fut` while reading ahead, as hyper's server does on a busy connection: a failed read
/// (a reset) drops the request, and with it the backend's connection; the end of the client's
/// side is noted (the connection closes after the response); bytes the client sends meanwhile
/// (the next, pipelined request) are kept, up to the limit.
async fn watched<T, F>(
    io: &mut TimedIo<T>,
    ahead: &mut Ahead,
    mut fut: Pin<&mut F>,
) -> Result<F::Output, End>
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: Future,
{
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        while !ahead.eof && ahead.buf.len() < ahead.limit {
            ahead.buf.reserve(READ_CHUNK);
            match pin!(io.read_buf(&mut ahead.buf)).poll(cx) {
                Poll::Ready(Ok(0)) => ahead.eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(End::Failed(e))),
                Poll::Pending => break,
            }
        }
        Poll::Pending
    })
    .await
}
