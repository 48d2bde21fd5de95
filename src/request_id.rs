//! Request ids: one per request, sent to the backend and back to the client as `X-Request-Id`
//! and logged as `request.id`, so one request can be followed across tether, the backend and
//! the client's own logs.
//!
//! An incoming `X-Request-Id` is kept only from a trusted proxy (the pool's `trusted_proxies`),
//! which has set it for the same reason; from anyone else it is replaced, so a client cannot
//! make its requests look like someone else's in the logs. Generated ids are a per-process
//! random prefix and a counter: unique without a random number per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming id kept; a longer one is replaced (it would bloat every log line).
const MAX_LEN: usize = 128;

static PREFIX: OnceLock<u64> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new id, e.g. `3f9a1c2be07d4a11-2a`: 16 hex digits fixed for this process, then a counter.
pub fn generate() -> HeaderValue {
    let prefix = PREFIX.get_or_init(|| fastrand::u64(..));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{prefix:016x}-{n:x}")).expect("hex digits are a valid header")
}

/// The id for a request with `headers` from a peer that is (`trusted`) or is not a trusted
/// proxy: the incoming one if trusted and usable (one value, 1 to 128 visible ASCII characters),
/// else a new one.
pub fn for_request(headers: &HeaderMap, trusted: bool) -> HeaderValue {
    if trusted {
        let mut values = headers.get_all(&X_REQUEST_ID).iter();
        if let (Some(v), None) = (values.next(), values.next()) {
            if usable(v) {
                return v.clone();
            }
        }
    }
    generate()
}

fn usable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_LEN && b.iter().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(&X_REQUEST_ID, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn generated_ids_share_a_prefix_and_differ() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        let (pa, _) = a.to_str().unwrap().split_once('-').unwrap();
        let (pb, _) = b.to_str().unwrap().split_once('-').unwrap();
        assert_eq!(pa, pb);
        assert_eq!(pa.len(), 16);
    }

    #[test]
    fn an_incoming_id_is_kept_only_from_a_trusted_peer_and_only_if_usable() {
        assert_eq!(for_request(&headers(&["abc-1"]), true), "abc-1");
        assert_ne!(for_request(&headers(&["abc-1"]), false), "abc-1");
        assert_ne!(for_request(&headers(&["a", "b"]), true), "a");
        assert_ne!(for_request(&headers(&["has space"]), true), "has space");
        let long = "x".repeat(MAX_LEN + 1);
        assert_ne!(for_request(&headers(&[&long]), true), long.as_str());
        assert_ne!(for_request(&headers(&[]), true), "");
    }
}
