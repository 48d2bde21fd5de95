//! One request and its response head on a bare socket: the head written from one buffer, the
//! response head read into the same.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use http::header;
use http::{Method, Request, Response};
use http_body::Body;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::body::H1Body;
use super::error::Error;
use super::head::read_response;
use crate::backend::Backend;
use crate::upstream::limits::HEAD_CHUNK;

/// An exchange that failed, and whether the backend may have acted on the request.
#[derive(Debug)]
pub struct Failed {
    /// The backend cannot have acted on the request (not a byte was written, or a reused
    /// connection turned out closed before any response to an idempotent request), so it may
    /// go out again on another connection.
    pub resendable: bool,
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
                    resendable: written == 0,
                    error: Error::Io(io::ErrorKind::WriteZero.into()),
                })
            }
            Ok(n) => written += n,
            Err(e) => {
                return Err(Failed {
                    resendable: written == 0,
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
            resendable: !answered && reused && idempotent(req.method()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

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
