//! Fuzz target: the PROXY protocol v1/v2 header parser on arbitrary bytes.
//!
//! Checks: `parse` never panics; `Done(_, n)` consumed no more than it was given; `Need(n)`
//! asks for more than it has, so a reader always makes progress. And, replaying what
//! `proxy_protocol::read` does (read exactly what `Need` asks for, parse again), the header is
//! found after reading exactly its own bytes: the reader never consumes bytes of the HTTP or TLS
//! stream behind it, and agrees with a parse of the whole input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether::proxy_protocol::{parse, Parsed};

/// What `proxy_protocol::read` starts by reading: the length of the v2 signature.
const FIRST_READ: usize = 12;

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    match whole {
        Ok(Parsed::Done(_, n)) => {
            assert!(n <= data.len(), "Done({n}) but only {} bytes", data.len());
        }
        Ok(Parsed::Need(n)) => {
            assert!(
                n > data.len(),
                "Need({n}) with {} bytes already",
                data.len()
            );
        }
        Err(_) => {}
    }

    // Replay the incremental reader over the same bytes.
    let mut need = FIRST_READ;
    while need <= data.len() {
        match parse(&data[..need]) {
            Ok(Parsed::Done(header, n)) => {
                assert_eq!(
                    n, need,
                    "the reader read {need} bytes for a {n}-byte header"
                );
                assert_eq!(
                    whole,
                    Ok(Parsed::Done(header, n)),
                    "reader and whole parse differ"
                );
                return;
            }
            Ok(Parsed::Need(more)) => {
                assert!(
                    more > need,
                    "Need({more}) after reading {need}: no progress"
                );
                need = more;
            }
            Err(_) => {
                assert!(
                    !matches!(whole, Ok(Parsed::Done(..))),
                    "the reader refuses after {need} bytes a header the whole parse accepts"
                );
                return;
            }
        }
    }
});
