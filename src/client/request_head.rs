//! Reading a request head for tether's own HTTP/1 path ([`crate::h1`]): httparse, and the
//! decision whether the request is one that path serves.
//!
//! The path serves only the plainest requests: HTTP/1.1, no body (no `Content-Length`, no
//! `Transfer-Encoding`), no `Upgrade`, no `Expect`, a `Connection` field of `keep-alive` and
//! `close` at most, not CONNECT. Everything else, including every head this parser finds
//! malformed, is left to hyper's server exactly as it arrived, so what hyper refuses is still
//! refused in hyper's words. The parse is the one hyper's server runs (httparse with its
//! default request config, the same header limit, the target through `Uri::from_maybe_shared`),
//! plus one rule hyper lacks: a line ended by a bare LF is refused.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};
use smallvec::SmallVec;

/// Most header fields in a request head (hyper's server limit; more gets hyper's 431).
pub const MAX_HEADERS: usize = 100;

/// Fields `proxy::handle` adds to a request (`X-Forwarded-For`, `-Proto`, `-Host`,
/// `X-Request-Id`, `Host`), with room to spare.
const ADDED_FIELDS: usize = 6;

/// What the front of a client's bytes holds.
// Unboxed on purpose: the large variant is the common one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole head yet (nothing taken).
    Partial,
    /// A bodiless HTTP/1.1 request, its head taken off the buffer. `close`: the client asked
    /// for the connection to end after the response.
    Simple {
        /// The request, header values sharing the head's bytes.
        req: Request<()>,
        /// `Connection: close`.
        close: bool,
    },
    /// A request for hyper's server: a body, an upgrade, another version, or a head httparse
    /// or `http` refuses (nothing taken).
    Other,
    /// A complete head with a line ended by a bare LF (nothing taken): answered 400.
    BareLf,
}

/// How one header field bears on the decision.
enum Field {
    Plain,
    /// `Connection`: `Some(close)` when it lists only `keep-alive` and `close`.
    Connection(Option<bool>),
    /// Framing, upgrade or expectation: the request goes to hyper.
    Other,
}

fn classify(name: &str, value: &[u8]) -> Field {
    // Most requests carry none of these; the length test skips most names at once.
    match name.len() {
        6 if name.eq_ignore_ascii_case("expect") => Field::Other,
        7 if name.eq_ignore_ascii_case("upgrade") => Field::Other,
        10 if name.eq_ignore_ascii_case("connection") => Field::Connection(connection(value)),
        14 if name.eq_ignore_ascii_case("content-length") => Field::Other,
        17 if name.eq_ignore_ascii_case("transfer-encoding") => Field::Other,
        _ => Field::Plain,
    }
}

/// `Some(close)` for a `Connection` value of `keep-alive` and `close` tokens only.
fn connection(value: &[u8]) -> Option<bool> {
    let mut close = false;
    for token in value.split(|&b| b == b',') {
        let token = token.trim_ascii();
        if token.eq_ignore_ascii_case(b"close") {
            close = true;
        } else if !token.eq_ignore_ascii_case(b"keep-alive") {
            return None;
        }
    }
    Some(close)
}

/// True when every LF in `head` follows a CR. Empty lines before the request line are skipped,
/// as httparse skips them (RFC 9112 2.2).
fn crlf_only(head: &[u8]) -> bool {
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    memchr::memchr_iter(b'\n', &head[start..]).all(|at| at > 0 && head[start + at - 1] == b'\r')
}

/// True when the bytes of `buf` from `from` on (with the two before, which a line end may
/// span) hold an empty line, without which no head is complete: a head trickled in small reads
/// is then parsed once it may be whole, not once per read.
pub fn may_end_head(buf: &[u8], from: usize) -> bool {
    let from = from.saturating_sub(2).min(buf.len());
    memchr::memchr_iter(b'\n', &buf[from..]).any(|at| {
        let rest = &buf[from + at + 1..];
        rest.starts_with(b"\n") || rest.starts_with(b"\r\n")
    })
}

/// Parses the head at the front of `buf`. Only a [`Parsed::Simple`] head is taken off it; the
/// header values and target then share the head's memory rather than being copied.
pub fn parse(buf: &mut BytesMut) -> Parsed {
    parse_within(buf, usize::MAX)
}

/// [`parse`], with a complete head longer than `max` bytes left to hyper (which answers 431):
/// one read can bring more than the limit.
pub fn parse_within(buf: &mut BytesMut, max: usize) -> Parsed {
    // Uninitialised: zeroing a hundred fields on every parse cost more than the parse.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) if len <= max => len,
        Ok(httparse::Status::Complete(_)) => return Parsed::Other,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    if req.version != Some(1) {
        return Parsed::Other;
    }
    let Some(method) = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
    else {
        return Parsed::Other;
    };
    if method == Method::CONNECT {
        return Parsed::Other;
    }
    if !crlf_only(&buf[..len]) {
        return Parsed::BareLf;
    }
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let target = span(req.path.unwrap_or_default().as_bytes());
    let mut close = false;
    let mut spans: SmallVec<[(Span, Span); 24]> = SmallVec::new();
    for f in req.headers.iter() {
        match classify(f.name, f.value) {
            Field::Plain => {}
            Field::Connection(Some(c)) => close |= c,
            Field::Connection(None) | Field::Other => return Parsed::Other,
        }
        spans.push((span(f.name.as_bytes()), span(f.value)));
    }
    let head = buf.split_to(len).freeze();
    match build(&head, target, &spans) {
        Some((uri, headers)) => {
            let mut req = Request::new(());
            *req.method_mut() = method;
            *req.uri_mut() = uri;
            *req.version_mut() = Version::HTTP_11;
            *req.headers_mut() = headers;
            Parsed::Simple { req, close }
        }
        None => {
            // A target or field `http` refuses (rare): the bytes go back in front, for hyper.
            let mut back = BytesMut::with_capacity(head.len() + buf.len());
            back.extend_from_slice(&head);
            back.extend_from_slice(buf);
            *buf = back;
            Parsed::Other
        }
    }
}

type Span = (usize, usize);

/// The target and header fields out of the frozen head, sharing its memory.
fn build(head: &Bytes, target: Span, fields: &[(Span, Span)]) -> Option<(Uri, HeaderMap)> {
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.0 + target.1)).ok()?;
    // Room for the fields the request gains on its way to the backend (forwarding fields,
    // request id): growing the map later would rehash it, at every request.
    let mut headers = HeaderMap::with_capacity(fields.len() + ADDED_FIELDS);
    for &((name, name_len), (value, value_len)) in fields {
        let name = HeaderName::from_bytes(&head[name..name + name_len]).ok()?;
        let value = HeaderValue::from_maybe_shared(head.slice(value..value + value_len)).ok()?;
        headers.append(name, value);
    }
    Some((uri, headers))
}

#[cfg(test)]
#[path = "request_head_tests.rs"]
mod tests;
