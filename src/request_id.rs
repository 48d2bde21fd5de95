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

static PREFIX: OnceLock<[u8; 16]> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A new id, e.g. `3f9a1c2be07d4a11-2a`: 16 hex digits fixed for this process, then a counter.
/// Written digit by digit: `format!` cost more than the rest of the id's work on every request.
pub fn generate() -> HeaderValue {
    let prefix = PREFIX.get_or_init(|| {
        let random = fastrand::u64(..);
        std::array::from_fn(|i| HEX[((random >> (60 - 4 * i)) & 0xf) as usize])
    });
    format_id(prefix, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// `PREFIX-n` with `n` in lower-case hex.
fn format_id(prefix: &[u8; 16], n: u64) -> HeaderValue {
    let mut id = [0u8; 33];
    id[..16].copy_from_slice(prefix);
    id[16] = b'-';
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for i in 0..digits {
        id[17 + i] = HEX[((n >> (4 * (digits - 1 - i))) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id[..17 + digits]).expect("hex digits are a valid header")
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

    #[test]
    fn generated_ids_are_the_prefix_then_the_counter_in_hex() {
        let first = generate();
        let second = generate();
        let (p1, n1) = first.to_str().unwrap().split_once('-').unwrap();
        let (p2, n2) = second.to_str().unwrap().split_once('-').unwrap();
        assert_eq!(p1.len(), 16);
        assert_eq!(p1, p2, "one prefix per process");
        let (a, b) = (
            u64::from_str_radix(n1, 16).unwrap(),
            u64::from_str_radix(n2, 16).unwrap(),
        );
        assert!(b > a, "{n1} then {n2}");
        for n in [0u64, 1, 0xf, 0x10, 0xabc, u64::MAX] {
            COUNTER.store(n, Ordering::Relaxed);
            let id = generate();
            assert_eq!(
                id.to_str().unwrap().split_once('-').unwrap().1,
                format!("{n:x}")
            );
        }
    }
}
