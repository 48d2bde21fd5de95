//! Request smuggling through body framing: conflicting Content-Length and Transfer-Encoding,
//! duplicate Content-Length, unknown codings and broken chunk-size lines never reach a backend
//! as a second request or with ambiguous framing, and tether keeps serving afterwards.
//!
//! Where hyper accepts a message RFC 9112 lets a server accept (both CL and TE: TE wins and the
//! connection is closed after the response), the test asserts the safe outcome: the backend
//! saw exactly one request, re-framed unambiguously, with the body the chunked coding gives.

use crate::common::config::{Config, Listener, Pool};
use crate::common::hostile::{ambiguous_framing, attack, probe, Outcome};
use crate::common::{TestBackend, Tether};

/// What a case must end in.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 400 (or a close without response), the backend saw nothing, the connection closed.
    Refused,
    /// Refused, or forwarded as exactly one request whose body is this many bytes, framed
    /// unambiguously, on a connection tether then closed (nothing after it is read as a request).
    RefusedOrOnce { body: u64, close: bool },
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, bytes: &[u8], expect: Expect) -> Case {
    Case {
        name,
        bytes: bytes.to_vec(),
        expect,
    }
}

/// Why `outcome` breaks `expect`, if it does.
fn violation(outcome: &Outcome, expect: Expect) -> Option<String> {
    if outcome.refused() {
        return None;
    }
    let Expect::RefusedOrOnce { body, close } = expect else {
        return Some("expected 400 with nothing forwarded".to_string());
    };
    if outcome.backend_requests != 1 {
        return Some(format!("backend saw {} requests", outcome.backend_requests));
    }
    let Some(echo) = outcome.echo() else {
        return Some("forwarded but no /echo answer came back".to_string());
    };
    if let Some(problem) = ambiguous_framing(&echo) {
        return Some(problem);
    }
    if echo.body_len != body {
        return Some(format!("backend body {} bytes, not {body}", echo.body_len));
    }
    if close && !outcome.closed_after {
        return Some("connection kept open after a message with conflicting framing".to_string());
    }
    None
}

async fn run(cases: Vec<Case>) {
    let backend = TestBackend::start("app-1").await;
    let tether = Tether::start(Config::round_robin(&backend, Listener::web(), Pool::app())).await;
    let addr = tether.addr("web");
    let mut failures = Vec::new();
    for case in &cases {
        let outcome = attack(addr, &backend, &case.bytes).await;
        eprintln!("{}: {}", case.name, outcome.describe());
        if let Some(why) = violation(&outcome, case.expect) {
            failures.push(format!("{}: {why} ({})", case.name, outcome.describe()));
        }
        if let Err(why) = probe(addr, &backend, case.name).await {
            failures.push(why);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn content_length_and_transfer_encoding_together_never_smuggle_a_second_request() {
    let once = |body| Expect::RefusedOrOnce { body, close: true };
    run(vec![
        // CL.TE: a CL-reading hop would take "G" as the start of the next request.
        case(
            "CL.TE",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
            once(0),
        ),
        // CL.TE with a whole request hidden behind the terminating chunk.
        case(
            "CL.TE with a hidden GET",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
            once(0),
        ),
        // TE.CL: a CL-reading backend would stop after "8\r\n" and read "SMUGGLED..." next.
        case(
            "TE.CL",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
              Content-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
            once(8),
        ),
        case(
            "TE.CL with a hidden GET in the chunk",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
              Content-Length: 4\r\n\r\n23\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n",
            once(35),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_lines_before_the_request_line_hide_nothing() {
    // The parser skips empty lines before a request line (RFC 9112 2.2); the head behind them
    // gets the same checks as any other.
    run(vec![
        case(
            "CRLF CRLF, then CL + TE",
            b"\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
            Expect::Refused,
        ),
        case(
            "CRLF CRLF, then bare LF line ends",
            b"\r\n\r\nGET /echo HTTP/1.1\nHost: a\n\n",
            Expect::Refused,
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_or_malformed_content_length_is_refused() {
    run(vec![
        case(
            "two different Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
            Expect::Refused,
        ),
        case(
            "Content-Length list",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 5\r\n\r\nabcde",
            Expect::Refused,
        ),
        case(
            "signed Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
            Expect::Refused,
        ),
        case(
            "negative Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nabc",
            Expect::Refused,
        ),
        case(
            "overflowing Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\nabc",
            Expect::Refused,
        ),
        // RFC 9110 allows identical repeats; if accepted, exactly one length goes on.
        case(
            "two identical Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            Expect::RefusedOrOnce {
                body: 3,
                close: false,
            },
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transfer_codings_other_than_a_final_chunked_are_refused_or_reframed() {
    // Accepted spellings of chunked must be forwarded re-framed as one plain `chunked`.
    let reframed = Expect::RefusedOrOnce {
        body: 3,
        close: false,
    };
    let chunked_abc = b"3\r\nabc\r\n0\r\n\r\n";
    let post = |te: &str| {
        let mut bytes =
            format!("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n")
                .into_bytes();
        bytes.extend_from_slice(chunked_abc);
        bytes
    };
    run(vec![
        // chunked not last: the length cannot be known (RFC 9112 6.3: MUST answer 400).
        case("TE chunked, identity", &post("chunked, identity"), Expect::Refused),
        case("TE xchunked", &post("xchunked"), Expect::Refused),
        case("TE chunked-false", &post("chunked-false"), Expect::Refused),
        case("TE gzip", &post("gzip"), Expect::Refused),
        case(
            "TE xchunked with Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\
              Content-Length: 3\r\n\r\nabc",
            Expect::Refused,
        ),
        case(
            "TE with a space before the colon",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\
              Content-Length: 3\r\n\r\nabc",
            Expect::Refused,
        ),
        case(
            "TE with a vertical tab",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\
              Content-Length: 3\r\n\r\nabc",
            Expect::Refused,
        ),
        case(
            "TE on HTTP/1.0",
            b"POST /echo HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            Expect::Refused,
        ),
        // hyper accepts these three; what matters is that the backend sees plain chunked.
        case("TE identity, chunked", &post("identity, chunked"), reframed),
        case("TE CHUNKED", &post("CHUNKED"), reframed),
        case(
            "TE chunked twice",
            &[
                b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
                  Transfer-Encoding: chunked\r\n\r\n"
                    .as_slice(),
                chunked_abc,
            ]
            .concat(),
            reframed,
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_chunk_size_lines_are_client_errors() {
    let head = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let with = |body: &[u8]| [head.as_slice(), body].concat();
    run(vec![
        // 40 hex digits: far past u64.
        case(
            "oversized chunk size",
            &with(&[&[b'f'; 40][..], b"\r\nabc\r\n0\r\n\r\n"].concat()),
            Expect::Refused,
        ),
        // A 64 KiB chunk extension: the size line never ends within any sane bound.
        case(
            "64 KiB chunk-size line",
            &with(&[&b"3;"[..], &[b'x'; 64 * 1024], b"\r\nabc\r\n0\r\n\r\n"].concat()),
            Expect::Refused,
        ),
        case(
            "non-hex chunk size",
            &with(b"3g\r\nabc\r\n0\r\n\r\n"),
            Expect::Refused,
        ),
        case(
            "chunk lines ended by bare LF",
            &with(b"3\nabc\n0\n\n"),
            Expect::Refused,
        ),
    ])
    .await;
}
