//! tether's cookie among the request's `Cookie` headers: found for the decision, and removed
//! before the request goes to a backend.

use http::header::{self, HeaderMap, HeaderValue};

/// The value of cookie `name` in the request's `Cookie` headers (first occurrence).
pub fn find_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// Removes cookie `name` from the request's `Cookie` headers (tether's cookie is tether's
/// business; the backend never sees it).
pub fn strip_cookie(headers: &mut HeaderMap, name: &str) {
    if find_cookie(headers, name).is_none() {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split_once('=').is_none_or(|(k, _)| k != name))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(header::COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_and_stripped() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; tether_app=XYZ; b=2"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(find_cookie(&h, "tether_app"), Some("XYZ"));
        assert_eq!(find_cookie(&h, "c"), Some("3"));
        strip_cookie(&mut h, "tether_app");
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2; c=3");
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, HeaderValue::from_static("tether_app=XYZ"));
        strip_cookie(&mut only, "tether_app");
        assert!(!only.contains_key(header::COOKIE));
    }
}
