//! Fuzz target: a backend's response head (`upstream::h1::head::parse_head`) and the body
//! framing decided from it (`framing`), on arbitrary bytes as a backend might send them.
//!
//! Checks, for each head at the front of the input (and, as `read_response` does, for the head
//! after each complete 1xx interim response, up to a few):
//! - `parse_head` never panics; `None` leaves the buffer untouched, `Some` takes exactly the
//!   head off its front and leaves the rest.
//! - Incremental reads agree with the whole: `read_response` parses the buffer again after
//!   every read, so every prefix shorter than a complete head must be `None` (not an error,
//!   not another head), every longer prefix must give the same head, and no prefix of an
//!   input that is incomplete or refused may parse as complete.
//! - The outcome (complete and its length, incomplete, or the error) is the same whether the
//!   buffer is exactly full, has spare capacity, or starts after bytes already split off.
//! - `framing` never panics, for the head's own status and version with and without a HEAD
//!   request, and for 200 in HTTP/1.1 and 1.0. It never returns `Length` with a
//!   `Transfer-Encoding` field left in the map; `Transfer-Encoding` always removes
//!   `Content-Length` (adding `Connection: close` when it did) and gives `Chunked` or
//!   `UntilClose`; 1xx/204/304/HEAD give `Empty` and leave the map alone; `Length(n)` only when
//!   every `Content-Length` entry is `n`.
//!
//! tether's `Head` keeps its fields private, so the status, version and fields given to
//! `framing` are rebuilt here with httparse exactly as `parse_head` reads them (and the two
//! parses must agree on where the head ends). `Framing` is not nameable outside tether (its
//! module is private), so it is matched by its `Debug` text.
#![no_main]

use bytes::{Buf, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};
use libfuzzer_sys::fuzz_target;
use tether::upstream::h1::head::{framing, parse_head};
use tether::upstream::limits::MAX_HEADERS;

/// Heads parsed one after another while they are 1xx, as `read_response` skips them.
const MAX_HEADS: usize = 8;

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A head of this many bytes was taken off the front.
    Complete(usize),
    Partial,
    Failed(String),
}

/// `parse_head` on `buf`, checking what it leaves in the buffer.
fn parse(mut buf: BytesMut, input: &[u8]) -> Outcome {
    assert_eq!(&buf[..], input);
    match parse_head(&mut buf) {
        Ok(Some(_head)) => {
            let used = input.len() - buf.len();
            assert!(used > 0, "an empty head");
            assert_eq!(&buf[..], &input[used..], "the bytes after the head changed");
            Outcome::Complete(used)
        }
        Ok(None) => {
            assert_eq!(&buf[..], input, "an incomplete head consumed bytes");
            Outcome::Partial
        }
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn exact(input: &[u8]) -> BytesMut {
    BytesMut::from(input)
}

fn spare(input: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(input.len() + 4096);
    buf.extend_from_slice(input);
    buf
}

/// A buffer whose front was already split off, as after a 1xx head.
fn behind(input: &[u8]) -> BytesMut {
    const BEFORE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut buf = BytesMut::with_capacity(BEFORE.len() + input.len());
    buf.extend_from_slice(BEFORE);
    buf.extend_from_slice(input);
    buf.advance(BEFORE.len());
    buf
}

/// The prefix lengths to re-parse: all of them for short inputs, else a spread plus those
/// around the end of the head.
fn prefixes(len: usize, end: Option<usize>) -> Vec<usize> {
    if len <= 256 {
        return (0..len).collect();
    }
    let mut at: Vec<usize> = (0..64).collect();
    at.extend((64..len).step_by(len / 64));
    if let Some(end) = end {
        at.extend(end.saturating_sub(8)..(end + 8).min(len));
    }
    at.retain(|&p| p < len);
    at
}

/// The head at the front of `input` as `parse_head` reads it (httparse, default config), for
/// `framing`; `None` if httparse or a field's validation refuses it or it is incomplete.
fn fields(input: &[u8]) -> Option<(usize, StatusCode, Version, HeaderMap)> {
    let mut raw = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut raw);
    let len = match httparse::ParserConfig::default().parse_response(&mut resp, input) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return None,
    };
    let status = StatusCode::from_u16(resp.code?).ok()?;
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::new();
    for f in resp.headers.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(f.value).ok()?;
        headers.append(name, value);
    }
    Some((len, status, version, headers))
}

