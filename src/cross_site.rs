//! Admin calls that change something are refused when a browser sends them from another site.
//!
//! A web page can make a visitor's browser POST to a loopback admin listener, and once the
//! browser holds the dashboard's Basic credentials it attaches them by itself. Browsers say
//! where such a request comes from (`Origin`, `Sec-Fetch-Site`); tools such as curl send neither,
//! and the dashboard's own calls come from the admin listener's origin.

use http::header::{self, HeaderMap};
use http::Method;

/// Why a state-changing call must be refused, or `None` when it may go ahead.
pub fn refusal(method: &Method, headers: &HeaderMap) -> Option<&'static str> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        if !matches!(site, "same-origin" | "none") {
            return Some("a browser sent this call from another site");
        }
    }
    let origin = text(header::ORIGIN)?;
    let host = text(header::HOST)?;
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    (!origin_host.eq_ignore_ascii_case(host))
        .then_some("a browser sent this call from another origin")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_cross_site_browser_calls_that_change_something_are_refused() {
        let host = ("host", "127.0.0.1:9901");
        let post = Method::POST;
        assert_eq!(
            refusal(&post, &headers(&[host])),
            None,
            "curl sends no Origin"
        );
        let same = headers(&[
            host,
            ("origin", "http://127.0.0.1:9901"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(refusal(&post, &same), None, "the dashboard's own calls");
        let evil = headers(&[host, ("origin", "http://evil.example")]);
        assert!(refusal(&post, &evil).is_some());
        assert!(refusal(&Method::DELETE, &evil).is_some());
        let cross = headers(&[host, ("sec-fetch-site", "cross-site")]);
        assert!(refusal(&Method::PUT, &cross).is_some());
        assert_eq!(refusal(&Method::GET, &evil), None, "reads change nothing");
    }
}
