//! HTTP/1.1 to plain-TCP backends inside the client connection's task, for requests without a
//! body (most GETs): the request head is written and the response read here, and the response
//! body is read from the backend's socket as the client's side of hyper polls for it.
//!
//! hyper's client drives each connection from a task of its own, so a request crosses to that
//! task through a channel, its response head comes back through another, and every step wakes
//! the other task: about a third of the instructions a proxied request cost (bench/RESULTS.md).
//! Requests with a body, upgrades, TLS and HTTP/2 backends still go through hyper. An idle
//! connection is a bare socket in its backend's idle stack: it holds no parser or buffer.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use smallvec::SmallVec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::Backend;
use crate::headers::lists_token;
use crate::upstream::MAX_RESPONSE_HEAD;

/// Most header fields accepted in a response head or trailer section (hyper's limit too).
const MAX_HEADERS: usize = 100;
/// Bytes asked of the socket per read of a body.
const READ_CHUNK: usize = 16 * 1024;
/// The first read's buffer: most response heads (and small bodies) fit, and a small
/// allocation comes warm from the allocator's thread cache where a 16 KiB one does not.
const HEAD_CHUNK: usize = 4096;
/// Longest chunk-size line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// Why an exchange with a backend failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A read or write on the backend's socket failed.
    #[error("backend connection: {0}")]
    Io(#[from] io::Error),
    /// The backend closed the connection before a complete response head.
    #[error("backend closed the connection before a complete response head")]
    Closed,
    /// The response head is not valid HTTP/1.x.
    #[error("invalid response head: {0}")]
    Invalid(&'static str),
    /// The response head does not fit in [`MAX_RESPONSE_HEAD`].
    #[error("response head larger than {MAX_RESPONSE_HEAD} bytes")]
    TooLarge,
    /// The response body broke off or its chunked framing is invalid.
    #[error("response body: {0}")]
    Body(&'static str),
}

/// An exchange that failed, and whether the backend may have acted on the request.
#[derive(Debug)]
pub struct Failed {
    /// False: the backend cannot have seen the request (not a byte was written, or a reused
    /// connection turned out closed before any response to an idempotent request), so it may
    /// go to another connection.
    pub sent: bool,
    /// What went wrong.
    pub error: Error,
}

/// Whether `req` can be sent by [`exchange`]: it has no body and asks for no upgrade.
pub fn eligible<B: Body>(req: &Request<B>) -> bool {
    req.body().is_end_stream()
        && req.method() != Method::CONNECT
        && !req.headers().contains_key(header::UPGRADE)
}

/// Sends `req` (which must be [`eligible`]) on `stream` and reads the response head. The body
/// reads on from the same socket, which goes back to `backend`'s idle stack once the body has
/// ended, if the response allows reuse. `reused`: the socket carried a request before.
pub async fn exchange<B>(
    mut stream: TcpStream,
    req: &Request<B>,
    backend: &Arc<Backend>,
    reused: bool,
) -> Result<Response<H1Body>, Failed> {
    // One buffer carries the request head out and then the response in: one allocation.
    let mut buf = BytesMut::with_capacity(HEAD_CHUNK);
    encode(req, &mut buf);
    let mut written = 0;
    while written < buf.len() {
        match stream.write(&buf[written..]).await {
            Ok(0) => {
                return Err(Failed {
                    sent: written > 0,
                    error: Error::Io(io::ErrorKind::WriteZero.into()),
                })
            }
            Ok(n) => written += n,
            Err(e) => {
                return Err(Failed {
                    sent: written > 0,
                    error: Error::Io(e),
                })
            }
        }
    }
    buf.clear();
    read_response(stream, buf, req.method() == Method::HEAD, backend)
        .await
        .map_err(|(error, answered)| Failed {
            // No response byte on a reused connection: most likely the backend closed it just
            // as it was reused (its idle timeout, a restart). An idempotent request may be
            // repeated (RFC 9110 9.2.2), so it goes out again on a fresh connection.
            sent: answered || !reused || !idempotent(req.method()),
            error,
        })
}

/// Methods whose repetition has the effect of one request (RFC 9110 9.2.2).
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Writes the request head: the request line in origin form, then the fields as they are.
fn encode<B>(req: &Request<B>, out: &mut BytesMut) {
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.extend_from_slice(b" ");
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Reads and parses the response head (skipping 1xx interim responses) and frames the body.
/// An error says whether any response byte had arrived.
async fn read_response(
    mut stream: TcpStream,
    mut buf: BytesMut,
    head_only: bool,
    backend: &Arc<Backend>,
) -> Result<Response<H1Body>, (Error, bool)> {
    let mut answered = false;
    loop {
        let parsed = parse_head(&mut buf).map_err(|e| (e, true))?;
        let Some(head) = parsed else {
            if buf.len() >= MAX_RESPONSE_HEAD {
                return Err((Error::TooLarge, true));
            }
            buf.reserve(HEAD_CHUNK);
            match stream.read_buf(&mut buf).await {
                Ok(0) => return Err((Error::Closed, answered)),
                Ok(_) => answered = true,
                Err(e) => return Err((Error::Io(e), answered)),
            }
            continue;
        };
        if head.status == StatusCode::SWITCHING_PROTOCOLS {
            return Err((
                Error::Invalid("101 to a request that asked for no upgrade"),
                true,
            ));
        }
        if head.status.is_informational() {
            // 100 Continue, 103 Early Hints: interim, the real response follows.
            continue;
        }
        let Head {
            status,
            version,
            mut headers,
            reason,
        } = head;
        let framing = framing(status, version, head_only, &mut headers).map_err(|e| (e, true))?;
        // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when told to keep.
        let reusable = !matches!(framing, Framing::UntilClose)
            && match version {
                Version::HTTP_11 => !lists_token(&headers, &header::CONNECTION, "close"),
                _ => lists_token(&headers, &header::CONNECTION, "keep-alive"),
            };
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
        };
        if body.state == State::Done {
            body.finish();
        }
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        *resp.version_mut() = version;
        *resp.headers_mut() = headers;
        // A reason phrase of the backend's own ("200 Fine", or any for an unregistered code)
        // goes on to the client, as through hyper's client.
        if let Some(reason) = reason {
            resp.extensions_mut().insert(reason);
        }
        return Ok(resp);
    }
}

/// A parsed response head.
struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    /// The reason phrase, when it is not the status code's usual one.
    reason: Option<hyper::ext::ReasonPhrase>,
}

/// Parses a complete head off the front of `buf`; `None` if it is not all there yet. Header
/// values share `buf`'s memory rather than being copied.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, Error> {
    // Uninitialised: zeroing a hundred fields on every parse cost more than the parse.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut fields,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Error::Invalid("too many header fields"))
        }
        Err(_) => return Err(Error::Invalid("malformed status line or header field")),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(Error::Invalid("status code"))?;
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let reason = resp
        .reason
        .filter(|r| Some(*r) != status.canonical_reason())
        .and_then(|r| hyper::ext::ReasonPhrase::try_from(r.as_bytes()).ok());
    // Where each field lies in `buf`, so that the values can share the frozen head.
    let base = buf.as_ptr() as usize;
    let spans: SmallVec<[(usize, usize, usize, usize); 24]> = resp
        .headers
        .iter()
        .map(|f| {
            let name = f.name.as_ptr() as usize - base;
            let value = f.value.as_ptr() as usize - base;
            (name, f.name.len(), value, f.value.len())
        })
        .collect();
    let count = spans.len();
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    for &(name, name_len, value, value_len) in &spans {
        let name = HeaderName::from_bytes(&head[name..name + name_len])
            .map_err(|_| Error::Invalid("header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value..value + value_len))
            .map_err(|_| Error::Invalid("header value"))?;
        headers.append(name, value);
    }
    Ok(Some(Head {
        status,
        version,
        headers,
        reason,
    }))
}

/// How a response body is delimited (RFC 9112 6.3).
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// No body: a HEAD response, 1xx, 204 or 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the backend closes the connection.
    UntilClose,
}

