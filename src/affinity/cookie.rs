//! The sealed affinity cookie: which backend a client is pinned to and since when, sealed
//! so that the client can neither read nor choose it.
//!
//! A sealed value is 33 bytes, base64url without padding (44 characters, all cookie-safe):
//!
//! ```text
//! version (2) | issued, unix seconds, big-endian (8) | backend tag (8) | MAC (16)
//! tag = HMAC-SHA256(k, "tether/affinity/backend\0" || backend id)[..8]
//! MAC = HMAC-SHA256(k, "tether/affinity/cookie\0" || pool name || "\0" || version || issued || tag)[..16]
//! ```
//!
//! The MAC binds the pool: a cookie sealed for pool `a` fails authentication in pool `b` even
//! when both share a key and a backend id (version 1 did not bind it; its cookies are refused
//! as not tether's and their clients re-pinned).
//!
//! Why a keyed tag and not encryption: the tag is a PRF of the backend id, so without the key it
//! says nothing about the id or the address, and the MAC (128 bits, compared in constant time by
//! `hmac`) makes it impossible to forge or to swap in another backend's tag. It needs no nonce,
//! no cipher crate, and stays short. The pool maps a tag back to its backend in O(1) with one
//! table per key, built once per snapshot from [`CookieSealer::tag`]. The price is
//! linkability: every client pinned to the same backend carries the same tag, so two clients can
//! tell they share a backend. That is not a secret tether keeps; the id and address are.
//!
//! Keys rotate: the first key seals, every key opens, and [`Opened::key_index`] says which one
//! did so the caller can re-issue cookies opened by an old key. Both derived keys and the tags
//! depend only on the configured strings, so every tether instance and every restart with the
//! same config agrees on every cookie.
//!
//! For the `spread` (anti-affinity) mode no extra field is needed: the pinned `backend` is the
//! one the client used last, which is the one to avoid next.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// A backend as a sealed cookie names it: a keyed, truncated hash of its configured id.
pub type BackendTag = [u8; TAG_LEN];

/// Bytes in a [`BackendTag`].
pub const TAG_LEN: usize = 8;

/// Shortest accepted configured key, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// How far in the future an issue time may lie before the pin is refused: instances' clocks
/// differ a little, and a pin from a slightly fast peer must still work.
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// Length of every sealed value, in characters.
pub const SEALED_LEN: usize = 44;

const VERSION: u8 = 2;
const MAC_LEN: usize = 16;
const RAW_LEN: usize = 1 + 8 + TAG_LEN + MAC_LEN;
const TAG_DOMAIN: &[u8] = b"tether/affinity/backend\0";
const MAC_DOMAIN: &[u8] = b"tether/affinity/cookie\0";
const KEY_DOMAIN: &[u8] = b"tether/affinity/key/v1\0";
const DERIVED_DOMAIN: &[u8] = b"tether/affinity/derived-key/v1\0";

/// What a cookie pins: a backend and the time the pin was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin {
    /// The pinned backend, as [`CookieSealer::tag`] names it under the sealing key.
    pub backend: BackendTag,
    /// When the pin was issued, in unix seconds.
    pub issued: u64,
}

/// A cookie that opened: its pin and the index of the key that opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The pin; its tag is under key `key_index`.
    pub pin: Pin,
    /// Which configured key opened it; 0 is the current (sealing) key.
    pub key_index: usize,
}

impl Opened {
    /// True when the pin is older than `max_age` seconds, or issued further in the future than
    /// [`MAX_CLOCK_SKEW_SECS`] (only a peer with a broken clock or a leaked key can do that).
    pub fn is_expired(&self, now: u64, max_age: Option<u64>) -> bool {
        if self.pin.issued > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return true;
        }
        max_age.is_some_and(|max| now.saturating_sub(self.pin.issued) >= max)
    }

    /// True when an old key opened it: the caller should re-issue it under the current key.
    pub fn rotated(&self) -> bool {
        self.key_index != 0
    }
}

/// Why a cookie value did not open. Neither is an error for the client: it is re-pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not a sealed value at all: wrong length, not base64url, or an unknown version.
    #[error("not a tether affinity cookie")]
    Garbage,
    /// Well-formed, but no configured key authenticates it.
    #[error("affinity cookie fails authentication")]
    Tampered,
}

/// Why a list of configured keys cannot seal cookies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The list is empty; use [`CookieSealer::derived`] instead.
    #[error("no cookie key configured")]
    Empty,
    /// Key `index` is too short to be a secret.
    #[error("key {index} is {len} bytes long; at least {MIN_KEY_LEN} are needed")]
    TooShort {
        /// Position of the key in the configured list.
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
}

