//! The response head tether's own HTTP/1 path writes: the status line, the fields, `date`, and
//! the body's framing, by the rules hyper's server follows (RFC 9112 6.1-6.3).

use std::cell::RefCell;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header;
use http::response::Parts;
use http::{Method, StatusCode};
use http_body::SizeHint;

use crate::headers::value_lists;

/// How the body follows the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body is sent (HEAD, 1xx, 204, 304), whatever the response's body holds.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// What [`head`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// How the body follows.
    pub framing: Framing,
    /// The connection ends after this response (asked by the caller or by the response).
    pub close: bool,
}

/// Appends the head of `parts` to `out` and says how its body must follow. `close`: the
/// connection ends after this response, and the head says so. The fields are written in one
/// pass, leaving the map as it is: the framing fields are tether's, written after the others.
pub fn head(
    parts: &Parts,
    method: &Method,
    hint: &SizeHint,
    close: bool,
    out: &mut Vec<u8>,
) -> Encoded {
    let status = parts.status;
    let headers = &parts.headers;
    let no_body = status.is_informational() || status == StatusCode::NO_CONTENT;
    // `None`: no usable Content-Length (absent, not one decimal number, or not allowed).
    let declared = if no_body {
        None
    } else {
        headers.get(header::CONTENT_LENGTH).and_then(|v| {
            std::str::from_utf8(v.as_bytes())
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        })
    };
    // A HEAD's or 304's Content-Length describes the body a GET would get: kept as given.
    let bodiless = no_body || *method == Method::HEAD || status == StatusCode::NOT_MODIFIED;
    let (framing, own_length) = match (bodiless, declared, hint.exact()) {
        (true, ..) => (Framing::None, false),
        (false, Some(len), _) => (Framing::Length(len), false),
        (false, None, Some(len)) => (Framing::Length(len), true),
        (false, None, None) => (Framing::Chunked, false),
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    // A reason phrase of the backend's own goes on, as through hyper's server.
    match parts.extensions.get::<hyper::ext::ReasonPhrase>() {
        Some(reason) => out.extend_from_slice(reason.as_bytes()),
        None => out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    let (mut said_close, mut has_date, mut has_length) = (false, false, false);
    for (name, value) in headers.iter() {
        if *name == header::TRANSFER_ENCODING
            || (*name == header::CONTENT_LENGTH
                && (no_body || has_length || (!bodiless && declared.is_none())))
        {
            // The framing written below replaces any the response carries (hop-by-hop
            // stripping has removed a backend's; a 1xx or 204 has none), and a HEAD's or 304's
            // length is given once: a second, conflicting one (unchecked upstream for a
            // bodiless response) does not reach the client.
            continue;
        }
        has_length |= *name == header::CONTENT_LENGTH;
        if *name == header::CONNECTION {
            said_close |= value_lists(value.as_bytes(), "close");
        } else if *name == header::DATE {
            has_date = true;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(len) if own_length => {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "content-length: {len}\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if close && !said_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Encoded {
        framing,
        close: close || said_close,
    }
}

/// The head of a `400 Bad Request` that ends the connection, for a head refused before any
/// request was made of it.
pub fn bad_request(out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: ",
    );
    date(out);
    out.extend_from_slice(b"\r\n\r\n");
}

/// An IMF-fixdate (RFC 9110 5.6.7) is always 29 bytes.
const DATE_LEN: usize = 29;

thread_local! {
    /// The second last formatted and its text: formatted once a second per thread.
    static DATE: RefCell<(u64, [u8; DATE_LEN])> = const { RefCell::new((u64::MAX, [0; DATE_LEN])) };
}

/// Appends the current time as an HTTP date.
fn date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == DATE_LEN {
                cached.1.copy_from_slice(text.as_bytes());
                cached.0 = secs;
            }
        }
        out.extend_from_slice(&cached.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;

    fn encode(
        resp: Response<()>,
        method: Method,
        hint: SizeHint,
        close: bool,
    ) -> (String, Framing) {
        let (parts, ()) = resp.into_parts();
        let mut out = Vec::new();
        let encoded = head(&parts, &method, &hint, close, &mut out);
        let text = String::from_utf8(out).unwrap();
        let says_close = text
            .to_ascii_lowercase()
            .lines()
            .any(|l| l.starts_with("connection:") && l.contains("close"));
        assert_eq!(encoded.close, says_close, "{text}");
        (text, encoded.framing)
    }

    #[test]
    fn a_known_length_is_declared_and_an_unknown_one_is_chunked() {
        let (text, framing) = encode(
            Response::new(()),
            Method::GET,
            SizeHint::with_exact(5),
            false,
        );
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: "),
            "{text}"
        );
        assert!(text.ends_with(" GMT\r\n\r\n"), "{text}");
        assert_eq!(framing, Framing::Length(5));
        let (text, framing) = encode(Response::new(()), Method::GET, SizeHint::new(), true);
        assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
        assert!(text.contains("connection: close\r\n"), "{text}");
        assert_eq!(framing, Framing::Chunked);
    }

    #[test]
    fn head_and_304_keep_the_backends_length_and_send_no_body() {
        let resp = Response::builder()
            .header("content-length", "42")
            .body(())
            .unwrap();
        let (text, framing) = encode(resp, Method::HEAD, SizeHint::with_exact(0), false);
        assert!(text.contains("content-length: 42\r\n"), "{text}");
        assert_eq!(framing, Framing::None);
        let resp = Response::builder().status(304).body(()).unwrap();
        let (text, framing) = encode(resp, Method::GET, SizeHint::with_exact(0), false);
        assert!(!text.contains("content-length"), "{text}");
        assert_eq!(framing, Framing::None);
    }

    #[test]
    fn a_204_loses_its_length_and_the_backends_transfer_coding_is_replaced() {
        let resp = Response::builder()
            .status(204)
            .header("content-length", "0")
            .body(())
            .unwrap();
        let (text, _) = encode(resp, Method::GET, SizeHint::with_exact(0), false);
        assert!(!text.contains("content-length"), "{text}");
        let resp = Response::builder()
            .header("transfer-encoding", "gzip, chunked")
            .header("content-length", "7")
            .body(())
            .unwrap();
        let (text, framing) = encode(resp, Method::GET, SizeHint::new(), false);
        assert!(!text.contains("gzip"), "{text}");
        assert_eq!(framing, Framing::Length(7));
    }

    #[test]
    fn a_response_that_says_close_closes_and_close_is_said_once() {
        let resp = Response::builder()
            .header("connection", "keep-alive, Close")
            .body(())
            .unwrap();
        let (text, _) = encode(resp, Method::GET, SizeHint::with_exact(0), true);
        assert_eq!(text.matches("onnection").count(), 1, "{text}");
        let resp = Response::builder()
            .header("content-length", "x")
            .body(())
            .unwrap();
        let (text, framing) = encode(resp, Method::GET, SizeHint::with_exact(3), false);
        assert!(
            text.contains("content-length: 3\r\n") && !text.contains(": x"),
            "{text}"
        );
        assert_eq!(framing, Framing::Length(3));
    }

    #[test]
    fn a_head_response_carries_one_content_length() {
        let resp = Response::builder()
            .header("content-length", "5")
            .header("content-length", "7")
            .body(())
            .unwrap();
        let (text, framing) = encode(resp, Method::HEAD, SizeHint::with_exact(0), false);
        assert_eq!(text.matches("content-length").count(), 1, "{text}");
        assert!(text.contains("content-length: 5\r\n"), "{text}");
        assert_eq!(framing, Framing::None);
    }

    #[test]
    fn a_reason_of_the_backends_own_and_a_date_it_set_go_on() {
        let mut resp = Response::builder()
            .status(299)
            .header("date", "Sun, 06 Nov 1994 08:49:37 GMT")
            .body(())
            .unwrap();
        resp.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(b"Fine"));
        let (text, _) = encode(resp, Method::GET, SizeHint::with_exact(0), false);
        assert!(text.starts_with("HTTP/1.1 299 Fine\r\n"), "{text}");
        assert_eq!(text.matches("date: ").count(), 1, "{text}");
    }
}
