//! The demo shop's responses: plain text, JSON, cookies, the 401 of an unknown session, and
//! the query string of a request.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, SET_COOKIE};
use hyper::{Request, Response, StatusCode};

/// A response of the shop.
pub type Resp = Response<Full<Bytes>>;

/// The `key=value` pairs of the request's query string.
pub fn query(req: &Request<Incoming>) -> impl Iterator<Item = (&str, &str)> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
}

/// 401: this backend does not know the session.
pub fn no_session() -> Resp {
    text(StatusCode::UNAUTHORIZED, "no session\n")
}

/// Adds a `Set-Cookie` for `name`.
pub fn set_cookie(resp: &mut Resp, name: &str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly")) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
}

/// A text/plain response.
pub fn text(status: StatusCode, body: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// An application/json response.
pub fn json(status: StatusCode, v: serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
