//! Fuzz target: the request-head scanner (`client::head_scan::HeadScan`) that poisons a bare
//! LF, and the end of a head carrying both `Content-Length` and `Transfer-Encoding`, before
//! hyper's parser sees the bytes.
//!
//! The first input byte chooses how the rest (bytes from a client) is split into reads: bit 7
//! clear, reads of `(b & 0x3f) + 1` bytes; set, reads of varying sizes from 1 to
//! `(b & 0x3f) + 1` drawn from a generator seeded with the byte. The input is scanned read
//! whole, read that way, and one byte at a time, each time as `TimedIo` does: `scan` on every
//! read from `HeadScan::started()`.
//!
//! Checks: `scan` never panics; the scanned bytes are the same for every split; the only change
//! is at most one `\n` turned into NUL, and `scan` returned true (once) exactly when it made
//! one; on an input left untouched, `bytes_after()` and `fully_consumed()` are the same for every
//! split, and the head it saw ends in an LF.
//!
//! And against hyper's parser (httparse with its default request config, which hyper's server
//! uses): an untouched input that httparse reads as a complete head must have no bare LF in
//! that head and not both `Content-Length` and `Transfer-Encoding` fields, and the scanner's
//! head must end where httparse's does; a poisoned input (with the `\r\n\r\n` that `TimedIo`
//! appends) must be refused by httparse, not read as a complete head ending before the NUL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether::client::head_scan::HeadScan;

/// Most header fields read by the comparison parse (hyper's limit).
const MAX_HEADERS: usize = 100;

#[derive(Debug, PartialEq, Eq)]
struct Scanned {
    bytes: Vec<u8>,
    poisoned: bool,
    after: u64,
    consumed: bool,
}

fn scan(input: &[u8], mut reads: impl FnMut() -> usize) -> Scanned {
    let mut scan = HeadScan::started();
    let mut bytes = input.to_vec();
    let mut poisoned = false;
    let mut rest = &mut bytes[..];
    while !rest.is_empty() {
        let n = reads().clamp(1, rest.len());
        let (read, more) = rest.split_at_mut(n);
        if scan.scan(read) {
            assert!(!poisoned, "a second byte poisoned");
            poisoned = true;
        }
        rest = more;
    }
    Scanned {
        bytes,
        poisoned,
        after: scan.bytes_after(),
        consumed: scan.fully_consumed(),
    }
}

/// Compares an input with how it was scanned: only a single `\n` may become NUL.
fn check_changes(input: &[u8], s: &Scanned) {
    let changed: Vec<usize> = (0..input.len())
        .filter(|&i| input[i] != s.bytes[i])
        .collect();
    assert!(changed.len() <= 1, "bytes changed at {changed:?}");
    if let Some(&i) = changed.first() {
        assert_eq!(
            (input[i], s.bytes[i]),
            (b'\n', 0),
            "byte {i} changed otherwise"
        );
    }
    assert_eq!(
        s.poisoned,
        !changed.is_empty(),
        "scan's answer vs the bytes"
    );
}

/// httparse's reading of a request head at the front of `bytes`: its length and whether it has
/// `Content-Length` and `Transfer-Encoding` fields; `None` unless complete.
fn httparse_head(bytes: &[u8]) -> Option<(usize, bool, bool)> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut raw);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => {
            let has = |name: &str| {
                req.headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case(name))
            };
            Some((len, has("content-length"), has("transfer-encoding")))
        }
        _ => None,
    }
}

fn check_against_httparse(input: &[u8], s: &Scanned) {
    if s.poisoned {
        let mut fed = s.bytes.clone();
        fed.extend_from_slice(b"\r\n\r\n");
        let at = s.bytes.iter().position(|&b| b == 0).unwrap_or(0);
        // Either a head ending before the NUL or one that lets the NUL through defeats it.
        if let Some((len, ..)) = httparse_head(&fed) {
            panic!("poisoned at {at}, but httparse reads a complete {len}-byte head");
        }
        return;
    }
    let Some((len, cl, te)) = httparse_head(input) else {
        return;
    };
    let head = &input[..len];
    for i in 0..len {
        assert!(
            head[i] != b'\n' || (i > 0 && head[i - 1] == b'\r'),
            "bare LF at {i} in a {len}-byte head hyper would accept, not poisoned"
        );
    }
    assert!(
        !(cl && te),
        "Content-Length and Transfer-Encoding in a {len}-byte head hyper would accept, not poisoned"
    );
    assert_eq!(
        s.after,
        (input.len() - len) as u64,
        "the scanner's head and httparse's {len}-byte head end apart"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, input)) = data.split_first() else {
        return;
    };
    let whole = scan(input, || input.len());
    check_changes(input, &whole);
    if !whole.poisoned {
        assert!(whole.after <= input.len() as u64);
        if whole.after > 0 {
            let end = input.len() - whole.after as usize;
            assert_eq!(input[end - 1], b'\n', "a head that does not end in LF");
        }
    }

    let most = usize::from(how & 0x3f) + 1;
    let split = if how & 0x80 == 0 {
        scan(input, || most)
    } else {
        let mut state = u32::from(how) | 0x100;
        scan(input, move || {
            // xorshift32: any fixed sequence of sizes will do.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize % most + 1
        })
    };
    let bytewise = scan(input, || 1);
    for (what, other) in [
        ("reads from the first byte", &split),
        ("one byte at a time", &bytewise),
    ] {
        assert_eq!(other.bytes, whole.bytes, "{what}: scanned bytes differ");
        assert_eq!(other.poisoned, whole.poisoned, "{what}");
        if !whole.poisoned {
            assert_eq!(
                (other.after, other.consumed),
                (whole.after, whole.consumed),
                "{what}: bytes after the head differ"
            );
        }
    }

    check_against_httparse(input, &whole);
});
