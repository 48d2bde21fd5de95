//! Reading a response head from a backend: httparse, 1xx responses skipped, and the body's
//! framing decided from the head (RFC 9112 6.3).

use std::mem::MaybeUninit;
use std::sync::Arc;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Version};
use smallvec::SmallVec;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::body::{Framing, H1Body};
use super::error::Error;
use crate::backend::Backend;
use crate::headers::lists_token;
use crate::upstream::limits::{HEAD_CHUNK, MAX_HEADERS, MAX_RESPONSE_HEAD};

/// Reads and parses the response head (skipping 1xx interim responses) and frames the body.
/// An error says whether any response byte had arrived.
pub(super) async fn read_response(
    mut stream: TcpStream,
    mut buf: BytesMut,
    head_only: bool,
    backend: &Arc<Backend>,
) -> Result<Response<H1Body>, (Error, bool)> {
    let mut answered = false;
    loop {
        // Nothing to parse before the first read.
        let parsed = if buf.is_empty() {
            None
        } else {
            parse_head(&mut buf).map_err(|e| (e, true))?
        };
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
        let body = H1Body::new(stream, backend, buf, framing, reusable);
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
pub struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    /// The reason phrase, when it is not the status code's usual one.
    reason: Option<hyper::ext::ReasonPhrase>,
}

/// Parses a complete head off the front of `buf`; `None` if it is not all there yet. Header
/// values share `buf`'s memory rather than being copied.
pub fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, Error> {
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

/// The framing of a response; removes a `Content-Length` that `Transfer-Encoding` overrides.
pub fn framing(
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
}
