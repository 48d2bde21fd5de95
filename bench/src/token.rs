//! The `token` session store: the cart travels in a cookie sealed with HMAC-SHA256, so any
//! backend holding the same secret can verify it and none has to remember anything.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::util::{hex, unhex};

type HmacSha256 = Hmac<Sha256>;

/// A session carried by the client: its id and the items in its cart.
#[derive(Debug, Clone, PartialEq)]
pub struct Cart {
    /// Session id, issued at login.
    pub sid: String,
    /// Items added so far, in order.
    pub items: Vec<String>,
    /// Unix time in ms after which the token is refused (0: never).
    pub exp_ms: u64,
}

/// Seals `cart` as `v1.<hex payload>.<hex mac>`.
pub fn seal(secret: &[u8], cart: &Cart) -> String {
    let mut payload = format!("{}|{}", cart.sid, cart.items.join(","));
    if cart.exp_ms > 0 {
        payload.push_str(&format!("|{}", cart.exp_ms));
    }
    let payload = hex(payload.as_bytes());
    format!("v1.{payload}.{}", hex(&mac(secret, &payload)))
}

/// Opens a sealed cart; `None` when the seal does not verify or the payload is malformed.
pub fn open(secret: &[u8], token: &str) -> Option<Cart> {
    let rest = token.strip_prefix("v1.")?;
    let (payload, sig) = rest.split_once('.')?;
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(payload.as_bytes());
    m.verify_slice(&unhex(sig)?).ok()?;
    let text = String::from_utf8(unhex(payload)?).ok()?;
    let (sid, rest) = text.split_once('|')?;
    let (items, exp_ms) = match rest.split_once('|') {
        Some((items, exp)) => (items, exp.parse().ok()?),
        None => (rest, 0),
    };
    let items = if items.is_empty() {
        Vec::new()
    } else {
        items.split(',').map(str::to_string).collect()
    };
    Some(Cart {
        sid: sid.to_string(),
        items,
        exp_ms,
    })
}

fn mac(secret: &[u8], payload: &str) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(payload.as_bytes());
    m.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cart() -> Cart {
        Cart {
            sid: "s1".into(),
            items: vec!["a".into(), "b".into()],
            exp_ms: 0,
        }
    }

    #[test]
    fn seal_then_open() {
        let t = seal(b"k", &cart());
        assert_eq!(open(b"k", &t), Some(cart()));
        let empty = Cart {
            sid: "s2".into(),
            items: vec![],
            exp_ms: 0,
        };
        assert_eq!(open(b"k", &seal(b"k", &empty)), Some(empty));
        let expiring = Cart {
            exp_ms: 1_700_000_000_123,
            ..cart()
        };
        assert_eq!(open(b"k", &seal(b"k", &expiring)), Some(expiring));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let t = seal(b"k", &cart());
        assert_eq!(open(b"other", &t), None);
        let forged = format!("v1.{}.{}", hex(b"s1|a,b,c"), t.rsplit('.').next().unwrap());
        assert_eq!(open(b"k", &forged), None);
        assert_eq!(open(b"k", "garbage"), None);
    }
}
