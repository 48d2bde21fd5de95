//! Requests refused before routing: targets and framings that a reverse proxy would have to
//! guess at, and that a careful peer refuses too.

use http::header::{self, HeaderMap};
use http::{Method, Request, StatusCode, Version};

/// Why a request is refused, and the status that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusal {
    /// 400 for a malformed request, 501 for one tether does not implement.
    pub status: StatusCode,
    /// One line for the client.
    pub reason: &'static str,
}

impl Refusal {
    fn bad(reason: &'static str) -> Option<Refusal> {
        Some(Refusal {
            status: StatusCode::BAD_REQUEST,
            reason,
        })
    }

    fn unsupported(reason: &'static str) -> Option<Refusal> {
        Some(Refusal {
            status: StatusCode::NOT_IMPLEMENTED,
            reason,
        })
    }
}

/// The refusal for `req`, or `None` when it may be routed. `has_body`: the request has a body
/// to read (only then can its transfer coding matter).
pub(super) fn refusal<B>(req: &Request<B>, has_body: bool) -> Option<Refusal> {
    let uri = req.uri();
    // RFC 9112 3.2: more than one Host is answered 400, never guessed at.
    if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
        return Refusal::bad("more than one Host header");
    }
    // tether is a reverse proxy: a tunnel to wherever the client names is not its job.
    if req.method() == Method::CONNECT {
        return Refusal::unsupported("CONNECT is not supported");
    }
    if let Some(authority) = uri.authority() {
        // RFC 9110 4.2.4: credentials in a target are refused; forwarded, they would leak into
        // the backend's Host and logs.
        if authority.as_str().contains('@') {
            return Refusal::bad("userinfo in the request target");
        }
        // `GET host:port HTTP/1.1`: the authority form belongs to CONNECT alone (RFC 9112 3.2.3).
        if uri.scheme().is_none() {
            return Refusal::bad("authority-form target on a method other than CONNECT");
        }
        // RFC 9113 8.3.1: a Host that names another authority than `:authority` is malformed.
        if req.version() == Version::HTTP_2 && host_differs(req.headers(), authority.as_str()) {
            return Refusal::bad("Host differs from :authority");
        }
    }
    if has_body {
        return transfer_coding(req.headers());
    }
    None
}

/// A request body in a transfer coding other than chunked would reach the backend without
/// it (tether decodes the chunking only), so it is refused (RFC 9112 6.1).
fn transfer_coding(headers: &HeaderMap) -> Option<Refusal> {
    let other = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|coding| {
            !coding.eq_ignore_ascii_case(b"chunked") && !coding.eq_ignore_ascii_case(b"identity")
        });
    if other {
        return Refusal::unsupported("transfer codings other than chunked are not supported");
    }
    None
}

/// The request's Host, if any, names another authority than `authority` (case and a default
/// port aside).
fn host_differs(headers: &HeaderMap, authority: &str) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return false;
    };
    let Ok(host) = host.to_str() else {
        return true;
    };
    let norm = |s: &str| {
        let s = s.to_ascii_lowercase();
        match s.strip_suffix(":443").or_else(|| s.strip_suffix(":80")) {
            Some(bare) => bare.to_owned(),
            None => s,
        }
    };
    norm(host) != norm(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &str, version: Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder()
            .method(method)
            .uri(target)
            .version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn status(r: &Request<()>) -> Option<u16> {
        refusal(r, true).map(|r| r.status.as_u16())
    }

    #[test]
    fn ordinary_requests_pass() {
        let h1 = Version::HTTP_11;
        assert_eq!(status(&req("GET", "/a?b", h1, &[("host", "x")])), None);
        assert_eq!(
            status(&req("GET", "http://x/a", h1, &[("host", "x")])),
            None
        );
        let chunked = [("host", "x"), ("transfer-encoding", "chunked")];
        assert_eq!(status(&req("POST", "/", h1, &chunked)), None);
        let h2 = Version::HTTP_2;
        assert_eq!(
            status(&req("GET", "https://X:443/", h2, &[("host", "x")])),
            None
        );
        assert_eq!(status(&req("GET", "https://x/", h2, &[])), None);
    }

    #[test]
    fn what_a_careful_peer_refuses_is_refused() {
        let h1 = Version::HTTP_11;
        let host = [("host", "x")];
        assert_eq!(status(&req("CONNECT", "x:443", h1, &host)), Some(501));
        assert_eq!(status(&req("GET", "http://u:p@x/", h1, &host)), Some(400));
        assert_eq!(status(&req("GET", "x:80", h1, &host)), Some(400));
        let two = [("host", "x"), ("host", "y")];
        assert_eq!(status(&req("GET", "/", h1, &two)), Some(400));
        let gzip = [("host", "x"), ("transfer-encoding", "gzip, chunked")];
        assert_eq!(status(&req("POST", "/", h1, &gzip)), Some(501));
        let h2 = Version::HTTP_2;
        let other = [("host", "evil.test")];
        assert_eq!(status(&req("GET", "https://x/", h2, &other)), Some(400));
    }
}
