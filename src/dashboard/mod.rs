//! The live dashboard served on the admin listener: one page and one script, compiled into the
//! binary (no build step, no CDN). The script polls `GET /status` and calls the same admin API
//! an operator's tools do.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::proxy::ProxyBody;

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");

/// The page (`GET /dashboard`) and its script (`GET /dashboard.js`), by name.
pub fn asset(name: &str) -> Option<Response<ProxyBody>> {
    let (body, kind) = match name {
        "dashboard" => (PAGE, "text/html; charset=utf-8"),
        "dashboard.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return None,
    };
    let mut resp = Response::new(ProxyBody::local(body));
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Only this origin's script and the page's own style block run; nothing may frame it.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(resp)
}
