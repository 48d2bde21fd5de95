//! Header rewriting between client and backend: hop-by-hop removal and forwarding headers.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;

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

/// Which of `names` (at most 16) occur in `headers`, as a bit mask in their order. One pass over
/// the map's names without hashing; a length check first, so a name of another length costs no
/// string comparison.
fn present(headers: &HeaderMap, names: &[&str]) -> u16 {
    let mut found = 0u16;
    for key in headers.keys() {
        let key = key.as_str();
        for (i, name) in names.iter().enumerate() {
            if name.len() == key.len() && *name == key {
                found |= 1 << i;
            }
        }
    }
    found
}

/// Whether the comma-separated field `name` lists `token` (case-insensitively), as
/// `Connection: keep-alive, Upgrade` lists `upgrade`.
pub fn lists_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| value_lists(v.as_bytes(), token))
}

/// True when the comma-separated list `value` holds `token` (case-insensitive).
pub fn value_lists(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Removes hop-by-hop headers, including every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them, and a backend's response usually carries only
    // `Connection: keep-alive`, which then costs one removal.
    let found = present(headers, &HOP_BY_HOP.each_ref().map(HeaderName::as_str));
    if found == 0 {
        return;
    }
    // `Connection` is HOP_BY_HOP[0]. The names it lists that are not hop-by-hop already
    // (`close` and `keep-alive` are the usual tokens) are parsed and removed too.
    if found & 1 != 0 {
        let named: SmallVec<[HeaderName; 2]> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter(|v| {
                !v.as_bytes().eq_ignore_ascii_case(b"keep-alive")
                    && !v.as_bytes().eq_ignore_ascii_case(b"close")
            })
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|token| {
                !token.eq_ignore_ascii_case("close")
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| token.eq_ignore_ascii_case(h.as_str()))
            })
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in &named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if found & (1 << i) != 0 {
            headers.remove(name);
        }
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
    if !trusted_peer {
        let found = present(headers, &claims.map(HeaderName::as_str));
        for (i, name) in claims.into_iter().enumerate() {
            if found & (1 << i) != 0 {
                headers.remove(name);
            }
        }
    }
    // Built on the stack and copied once into the header value; prior hops first.
    let mut xff: SmallVec<[u8; 48]> = SmallVec::new();
    for prior in headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        xff.extend_from_slice(prior.as_bytes());
        xff.extend_from_slice(b", ");
    }
    push_ip(&mut xff, client);
    if let Ok(v) = HeaderValue::from_bytes(&xff) {
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

/// Appends an address as text. IPv4, the common case on every proxied request, is written
/// digit by digit: `Display` through `fmt` was about half of the forwarding headers' cost.
fn push_ip(out: &mut SmallVec<[u8; 48]>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => out.extend_from_slice(v6.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_in_any_place_of_any_field_whatever_its_case() {
        assert!(value_lists(b"keep-alive, Close", "close"));
        assert!(value_lists(b" close ", "close"));
        assert!(!value_lists(b"closed, keep-alive", "close"));
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-a,UPGRADE"));
        assert!(lists_token(&h, &header::CONNECTION, "upgrade"));
        assert!(!lists_token(&h, &header::CONNECTION, "close"));
    }

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

    #[test]
    fn connection_tokens_in_any_case_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Close, Keep-Alive,X-Trace , UPGRADE"),
        );
        h.insert("x-trace", HeaderValue::from_static("1"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().collect::<Vec<_>>(), ["x-kept"]);
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "::1",
            "::ffff:10.0.0.1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = SmallVec::new();
            push_ip(&mut out, ip);
            assert_eq!(std::str::from_utf8(&out).unwrap(), ip.to_string());
        }
    }
}
