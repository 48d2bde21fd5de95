//! Chunked transfer coding (RFC 9112 7.1): chunk-size lines, chunk data and the trailer
//! section, decoded from whatever part of a body has arrived.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::upstream::limits::{MAX_CHUNK_LINE, MAX_HEADERS, MAX_RESPONSE_HEAD};

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of chunk data still to come.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: the trailer section, up to an empty line.
    Trailers,
}

/// One decoding step of a chunked body.
pub enum Step {
    /// Chunk data.
    Data(Bytes),
    /// The trailer fields (possibly none) and the end of the body.
    End(HeaderMap),
}

/// Decodes what `buf` holds of a chunked body from position `at`, consuming what it decodes and
/// moving `at` on; `None` when more bytes are needed.
pub fn step(at: &mut Chunk, buf: &mut BytesMut) -> Result<Option<Step>, &'static str> {
    match *at {
        Chunk::Size => {
            let window = &buf[..buf.len().min(MAX_CHUNK_LINE)];
            let Some(eol) = window.iter().position(|&b| b == b'\n') else {
                return if buf.len() >= MAX_CHUNK_LINE {
                    Err("chunk-size line too long")
                } else {
                    Ok(None)
                };
            };
            let size = chunk_size(&buf[..eol + 1])?;
            buf.advance(eol + 1);
            let next = if size == 0 {
                Chunk::Trailers
            } else {
                Chunk::Data(size)
            };
            *at = next;
            step(at, buf)
        }
        Chunk::Data(left) => {
            if buf.is_empty() {
                return Ok(None);
            }
            let (data, left) = take(buf, left);
            *at = if left == 0 {
                Chunk::DataEnd
            } else {
                Chunk::Data(left)
            };
            Ok(Some(Step::Data(data)))
        }
        Chunk::DataEnd => {
            if buf.len() < 2 {
                return Ok(None);
            }
            if &buf[..2] != b"\r\n" {
                return Err("chunk data not followed by CRLF");
            }
            buf.advance(2);
            *at = Chunk::Size;
            step(at, buf)
        }
        Chunk::Trailers => {
            if buf.starts_with(b"\r\n") {
                buf.advance(2);
                return Ok(Some(Step::End(HeaderMap::new())));
            }
            match trailers(buf)? {
                Some((used, fields)) => {
                    buf.advance(used);
                    Ok(Some(Step::End(fields)))
                }
                None if buf.len() > MAX_RESPONSE_HEAD => Err("trailer section too large"),
                None => Ok(None),
            }
        }
    }
}

/// Splits off up to `left` buffered bytes: the data and how many are still to come.
pub fn take(buf: &mut BytesMut, left: u64) -> (Bytes, u64) {
    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
    (buf.split_to(n).freeze(), left - n as u64)
}

/// Parses a chunk-size line (`1a;ext=v\r\n`): hex digits, optional extensions, CRLF.
fn chunk_size(line: &[u8]) -> Result<u64, &'static str> {
    let line = line
        .strip_suffix(b"\r\n")
        .ok_or("chunk-size line without CRLF")?;
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (size, rest) = line.split_at(digits);
    // Only spaces and tabs may stand between the size and its extensions (RFC 9112 7.1.1).
    let ext_at = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(rest.len());
    let ext = &rest[ext_at..];
    if digits == 0 || !(ext.is_empty() || ext.starts_with(b";")) {
        return Err("invalid chunk size");
    }
    if ext.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("invalid chunk extension");
    }
    // Leading zeros are allowed; more than 16 significant digits overflow.
    let significant = &size[size.iter().take_while(|&&b| b == b'0').count()..];
    if significant.len() > 16 {
        return Err("chunk size too large");
    }
    let text = std::str::from_utf8(significant).map_err(|_| "invalid chunk size")?;
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 16).map_err(|_| "invalid chunk size")
}

