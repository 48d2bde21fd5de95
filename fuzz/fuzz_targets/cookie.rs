//! Fuzz target: the affinity cookie opener on arbitrary strings.
//!
//! Checks: `open` never panics; any value that opens seals back to exactly the same string
//! (so there is one accepted spelling per pin); and, from the other side, a pin built from
//! the input bytes survives `seal` then `open` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether::affinity::cookie::{CookieSealer, Pin, TAG_LEN};

fuzz_target!(|data: &[u8]| {
    let sealer = CookieSealer::derived("app");
    if let Ok(value) = std::str::from_utf8(data) {
        if let Ok(opened) = sealer.open(value) {
            assert_eq!(
                opened.key_index, 0,
                "a one-key sealer opened with key {opened:?}"
            );
            assert_eq!(
                sealer.seal(&opened.pin),
                value,
                "an opened cookie does not re-seal to itself"
            );
        }
    }
    if data.len() >= 8 + TAG_LEN {
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&data[..8]);
        let mut backend = [0u8; TAG_LEN];
        backend.copy_from_slice(&data[8..8 + TAG_LEN]);
        let pin = Pin {
            backend,
            issued: u64::from_be_bytes(issued),
        };
        let sealed = sealer.seal(&pin);
        let opened = sealer.open(&sealed).expect("a freshly sealed pin opens");
        assert_eq!(opened.pin, pin);
        assert_eq!(opened.key_index, 0);
    }
});