/// Seals and opens affinity cookies with a list of keys: the first seals, all open.
#[derive(Clone)]
pub struct CookieSealer {
    // Keyed HMAC states, cloned per use: cheaper than re-keying, and the raw keys need not be
    // kept around.
    macs: Vec<Hmac<Sha256>>,
    /// The pool name and a NUL, authenticated with every cookie.
    scope: Box<[u8]>,
}

impl std::fmt::Debug for CookieSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, even derived.
        f.debug_struct("CookieSealer")
            .field("keys", &self.macs.len())
            .finish()
    }
}

impl CookieSealer {
    /// A sealer for the configured secrets, in order (the first seals). Each secret must be at
    /// least [`MIN_KEY_LEN`] bytes; it is stretched to a 32-byte key with domain-separated
    /// SHA-256, so any length works and the same string gives the same key everywhere.
    /// Cookies are bound to `pool`: another pool's sealer refuses them.
    pub fn new(pool: &str, keys: &[String]) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        let macs = keys
            .iter()
            .enumerate()
            .map(|(index, secret)| {
                if secret.len() < MIN_KEY_LEN {
                    return Err(KeyError::TooShort {
                        index,
                        len: secret.len(),
                    });
                }
                Ok(keyed(&derive(KEY_DOMAIN, secret.as_bytes())))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            macs,
            scope: scope(pool),
        })
    }

    /// A sealer whose single key is derived from `seed` (the pool name) when the config has no
    /// key. Cookies stay opaque and work across instances sharing the config, but anyone who
    /// knows the seed (it is in the config, and guessable) can forge them: `tether check` warns.
    pub fn derived(seed: &str) -> Self {
        Self {
            macs: vec![keyed(&derive(DERIVED_DOMAIN, seed.as_bytes()))],
            scope: scope(seed),
        }
    }

    /// How many keys open cookies (tags must be tabled for each).
    pub fn key_count(&self) -> usize {
        self.macs.len()
    }

    /// The tag of `backend_id` under key `key_index`: build one tag -> backend table per key.
    /// Panics if `key_index >= key_count()`, which is a caller bug.
    pub fn tag(&self, key_index: usize, backend_id: &str) -> BackendTag {
        let mut mac = self.macs[key_index].clone();
        mac.update(TAG_DOMAIN);
        mac.update(backend_id.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// A pin of `backend_id` issued at `issued`, tagged under the sealing key.
    pub fn pin(&self, backend_id: &str, issued: u64) -> Pin {
        Pin {
            backend: self.tag(0, backend_id),
            issued,
        }
    }

    /// Seals `pin` (whose tag must be under key 0) into a cookie value of [`SEALED_LEN`]
    /// base64url characters.
    pub fn seal(&self, pin: &Pin) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[0] = VERSION;
        raw[1..9].copy_from_slice(&pin.issued.to_be_bytes());
        raw[9..9 + TAG_LEN].copy_from_slice(&pin.backend);
        let mac = self.authenticator(0, &raw[..RAW_LEN - MAC_LEN]).finalize();
        raw[RAW_LEN - MAC_LEN..].copy_from_slice(&mac.into_bytes()[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Opens a cookie value with each key in turn and says which one opened it.
    pub fn open(&self, value: &str) -> Result<Opened, OpenError> {
        // The length check first: a huge value costs nothing to refuse.
        if value.len() != SEALED_LEN {
            return Err(OpenError::Garbage);
        }
        let mut raw = [0u8; RAW_LEN];
        match URL_SAFE_NO_PAD.decode_slice(value, &mut raw) {
            Ok(RAW_LEN) => {}
            _ => return Err(OpenError::Garbage),
        }
        if raw[0] != VERSION {
            return Err(OpenError::Garbage);
        }
        let (body, mac) = raw.split_at(RAW_LEN - MAC_LEN);
        let key_index = (0..self.macs.len())
            .find(|&i| {
                self.authenticator(i, body)
                    .verify_truncated_left(mac)
                    .is_ok()
            })
            .ok_or(OpenError::Tampered)?;
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&body[1..9]);
        let mut backend = [0u8; TAG_LEN];
        backend.copy_from_slice(&body[9..]);
        Ok(Opened {
            pin: Pin {
                backend,
                issued: u64::from_be_bytes(issued),
            },
            key_index,
        })
    }

    fn authenticator(&self, key_index: usize, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.macs[key_index].clone();
        mac.update(MAC_DOMAIN);
        mac.update(&self.scope);
        mac.update(body);
        mac
    }
}

/// What the MAC binds besides the cookie: the pool name, NUL-terminated.
fn scope(pool: &str) -> Box<[u8]> {
    [pool.as_bytes(), b"\0"].concat().into_boxed_slice()
}

/// SHA-256 of a domain label and a secret: distinct labels keep configured and derived keys
/// from ever coinciding.
fn derive(domain: &[u8], secret: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(domain)
        .chain_update(secret)
        .finalize()
        .into()
}

fn keyed(key: &[u8; 32]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "app-backend-7";

    fn sealer(keys: &[&str]) -> CookieSealer {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        CookieSealer::new("app", &keys).unwrap()
    }

    fn sealed(s: &CookieSealer) -> String {
        s.seal(&s.pin(ID, 1_700_000_000))
    }

    #[test]
    fn round_trip() {
        let s = sealer(&["0123456789abcdef-current"]);
        let value = sealed(&s);
        assert_eq!(value.len(), SEALED_LEN);
        assert!(value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let opened = s.open(&value).unwrap();
        assert_eq!(opened.pin, s.pin(ID, 1_700_000_000));
        assert_eq!(opened.pin.backend, s.tag(0, ID));
        assert_eq!(opened.key_index, 0);
        assert!(!opened.rotated());
        assert_ne!(s.tag(0, ID), s.tag(0, "app-backend-8"));
    }

    #[test]
    fn every_bit_flip_and_truncation_is_rejected() {
        let s = sealer(&["0123456789abcdef-current"]);
        let value = sealed(&s);
        for i in 0..value.len() {
            for bit in 0..8 {
                let mut bytes = value.clone().into_bytes();
                bytes[i] ^= 1 << bit;
                if let Ok(flipped) = String::from_utf8(bytes) {
                    assert!(s.open(&flipped).is_err(), "char {i} bit {bit}: {flipped}");
                }
            }
        }
        // The same on the decoded bytes, so flips that stay inside the alphabet are all covered.
        let raw = URL_SAFE_NO_PAD.decode(&value).unwrap();
        for i in 0..raw.len() * 8 {
            let mut flipped = raw.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            let err = s.open(&URL_SAFE_NO_PAD.encode(&flipped)).unwrap_err();
            let expected = if i < 8 {
                OpenError::Garbage // the version byte
            } else {
                OpenError::Tampered
            };
            assert_eq!(err, expected, "raw bit {i}");
        }
        for len in 0..value.len() {
            assert_eq!(s.open(&value[..len]), Err(OpenError::Garbage), "len {len}");
        }
        assert_eq!(s.open(&format!("{value}A")), Err(OpenError::Garbage));
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        let s = sealer(&["0123456789abcdef-current"]);
        let huge = "A".repeat(1 << 20);
        let unicode = "é".repeat(SEALED_LEN / 2);
        let padded = format!("{}=", &sealed(&s)[..SEALED_LEN - 1]);
        let std_alphabet = sealed(&s).replace('-', "+").replace('_', "/");
        for value in [
            "",
            "not base64 at all!",
            "////////////////////////////////////////////",
            "============================================",
            "                                            ",
            &huge,
            &unicode,
            &padded,
            &"A".repeat(SEALED_LEN),
        ] {
            assert!(s.open(value).is_err(), "{value:.60}");
        }
        if std_alphabet != sealed(&s) {
            assert_eq!(s.open(&std_alphabet), Err(OpenError::Garbage));
        }
        let mut wrong_version = URL_SAFE_NO_PAD.decode(sealed(&s)).unwrap();
        // Version 1 (no pool in the MAC) and any other.
        wrong_version[0] = 1;
        let wrong_version = URL_SAFE_NO_PAD.encode(wrong_version);
        assert_eq!(s.open(&wrong_version), Err(OpenError::Garbage));
    }

    #[test]
    fn rotation_opens_old_cookies_and_reports_the_key() {
        let old = sealer(&["old-key-0123456789"]);
        let rotated = sealer(&["new-key-0123456789", "old-key-0123456789"]);
        let opened = rotated.open(&sealed(&old)).unwrap();
        assert_eq!(opened.key_index, 1);
        assert!(opened.rotated());
        // The tag is under the key that opened it, so the pool looks it up in that key's table.
        assert_eq!(opened.pin.backend, rotated.tag(1, ID));
        assert_ne!(opened.pin.backend, rotated.tag(0, ID));
        assert_eq!(rotated.open(&sealed(&rotated)).unwrap().key_index, 0);
        assert_eq!(rotated.key_count(), 2);
    }

    #[test]
    fn unknown_key_is_rejected() {
        let stranger = sealer(&["someone-elses-key-0123"]);
        let s = sealer(&["new-key-0123456789", "old-key-0123456789"]);
        assert_eq!(s.open(&sealed(&stranger)), Err(OpenError::Tampered));
        assert_eq!(
            s.open(&sealed(&CookieSealer::derived("app"))),
            Err(OpenError::Tampered)
        );
    }

    #[test]
    fn a_cookie_opens_only_in_the_pool_it_was_sealed_for() {
        let keys = ["shared-key-0123456789".to_string()];
        let a = CookieSealer::new("a", &keys).unwrap();
        let b = CookieSealer::new("b", &keys).unwrap();
        // Same key, same backend id: the tags agree, the seal does not.
        assert_eq!(a.tag(0, ID), b.tag(0, ID));
        assert!(a.open(&sealed(&a)).is_ok());
        assert_eq!(b.open(&sealed(&a)), Err(OpenError::Tampered));
        // A name that only extends the other is another pool too.
        let ab = CookieSealer::new("ab", &keys).unwrap();
        assert_eq!(ab.open(&sealed(&a)), Err(OpenError::Tampered));
    }

    #[test]
    fn bad_key_lists_are_refused() {
        assert_eq!(CookieSealer::new("app", &[]).unwrap_err(), KeyError::Empty);
        let keys = ["0123456789abcdef".to_string(), "short".to_string()];
        assert_eq!(
            CookieSealer::new("app", &keys).unwrap_err(),
            KeyError::TooShort { index: 1, len: 5 }
        );
    }

    #[test]
    fn expiry() {
        let s = sealer(&["0123456789abcdef-current"]);
        let opened = s.open(&sealed(&s)).unwrap();
        let t = 1_700_000_000;
        assert!(!opened.is_expired(t, None));
        assert!(!opened.is_expired(t + 1_000_000, None));
        assert!(!opened.is_expired(t + 59, Some(60)));
        assert!(opened.is_expired(t + 60, Some(60)));
        // Slightly fast peers are tolerated; far-future pins are not.
        assert!(!opened.is_expired(t - MAX_CLOCK_SKEW_SECS, Some(60)));
        assert!(opened.is_expired(t - MAX_CLOCK_SKEW_SECS - 1, None));
        let far = s.open(&s.seal(&s.pin(ID, u64::MAX))).unwrap();
        assert!(far.is_expired(t, None));
        assert!(!far.is_expired(u64::MAX, Some(60)));
    }

    #[test]
    fn derived_keys_are_deterministic_per_seed() {
        let a = CookieSealer::derived("app");
        let b = CookieSealer::derived("app");
        let other = CookieSealer::derived("api");
        assert_eq!(a.tag(0, ID), b.tag(0, ID));
        assert_eq!(sealed(&a), sealed(&b));
        assert_eq!(b.open(&sealed(&a)).unwrap().key_index, 0);
        assert_ne!(a.tag(0, ID), other.tag(0, ID));
        assert_eq!(other.open(&sealed(&a)), Err(OpenError::Tampered));
        // A configured key equal to the seed is not the derived key.
        assert_ne!(sealer(&["app-0123456789abcdef"]).tag(0, ID), a.tag(0, ID));
        // Pinned (and checked against Python's hmac from the layout in the module doc) so that a
        // change to the derivation, which would void every live cookie on upgrade, is caught.
        assert_eq!(sealed(&a), "AgAAAABlU_EA-chOHviS4YFX10b64jIB-BgBlCl21lmE");
    }

    #[test]
    fn sealed_value_hides_the_backend_id() {
        let id = "backend-id-with-a-long-name";
        for s in [
            sealer(&["0123456789abcdef-current"]),
            CookieSealer::derived("app"),
        ] {
            for issued in [0, 1_700_000_000, u64::MAX] {
                let value = s.seal(&s.pin(id, issued));
                for start in 0..=id.len() - 4 {
                    let piece = &id[start..start + 4];
                    assert!(!value.contains(piece), "{value} contains {piece}");
                }
            }
        }
        assert!(!format!("{:?}", CookieSealer::derived("app")).contains("app"));
    }
}
