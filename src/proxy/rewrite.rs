//! The request a backend receives: hop-by-hop fields removed, forwarding fields added, the
//! target in origin form (or absolute for HTTP/2), and the body wrapped for its rate check.

use std::net::SocketAddr;

use http::header::{self, HeaderValue};
use http::{Request, Uri, Version};
use hyper::body::Incoming;

use super::listener::ListenerCtx;
use crate::backend::Backend;
use crate::client::ClientBody;
use crate::headers;
use crate::pool::PoolSettings;

/// Rewrites a client request into the HTTP/1.1 origin-form request a backend expects.
pub(super) fn to_upstream(
    req: Request<Option<Incoming>>,
    client: SocketAddr,
    trusted_peer: bool,
    listener: &ListenerCtx,
    h2_upstream: bool,
) -> Request<ClientBody> {
    let proto = listener.proto;
    let (mut parts, body) = req.into_parts();
    // `TE: trailers` is the one TE a proxy passes on, and only to HTTP/2 backends: gRPC
    // servers require it there. To HTTP/1.1 backends it is hop-by-hop like any TE.
    let te_trailers = h2_upstream
        && parts
            .headers
            .get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    headers::strip_hop_by_hop(&mut parts.headers);
    if te_trailers {
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    // A body of unknown length keeps its chunked framing toward an HTTP/1.1 backend whatever
    // the method: without the header, hyper's client sends a GET's or DELETE's body as nothing.
    if !h2_upstream
        && body
            .as_ref()
            .is_some_and(|b| !http_body::Body::is_end_stream(b))
        && !parts.headers.contains_key(header::CONTENT_LENGTH)
    {
        parts.headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    // The URI's authority becomes Host: an HTTP/1 absolute-form target overrides Host
    // (RFC 9112 3.2.2), so the backend sees the one authority tether routed by; HTTP/2 clients
    // send it as :authority, and HTTP/1.1 backends need it as Host.
    let http1 = matches!(parts.version, Version::HTTP_10 | Version::HTTP_11);
    if http1 || !parts.headers.contains_key(header::HOST) {
        if let Some(v) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(header::HOST, v);
        }
    }
    let host = parts.headers.get(header::HOST).cloned();
    headers::set_forwarded(
        &mut parts.headers,
        client.ip(),
        trusted_peer,
        proto,
        host.as_ref(),
    );
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        parts.uri = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    }
    parts.version = Version::HTTP_11;
    let body = ClientBody::new(body, listener.min_body_rate, listener.body_grace);
    Request::from_parts(parts, body)
}

/// HTTP/2 carries scheme and authority as pseudo-headers: the request needs an absolute URI.
pub(super) fn absolute_uri(
    req: &mut Request<ClientBody>,
    settings: &PoolSettings,
    backend: &Backend,
) {
    let scheme = if settings.upstream.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let authority = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| backend.addr.to_string(), str::to_owned);
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    if let Ok(uri) = Uri::try_from(format!("{scheme}://{authority}{path}")) {
        *req.uri_mut() = uri;
    }
}