/// Parses a trailer section (fields, then the empty line) off the front of `buf`: the bytes
/// it took and the fields, or `None` if it is not all there yet. Only responses that carry
/// trailers get here.
fn trailers(buf: &[u8]) -> Result<Option<(usize, HeaderMap)>, &'static str> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete((used, fields))) => {
            let mut map = HeaderMap::with_capacity(fields.len());
            for f in fields {
                let name = HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| "trailer name")?;
                let value = HeaderValue::from_bytes(f.value).map_err(|_| "trailer value")?;
                map.append(name, value);
            }
            Ok(Some((used, map)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err("malformed trailer section"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_lines() {
        assert_eq!(chunk_size(b"1a\r\n"), Ok(26));
        assert_eq!(chunk_size(b"0\r\n"), Ok(0));
        assert_eq!(chunk_size(b"A;name=value\r\n"), Ok(10));
        assert_eq!(chunk_size(b"5 ;x\r\n"), Ok(5));
        assert_eq!(chunk_size(b"000000000000000000001a\r\n"), Ok(26));
        assert_eq!(chunk_size(b"00\r\n"), Ok(0));
        for bad in [
            &b"\r\n"[..],
            b"g\r\n",
            b"5\n",
            b"5 x\r\n",
            b"5\r;x\r\n",
            b"11111111111111111\r\n",
            b"-1\r\n",
        ] {
            assert!(
                chunk_size(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// Decodes a whole chunked body fed `piece` bytes at a time, as the socket might deliver it.
    fn decode(body: &[u8], piece: usize) -> Result<(Vec<u8>, HeaderMap), &'static str> {
        let mut buf = BytesMut::new();
        let mut at = Chunk::Size;
        let mut out = Vec::new();
        let mut input = body.chunks(piece);
        loop {
            match step(&mut at, &mut buf)? {
                Some(Step::Data(d)) => out.extend_from_slice(&d),
                Some(Step::End(t)) => return Ok((out, t)),
                None => match input.next() {
                    Some(more) => buf.extend_from_slice(more),
                    None => return Err("ran out"),
                },
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_the_same_however_they_arrive() {
        let body = b"5\r\nhello\r\n7;ext\r\n, world\r\n0\r\nX-Sum: 42\r\n\r\n";
        for piece in 1..=body.len() {
            let (data, trailers) = decode(body, piece).unwrap();
            assert_eq!(data, b"hello, world", "pieces of {piece}");
            assert_eq!(trailers["x-sum"], "42");
        }
        // Bytes after the trailer section stay in the buffer (and so keep the connection from
        // being reused).
        let mut buf = BytesMut::from(&b"X: 1\r\n\r\nextra"[..]);
        assert!(matches!(
            step(&mut Chunk::Trailers, &mut buf),
            Ok(Some(Step::End(_)))
        ));
        assert_eq!(&buf[..], b"extra");
        let (data, trailers) = decode(b"0\r\n\r\n", 1).unwrap();
        assert!(data.is_empty() && trailers.is_empty());
    }

    /// A valid chunked body of random chunks, extensions and trailers, with its data.
    fn random_chunked(rng: &mut fastrand::Rng) -> (Vec<u8>, Vec<u8>) {
        let (mut wire, mut data) = (Vec::new(), Vec::new());
        for _ in 0..rng.usize(0..6) {
            let chunk: Vec<u8> = (0..rng.usize(1..40)).map(|_| rng.u8(..)).collect();
            let ext = if rng.bool() { ";a=b" } else { "" };
            let size = format!("{:0width$x}", chunk.len(), width = rng.usize(1..4));
            wire.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
            wire.extend_from_slice(&chunk);
            wire.extend_from_slice(b"\r\n");
            data.extend_from_slice(&chunk);
        }
        wire.extend_from_slice(b"0\r\n");
        if rng.bool() {
            wire.extend_from_slice(b"X-T: 1\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        (wire, data)
    }

    #[test]
    fn random_and_corrupted_chunked_bodies_never_panic_and_decode_alike_in_any_pieces() {
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..3000 {
            let (mut wire, data) = random_chunked(&mut rng);
            let corrupt = round % 2 == 1;
            if corrupt {
                // Flip, drop or insert a few bytes anywhere.
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(..wire.len());
                    match rng.u8(0..3) {
                        0 => wire[at] = rng.u8(..),
                        1 => drop(wire.remove(at)),
                        _ => wire.insert(at, rng.u8(..)),
                    }
                }
            }
            let whole = decode(&wire, wire.len().max(1));
            if !corrupt {
                assert_eq!(whole.as_ref().map(|(d, _)| d), Ok(&data), "round {round}");
            }
            for piece in [1, 2, 5, 13] {
                let split = decode(&wire, piece);
                // A decoder that waits for more bytes ("ran out") and one that fails on what it
                // has both stop; only complete decodes must agree byte for byte.
                if let (Ok(a), Ok(b)) = (&whole, &split) {
                    assert_eq!(a.0, b.0, "round {round}, pieces of {piece}");
                }
                assert_eq!(
                    whole.is_ok(),
                    split.is_ok(),
                    "round {round}, pieces of {piece}"
                );
            }
        }
    }

    #[test]
    fn broken_chunked_framing_fails() {
        for bad in [
            &b"5\r\nhelloX\r\n0\r\n\r\n"[..],
            b"zz\r\nhello\r\n",
            b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
        ] {
            assert!(
                decode(bad, bad.len()).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'1'; MAX_CHUNK_LINE + 2];
        assert!(decode(&long, long.len()).is_err());
    }
}