/// The framing of a response; removes a `Content-Length` that `Transfer-Encoding` overrides.
fn framing(
    status: StatusCode,
    version: Version,
    head_only: bool,
    headers: &mut HeaderMap,
) -> Result<Framing, Error> {
    if head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if version == Version::HTTP_10 {
            return Err(Error::Invalid("Transfer-Encoding in an HTTP/1.0 response"));
        }
        // Transfer-Encoding overrides Content-Length; the message then ends the connection.
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim);
        return Ok(match last {
            Some(coding) if coding.eq_ignore_ascii_case("chunked") => Framing::Chunked,
            _ => Framing::UntilClose,
        });
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        // A list of identical lengths ("5, 5") is one length; anything else is refused.
        let text = value
            .to_str()
            .map_err(|_| Error::Invalid("Content-Length"))?;
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::Invalid("Content-Length"));
            }
            let n: u64 = part.parse().map_err(|_| Error::Invalid("Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::Invalid("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
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

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of chunk data still to come.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: the trailer section, up to an empty line.
    Trailers,
}

/// One decoding step of a chunked body.
enum Step {
    /// Chunk data.
    Data(Bytes),
    /// The trailer fields (possibly none) and the end of the body.
    End(HeaderMap),
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
}

impl std::fmt::Debug for H1Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Body")
            .field("state", &self.state)
            .finish()
    }
}

