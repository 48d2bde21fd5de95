//! Fuzz target: the chunked body decoder (`upstream::h1::chunked::step`), driven as `H1Body`
//! drives it: step until it needs more bytes, then append the next read.
//!
//! The first input byte chooses how the rest (the body as the backend sends it) is split into
//! reads: bit 7 clear, reads of `(b & 0x3f) + 1` bytes; set, reads of varying sizes from 1 to
//! `(b & 0x3f) + 1` drawn from a generator seeded with the byte. The body is decoded fed whole,
//! fed that way, and (when it is short) one byte at a time.
//!
//! Checks: `step` never panics and never spins (each step yields at least one byte of data, the
//! end, an error or a request for more; the number of steps is bounded by the input length);
//! decoded data never exceeds the input; every split ends the same way (complete, error, or
//! still waiting for bytes when the input runs out) and, when complete, with the same data,
//! the same trailer fields and the same number of bytes consumed (what follows the body stays
//! in the buffer).
#![no_main]

use bytes::BytesMut;
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use tether::upstream::h1::chunked::{step, Chunk, Step};

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The body ended after this many input bytes, with these trailers.
    Complete(usize, HeaderMap),
    Failed,
    /// The decoder still wanted bytes when the input ran out.
    RanOut,
}

/// Decodes `body` fed in reads of the sizes `reads` yields: the data and how it ended.
fn decode(body: &[u8], mut reads: impl FnMut() -> usize) -> (Vec<u8>, End) {
    let mut buf = BytesMut::new();
    let mut at = Chunk::Size;
    let mut data = Vec::new();
    let mut fed = 0;
    // Every step either yields a byte of data or more is read, so this is generous.
    let mut steps_left = 2 * body.len() + 8;
    loop {
        steps_left = steps_left
            .checked_sub(1)
            .expect("the decoder does not progress");
        match step(&mut at, &mut buf) {
            Ok(Some(Step::Data(d))) => {
                assert!(!d.is_empty(), "an empty data step at {at:?}");
                data.extend_from_slice(&d);
                assert!(data.len() <= body.len(), "more data than input");
            }
            Ok(Some(Step::End(trailers))) => {
                let used = fed - buf.len();
                assert_eq!(
                    &buf[..],
                    &body[used..fed],
                    "the bytes after the body changed"
                );
                return (data, End::Complete(used, trailers));
            }
            Ok(None) if fed == body.len() => return (data, End::RanOut),
            Ok(None) => {
                let n = reads().clamp(1, body.len() - fed);
                buf.extend_from_slice(&body[fed..fed + n]);
                fed += n;
            }
            Err(_) => return (data, End::Failed),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, body)) = data.split_first() else {
        return;
    };
    let whole = decode(body, || body.len());

    let most = usize::from(how & 0x3f) + 1;
    let split = if how & 0x80 == 0 {
        decode(body, || most)
    } else {
        let mut state = u32::from(how) | 0x100;
        decode(body, move || {
            // xorshift32: any fixed sequence of sizes will do.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize % most + 1
        })
    };
    assert_eq!(split.1, whole.1, "reads from {how:#04x}: ends differ");
    if let End::Complete(..) = whole.1 {
        assert_eq!(split.0, whole.0, "reads from {how:#04x}: data differ");
    }

    if body.len() <= 512 {
        let bytewise = decode(body, || 1);
        assert_eq!(bytewise.1, whole.1, "one byte at a time: ends differ");
        if let End::Complete(..) = whole.1 {
            assert_eq!(bytewise.0, whole.0, "one byte at a time: data differ");
        }
    }
});