fn check_framing(status: StatusCode, version: Version, head_only: bool, headers: &HeaderMap) {
    let mut map = headers.clone();
    let got = framing(status, version, head_only, &mut map);
    let te = headers.contains_key(header::TRANSFER_ENCODING);
    let cl = headers.contains_key(header::CONTENT_LENGTH);
    let empty = head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let what = format!("{status} {version:?} head_only={head_only} {headers:?}");
    let f = match got {
        Ok(f) => format!("{f:?}"),
        Err(e) => {
            assert!(!empty, "{e} for a response without a body: {what}");
            if te {
                assert_eq!(version, Version::HTTP_10, "{e}: {what}");
            } else {
                assert!(cl, "{e} without Content-Length: {what}");
            }
            return;
        }
    };
    assert!(
        !(f.starts_with("Length(") && map.contains_key(header::TRANSFER_ENCODING)),
        "{f} with Transfer-Encoding left in the map: {what} -> {map:?}"
    );
    if empty {
        assert_eq!(f, "Empty", "{what}");
        assert_eq!(&map, headers, "the fields changed: {what}");
        return;
    }
    if te {
        assert!(f == "Chunked" || f == "UntilClose", "{f}: {what}");
        assert_ne!(version, Version::HTTP_10, "{f}: {what}");
        assert!(
            !map.contains_key(header::CONTENT_LENGTH),
            "Content-Length kept beside Transfer-Encoding: {what} -> {map:?}"
        );
        if cl {
            assert!(
                map.get_all(header::CONNECTION).iter().any(|v| v == "close"),
                "Content-Length dropped but the connection kept: {what} -> {map:?}"
            );
        }
        return;
    }
    assert_eq!(&map, headers, "the fields changed: {what}");
    if let Some(n) = f.strip_prefix("Length(").and_then(|f| f.strip_suffix(')')) {
        let n: u64 = n.parse().expect("Length(u64)");
        for v in headers.get_all(header::CONTENT_LENGTH) {
            for part in v.to_str().expect("accepted, so text").split(',') {
                assert_eq!(part.trim().parse::<u64>(), Ok(n), "{f}: {what}");
            }
        }
    } else {
        assert_eq!(f, "UntilClose", "{what}");
        assert!(!cl, "{f} despite Content-Length: {what}");
    }
}

/// All checks on the head at the front of `input`; the rest of the input if it was a 1xx
/// head that `read_response` would skip.
fn check(input: &[u8]) -> Option<&[u8]> {
    let whole = parse(exact(input), input);
    assert_eq!(parse(spare(input), input), whole, "with spare capacity");
    assert_eq!(parse(behind(input), input), whole, "after split-off bytes");

    let end = match whole {
        Outcome::Complete(n) => Some(n),
        _ => None,
    };
    for p in prefixes(input.len(), end) {
        let part = parse(exact(&input[..p]), &input[..p]);
        match (&whole, &part) {
            (Outcome::Complete(n), Outcome::Partial) if p < *n => {}
            (Outcome::Complete(_), _) if part == whole => {}
            (Outcome::Partial, Outcome::Partial) => {}
            (Outcome::Failed(_), Outcome::Partial | Outcome::Failed(_)) => {}
            _ => panic!(
                "{p}-byte prefix: {part:?}, whole {}: {whole:?}",
                input.len()
            ),
        }
    }

    let used = end?;
    let (len, status, version, headers) =
        fields(input).expect("parse_head accepted a head httparse or http refuses");
    assert_eq!(len, used, "parse_head and httparse end the head apart");
    check_framing(status, version, false, &headers);
    check_framing(status, version, true, &headers);
    check_framing(StatusCode::OK, Version::HTTP_11, false, &headers);
    check_framing(StatusCode::OK, Version::HTTP_10, false, &headers);
    (status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS).then(|| &input[used..])
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    for _ in 0..MAX_HEADS {
        match check(rest) {
            Some(next) => rest = next,
            None => break,
        }
    }
});