impl H1Body {
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

    /// Decodes what `buf` holds of a chunked body; `None` when more bytes are needed.
    fn step_chunked(&mut self, at: Chunk) -> Result<Option<Step>, &'static str> {
        match at {
            Chunk::Size => {
                let window = &self.buf[..self.buf.len().min(MAX_CHUNK_LINE)];
                let Some(eol) = window.iter().position(|&b| b == b'\n') else {
                    return if self.buf.len() >= MAX_CHUNK_LINE {
                        Err("chunk-size line too long")
                    } else {
                        Ok(None)
                    };
                };
                let size = chunk_size(&self.buf[..eol + 1])?;
                self.buf.advance(eol + 1);
                let next = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                };
                self.state = State::Chunked(next);
                self.step_chunked(next)
            }
            Chunk::Data(left) => {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let (data, left) = take(&mut self.buf, left);
                self.state = State::Chunked(if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                });
                Ok(Some(Step::Data(data)))
            }
            Chunk::DataEnd => {
                if self.buf.len() < 2 {
                    return Ok(None);
                }
                if &self.buf[..2] != b"\r\n" {
                    return Err("chunk data not followed by CRLF");
                }
                self.buf.advance(2);
                self.state = State::Chunked(Chunk::Size);
                self.step_chunked(Chunk::Size)
            }
            Chunk::Trailers => {
                if self.buf.starts_with(b"\r\n") {
                    self.buf.advance(2);
                    return Ok(Some(Step::End(HeaderMap::new())));
                }
                match trailers(&self.buf)? {
                    Some((used, fields)) => {
                        self.buf.advance(used);
                        Ok(Some(Step::End(fields)))
                    }
                    None if self.buf.len() > MAX_RESPONSE_HEAD => Err("trailer section too large"),
                    None => Ok(None),
                }
            }
        }
    }
}

/// Splits off up to `left` buffered bytes: the data and how many are still to come.
fn take(buf: &mut BytesMut, left: u64) -> (Bytes, u64) {
    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
    (buf.split_to(n).freeze(), left - n as u64)
}

/// Parses a chunk-size line (`1a;ext=v\r\n`): hex digits, optional extensions, CRLF.
fn chunk_size(line: &[u8]) -> Result<u64, &'static str> {
    let line = line
        .strip_suffix(b"\r\n")
        .ok_or("chunk-size line without CRLF")?;
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (size, rest) = line.split_at(digits);
    // Only spaces and tabs may stand between the size and its extensions (RFC 9112 7.1.1).
    let ext_at = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(rest.len());
    let ext = &rest[ext_at..];
    if digits == 0 || !(ext.is_empty() || ext.starts_with(b";")) {
        return Err("invalid chunk size");
    }
    if ext.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("invalid chunk extension");
    }
    // Leading zeros are allowed; more than 16 significant digits overflow.
    let significant = &size[size.iter().take_while(|&&b| b == b'0').count()..];
    if significant.len() > 16 {
        return Err("chunk size too large");
    }
    let text = std::str::from_utf8(significant).map_err(|_| "invalid chunk size")?;
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 16).map_err(|_| "invalid chunk size")
}

