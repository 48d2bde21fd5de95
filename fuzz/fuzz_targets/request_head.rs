//! Fuzz target: the request-head parser of tether's own HTTP/1 path
//! (`client::request_head::parse`), which decides which requests `h1::session` serves itself
//! and which go to hyper's server untouched.
//!
//! The first input byte chooses how the rest (bytes from a client) is split into reads, as in
//! `request_head_scan`: bit 7 clear, reads of `(b & 0x3f) + 1` bytes; set, reads of varying
//! sizes from 1 to `(b & 0x3f) + 1` drawn from a generator seeded with the byte. The input is
//! parsed whole (in a buffer exactly full, with spare capacity, behind bytes split off its
//! front, and in front of bytes split off behind it), then fed as `h1::session` feeds it: into
//! one growing buffer, `parse` after every read until it is not `Partial`, in the reads chosen
//! by the first byte and (up to 512 bytes) one byte at a time.
//!
//! Checks: `parse` never panics; `Partial`, `Other` and `BareLf` leave the buffer byte for byte
//! as it was, and `Simple` takes exactly its head off the front, the bytes after it left as they
//! were; the decision (the variant, and for `Simple` the method, target, fields, `close` and the
//! length taken) is the same for every layout and every split.
//!
//! Against httparse as hyper's server calls it (default request config, 100 fields): the
//! decision is the one the module's rules give from httparse's reading: its `Partial` is
//! `Partial`, its error is `Other`; a complete head that is not HTTP/1.1, or is CONNECT, is
//! `Other`; one with an LF not after a CR (past the empty lines before the request line) is
//! `BareLf`; a `Content-Length`, `Transfer-Encoding`, `Upgrade` or `Expect` field, a
//! `Connection` token other than `keep-alive`/`close`, or a target or field `http` refuses is
//! `Other`; anything else is `Simple` with httparse's length, method, target and fields, and
//! `close` exactly when a `Connection` field lists `close`.
#![no_main]

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};
use libfuzzer_sys::fuzz_target;
use tether::client::request_head::{self, Parsed, MAX_HEADERS};

/// What a parse decided, comparable across runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Partial,
    Other,
    BareLf,
    Simple {
        method: String,
        uri: String,
        /// In `HeaderMap` order: names by first appearance, each name's values in order.
        fields: Vec<(String, Vec<u8>)>,
        close: bool,
        taken: usize,
    },
}

fn fields(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    map.iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// `request_head::parse`, checking what it did to the buffer.
fn parse(buf: &mut BytesMut) -> Decision {
    let before = buf.to_vec();
    let parsed = request_head::parse(buf);
    if !matches!(parsed, Parsed::Simple { .. }) {
        assert_eq!(&buf[..], &before[..], "{parsed:?} changed the buffer");
    }
    match parsed {
        Parsed::Partial => Decision::Partial,
        Parsed::Other => Decision::Other,
        Parsed::BareLf => Decision::BareLf,
        Parsed::Simple { req, close } => {
            let taken = before.len() - buf.len();
            assert!(taken > 0, "a Simple head of no bytes");
            assert_eq!(
                &buf[..],
                &before[taken..],
                "the bytes after a {taken}-byte head"
            );
            assert_eq!(req.version(), Version::HTTP_11);
            Decision::Simple {
                method: req.method().as_str().to_owned(),
                uri: req.uri().to_string(),
                fields: fields(req.headers()),
                close,
                taken,
            }
        }
    }
}

/// The decision from the module's rules, worked out from httparse's reading of `input`.
fn expected(input: &[u8]) -> Decision {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut raw);
    let taken = match req.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Decision::Partial,
        Err(_) => return Decision::Other,
    };
    let method = req.method.expect("a complete head has a method");
    if req.version != Some(1) || method == "CONNECT" {
        return Decision::Other;
    }
    let mut head = &input[..taken];
    while let Some(rest) = head
        .strip_prefix(b"\r\n")
        .or_else(|| head.strip_prefix(b"\n"))
    {
        head = rest;
    }
    if head.first() == Some(&b'\n') || head.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') {
        return Decision::BareLf;
    }
    let mut close = false;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if ["content-length", "transfer-encoding", "upgrade", "expect"].contains(&&*name) {
            return Decision::Other;
        }
        if name == "connection" {
            for token in String::from_utf8_lossy(h.value).split(',') {
                match &*token.trim_matches([' ', '\t']).to_ascii_lowercase() {
                    "close" => close = true,
                    "keep-alive" => {}
                    _ => return Decision::Other,
                }
            }
        }
    }
    let (Ok(m), Ok(uri)) = (
        Method::from_bytes(method.as_bytes()),
        Uri::try_from(req.path.expect("a complete head has a target")),
    ) else {
        return Decision::Other;
    };
    let mut map = HeaderMap::new();
    for h in req.headers.iter() {
        match (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) {
            (Ok(n), Ok(v)) => _ = map.append(n, v),
            _ => return Decision::Other,
        }
    }
    Decision::Simple {
        method: m.as_str().to_owned(),
        uri: uri.to_string(),
        fields: fields(&map),
        close,
        taken,
    }
}

/// Feeds `input` into one growing buffer in reads of `reads()` bytes, parsing after each, as
/// `h1::session` does; the first decision that is not `Partial` (or `Partial` at the end).
fn feed(input: &[u8], mut reads: impl FnMut() -> usize) -> Decision {
    let mut buf = BytesMut::new();
    let mut fed = 0;
    loop {
        let d = parse(&mut buf);
        if d != Decision::Partial || fed == input.len() {
            return d;
        }
        let n = reads().clamp(1, input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, input)) = data.split_first() else {
        return;
    };
    let mut exact = BytesMut::with_capacity(input.len());
    exact.extend_from_slice(input);
    let whole = parse(&mut exact);
    let mut spare = BytesMut::with_capacity(input.len() + 4096);
    spare.extend_from_slice(input);
    let mut behind = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
    behind.extend_from_slice(input);
    let behind = behind.split_off(18);
    let mut front = BytesMut::from(input);
    front.extend_from_slice(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    let front = front.split_to(input.len());
    for (what, mut buf) in [("spare", spare), ("behind", behind), ("front", front)] {
        assert_eq!(
            parse(&mut buf),
            whole,
            "{what}: the layout changed the decision"
        );
    }

    assert_eq!(
        whole,
        expected(input),
        "the decision against httparse and the rules"
    );

    let most = usize::from(how & 0x3f) + 1;
    let split = if how & 0x80 == 0 {
        feed(input, || most)
    } else {
        let mut state = u32::from(how) | 0x100;
        feed(input, move || {
            // xorshift32: any fixed sequence of sizes will do.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize % most + 1
        })
    };
    assert_eq!(split, whole, "reads from the first byte");
    if input.len() <= 512 {
        assert_eq!(feed(input, || 1), whole, "one byte at a time");
    }
});
