//! Header rewriting between client and backend: hop-by-hop removal and forwarding headers.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1), plus the
/// non-standard ones that clients and old proxies still send.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers, including every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them: one pass over the names, without hashing, says so.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// `Forwarded` (RFC 7239).
pub static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// tether's explain header (`explain = true` on a pool); never accepted from clients.
pub static EXPLAIN: HeaderName = HeaderName::from_static("x-tether-affinity");

/// Sets the forwarding headers for the backend. From a trusted proxy, the client is appended to
/// its `X-Forwarded-For` and its `X-Forwarded-Proto`/`-Host` are kept; from anyone else, every
/// forwarding header the client sent (and tether's own explain header) is dropped first, so
/// a client cannot claim another address or scheme.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client: IpAddr,
    trusted_peer: bool,
    proto: &'static str,
    host: Option<&HeaderValue>,
) {
    let claims = [
        &X_FORWARDED_FOR,
        &X_FORWARDED_PROTO,
        &X_FORWARDED_HOST,
        &FORWARDED,
        &EXPLAIN,
    ];
    if !trusted_peer && headers.keys().any(|name| claims.contains(&name)) {
        for name in claims {
            headers.remove(name);
        }
    }
    let mut xff = String::new();
    for prior in headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        xff.push_str(prior);
        xff.push_str(", ");
    }
    let _ = write!(xff, "{client}");
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers
        .entry(X_FORWARDED_PROTO.clone())
        .or_insert_with(|| HeaderValue::from_static(proto));
    if let Some(host) = host {
        headers
            .entry(X_FORWARDED_HOST.clone())
            .or_insert_with(|| host.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_headers_are_removed_too() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn untrusted_clients_cannot_claim_an_address() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        h.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        h.insert(&FORWARDED, HeaderValue::from_static("for=6.6.6.6"));
        set_forwarded(&mut h, "127.0.0.9".parse().unwrap(), false, "http", None);
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.9");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert!(!h.contains_key(&FORWARDED));

        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.5"));
        h.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        set_forwarded(&mut h, "10.0.0.2".parse().unwrap(), true, "http", None);
        assert_eq!(h[&X_FORWARDED_FOR], "203.0.113.5, 10.0.0.2");
        assert_eq!(
            h[&X_FORWARDED_PROTO], "https",
            "the front proxy knows the scheme"
        );
    }

    #[test]
    fn forwarded_for_is_appended_once() {
        let mut h = HeaderMap::new();
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        let host = HeaderValue::from_static("shop.example");
        set_forwarded(
            &mut h,
            "127.0.0.9".parse().unwrap(),
            true,
            "http",
            Some(&host),
        );
        assert_eq!(h.get_all(&X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 10.0.0.2, 127.0.0.9");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert_eq!(h[&X_FORWARDED_HOST], "shop.example");
    }
}