/// Parses a trailer section (fields, then the empty line) off the front of `buf`: the bytes
/// it took and the fields, or `None` if it is not all there yet. Only responses that carry
/// trailers get here.
fn trailers(buf: &[u8]) -> Result<Option<(usize, HeaderMap)>, &'static str> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete((used, fields))) => {
            let mut map = HeaderMap::with_capacity(fields.len());
            for f in fields {
                let name = HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| "trailer name")?;
                let value = HeaderValue::from_bytes(f.value).map_err(|_| "trailer value")?;
                map.append(name, value);
            }
            Ok(Some((used, map)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err("malformed trailer section"),
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
                State::Chunked(at) => match this.step_chunked(at) {
                    Ok(Some(Step::Data(data))) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Some(Step::End(trailers))) => {
                        this.finish();
                        if trailers.is_empty() {
                            return Poll::Ready(None);
                        }
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(None) => {}
                    Err(why) => return this.fail(why),
                },
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
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Head>, Error> {
        parse_head(&mut BytesMut::from(text))
    }

    fn framing_of(text: &str, head_only: bool) -> Result<Framing, Error> {
        let h = head(text)?.expect("complete");
        let mut headers = h.headers;
        framing(h.status, h.version, head_only, &mut headers)
    }

    #[test]
    fn a_head_split_anywhere_parses_once_complete() {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
        for cut in 0..text.find("\r\n\r\n").unwrap() + 4 {
            assert!(head(&text[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let mut buf = BytesMut::from(text);
        let h = parse_head(&mut buf).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.headers["x-a"], "b");
        assert_eq!(&buf[..], b"hello", "the body stays in the buffer");
    }

    #[test]
    fn body_framing_follows_rfc_9112() {
        let f = |t: &str| framing_of(t, false).unwrap();
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Framing::Chunked
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Framing::Chunked
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Framing::UntilClose
        );
        assert_eq!(f("HTTP/1.1 200 OK\r\n\r\n"), Framing::UntilClose);
        assert_eq!(
            f("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"),
            Framing::Empty
        );
        assert_eq!(f("HTTP/1.1 304 Not Modified\r\n\r\n"), Framing::Empty);
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true).unwrap(),
            Framing::Empty
        );
        for bad in ["5, 6", "-1", "", "0x5", "5 5", "99999999999999999999999"] {
            let text = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert!(framing_of(&text, false).is_err(), "{bad:?}");
        }
        assert!(framing_of(
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false
        )
        .is_err());
    }

    #[test]
    fn transfer_encoding_overrides_content_length_and_ends_the_connection() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        let mut headers = h.headers;
        assert_eq!(
            framing(h.status, h.version, false, &mut headers).unwrap(),
            Framing::Chunked
        );
        assert!(!headers.contains_key(header::CONTENT_LENGTH));
        assert!(lists_token(&headers, &header::CONNECTION, "close"));
    }

    #[test]
    fn only_an_unusual_reason_phrase_is_kept() {
        let h = head("HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(h.reason.is_none());
        let h = head("HTTP/1.1 200 Fine\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.reason.unwrap().as_bytes(), b"Fine");
    }

    #[test]
    fn malformed_heads_are_refused() {
        for bad in [
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
            "junk\r\n\r\n",
        ] {
            assert!(head(bad).is_err(), "{bad:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert!(head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")).is_err());
    }

    #[test]
    fn chunk_size_lines() {
        assert_eq!(chunk_size(b"1a\r\n"), Ok(26));
        assert_eq!(chunk_size(b"0\r\n"), Ok(0));
        assert_eq!(chunk_size(b"A;name=value\r\n"), Ok(10));
        assert_eq!(chunk_size(b"5 ;x\r\n"), Ok(5));
        assert_eq!(chunk_size(b"000000000000000000001a\r\n"), Ok(26));
        assert_eq!(chunk_size(b"00\r\n"), Ok(0));
        for bad in [
            &b"\r\n"[..],
            b"g\r\n",
            b"5\n",
            b"5 x\r\n",
            b"5\r;x\r\n",
            b"11111111111111111\r\n",
            b"-1\r\n",
        ] {
            assert!(
                chunk_size(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// Decodes a whole chunked body fed `piece` bytes at a time, as the socket might deliver it.
    fn decode(body: &[u8], piece: usize) -> Result<(Vec<u8>, HeaderMap), &'static str> {
        let mut b = H1Body {
            conn: None,
            buf: BytesMut::new(),
            state: State::Chunked(Chunk::Size),
            reusable: false,
        };
        let mut out = Vec::new();
        let mut input = body.chunks(piece);
        loop {
            let State::Chunked(at) = b.state else {
                unreachable!()
            };
            match b.step_chunked(at)? {
                Some(Step::Data(d)) => out.extend_from_slice(&d),
                Some(Step::End(t)) => return Ok((out, t)),
                None => match input.next() {
                    Some(more) => b.buf.extend_from_slice(more),
                    None => return Err("ran out"),
                },
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_the_same_however_they_arrive() {
        let body = b"5\r\nhello\r\n7;ext\r\n, world\r\n0\r\nX-Sum: 42\r\n\r\n";
        for piece in 1..=body.len() {
            let (data, trailers) = decode(body, piece).unwrap();
            assert_eq!(data, b"hello, world", "pieces of {piece}");
            assert_eq!(trailers["x-sum"], "42");
        }
        // Bytes after the trailer section stay in the buffer (and so keep the connection from
        // being reused).
        let mut b = H1Body {
            conn: None,
            buf: BytesMut::from(&b"X: 1\r\n\r\nextra"[..]),
            state: State::Chunked(Chunk::Trailers),
            reusable: true,
        };
        assert!(matches!(
            b.step_chunked(Chunk::Trailers),
            Ok(Some(Step::End(_)))
        ));
        assert_eq!(&b.buf[..], b"extra");
        let (data, trailers) = decode(b"0\r\n\r\n", 1).unwrap();
        assert!(data.is_empty() && trailers.is_empty());
    }

    /// A valid chunked body of random chunks, extensions and trailers, with its data.
    fn random_chunked(rng: &mut fastrand::Rng) -> (Vec<u8>, Vec<u8>) {
        let (mut wire, mut data) = (Vec::new(), Vec::new());
        for _ in 0..rng.usize(0..6) {
            let chunk: Vec<u8> = (0..rng.usize(1..40)).map(|_| rng.u8(..)).collect();
            let ext = if rng.bool() { ";a=b" } else { "" };
            let size = format!("{:0width$x}", chunk.len(), width = rng.usize(1..4));
            wire.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
            wire.extend_from_slice(&chunk);
            wire.extend_from_slice(b"\r\n");
            data.extend_from_slice(&chunk);
        }
        wire.extend_from_slice(b"0\r\n");
        if rng.bool() {
            wire.extend_from_slice(b"X-T: 1\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        (wire, data)
    }

    #[test]
    fn random_and_corrupted_chunked_bodies_never_panic_and_decode_alike_in_any_pieces() {
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..3000 {
            let (mut wire, data) = random_chunked(&mut rng);
            let corrupt = round % 2 == 1;
            if corrupt {
                // Flip, drop or insert a few bytes anywhere.
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(..wire.len());
                    match rng.u8(0..3) {
                        0 => wire[at] = rng.u8(..),
                        1 => drop(wire.remove(at)),
                        _ => wire.insert(at, rng.u8(..)),
                    }
                }
            }
            let whole = decode(&wire, wire.len().max(1));
            if !corrupt {
                assert_eq!(whole.as_ref().map(|(d, _)| d), Ok(&data), "round {round}");
            }
            for piece in [1, 2, 5, 13] {
                let split = decode(&wire, piece);
                // A decoder that waits for more bytes ("ran out") and one that fails on what it
                // has both stop; only complete decodes must agree byte for byte.
                if let (Ok(a), Ok(b)) = (&whole, &split) {
                    assert_eq!(a.0, b.0, "round {round}, pieces of {piece}");
                }
                assert_eq!(
                    whole.is_ok(),
                    split.is_ok(),
                    "round {round}, pieces of {piece}"
                );
            }
        }
    }

    #[test]
    fn random_and_corrupted_response_heads_never_panic() {
        let mut rng = fastrand::Rng::with_seed(11);
        let base =
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\nTransfer-Encoding: chunked\r\n\r\n";
        for _ in 0..5000 {
            let mut head = base.to_vec();
            for _ in 0..rng.usize(1..6) {
                let at = rng.usize(..head.len());
                match rng.u8(0..3) {
                    0 => head[at] = rng.u8(..),
                    1 => drop(head.remove(at)),
                    _ => head.insert(at, rng.u8(..)),
                }
            }
            for cut in [head.len() / 3, head.len()] {
                let mut buf = BytesMut::from(&head[..cut]);
                if let Ok(Some(h)) = parse_head(&mut buf) {
                    let mut headers = h.headers;
                    let _ = framing(h.status, h.version, false, &mut headers);
                }
            }
        }
    }

    #[test]
    fn broken_chunked_framing_fails() {
        for bad in [
            &b"5\r\nhelloX\r\n0\r\n\r\n"[..],
            b"zz\r\nhello\r\n",
            b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
        ] {
            assert!(
                decode(bad, bad.len()).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'1'; MAX_CHUNK_LINE + 2];
        assert!(decode(&long, long.len()).is_err());
    }

    #[test]
    fn requests_are_written_in_origin_form_with_their_fields() {
        let mut req = Request::new(());
        *req.method_mut() = Method::GET;
        *req.uri_mut() = "/a/b?c=d".parse().unwrap();
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_static("example.com"));
        req.headers_mut()
            .append("x-multi", HeaderValue::from_static("1"));
        req.headers_mut()
            .append("x-multi", HeaderValue::from_static("2"));
        let mut out = BytesMut::new();
        encode(&req, &mut out);
        assert_eq!(
            String::from_utf8(out.to_vec()).unwrap(),
            "GET /a/b?c=d HTTP/1.1\r\nhost: example.com\r\nx-multi: 1\r\nx-multi: 2\r\n\r\n"
        );
    }
}
