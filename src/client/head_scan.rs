//! Line-ending and framing hygiene over the bytes of an HTTP/1 request head, as they arrive.
//!
//! hyper's parser tolerates a bare LF as a line ending, which some backends and middleboxes
//! read differently (a request smuggling vector): such a byte is replaced by NUL, so the parser
//! fails and the client gets 400 instead of an ambiguous request being forwarded.

/// Line-ending and framing check over the bytes of one HTTP/1 request head.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadScan {
    /// Scanning: between the start of a head and its blank line.
    active: bool,
    /// No byte of the request line yet: empty lines here are skipped, as the parser skips them
    /// (RFC 9112 2.2), rather than read as the blank line that ends a head.
    before_request_line: bool,
    prev_cr: bool,
    /// The current line has no bytes yet (so CRLF here ends the head).
    line_empty: bool,
    /// Still reading the current line's header name (up to its colon).
    in_name: bool,
    /// The name so far, lower-cased; only the two framing names matter, so it is short.
    name: [u8; NAME_MAX],
    name_len: usize,
    /// The head has a `Content-Length` / `Transfer-Encoding` line.
    has_length: bool,
    has_encoding: bool,
    /// Reading the value of a `Content-Length` line.
    in_length: bool,
    /// The declared body length; `None` if absent, unparsable or given twice.
    length: Option<u64>,
    /// Bytes delivered after the end of this head (its body, or pipelined requests).
    after: u64,
}

/// Longest header name the scanner needs to recognise (`transfer-encoding`).
const NAME_MAX: usize = 17;

impl HeadScan {
    /// A scanner at the start of a head.
    pub fn started() -> Self {
        HeadScan {
            active: true,
            before_request_line: true,
            ..HeadScan::default()
        }
    }

    /// Starts over at the beginning of the next head.
    pub fn start(&mut self) {
        *self = HeadScan::started();
    }

    /// True when every byte delivered since this head began has been a byte of this head or of
    /// its declared body: once its request is answered, the parser's buffer is empty.
    pub fn fully_consumed(&self) -> bool {
        !self.active && !self.has_encoding && self.after == self.length.unwrap_or(0)
    }

    /// Bytes delivered after the end of the head.
    pub fn bytes_after(&self) -> u64 {
        self.after
    }

    /// Counts bytes that arrived after the head ended.
    pub fn count_after(&mut self, n: usize) {
        self.after = self.after.saturating_add(n as u64);
    }

    /// Scans `bytes`, poisoning a bare LF, and the final LF of a head that carries both
    /// `Content-Length` and `Transfer-Encoding` (RFC 9112 6.1: a request smuggling signature
    /// that a proxy should refuse rather than resolve); stops at the end of the head, counting
    /// the bytes after it. Returns true if it poisoned a byte.
    pub fn scan(&mut self, bytes: &mut [u8]) -> bool {
        let mut i = 0;
        while i < bytes.len() {
            if !self.active {
                self.count_after(bytes.len() - i);
                return false;
            }
            let b = bytes[i];
            if self.before_request_line && b != b'\r' && b != b'\n' {
                self.before_request_line = false;
            }
            match b {
                b'\n' if !self.prev_cr => {
                    bytes[i] = 0;
                    self.active = false;
                    return true;
                }
                b'\n' if self.before_request_line => {}
                b'\n' => {
                    if self.line_empty {
                        self.active = false;
                        if self.has_length && self.has_encoding {
                            bytes[i] = 0;
                            return true;
                        }
                    }
                    self.line_empty = true;
                    self.in_length = false;
                    // The line after the request line, and every one after it, starts a name.
                    self.in_name = true;
                    self.name_len = 0;
                }
                b'\r' => {}
                b':' if self.in_name => {
                    self.in_name = false;
                    match &self.name[..self.name_len] {
                        b"content-length" => {
                            // A second Content-Length leaves the length unknown.
                            self.length = (!self.has_length).then_some(0);
                            self.has_length = true;
                            self.in_length = true;
                        }
                        b"transfer-encoding" => self.has_encoding = true,
                        _ => {}
                    }
                    self.line_empty = false;
                }
                c if self.in_length => {
                    self.length = match c {
                        b'0'..=b'9' => self
                            .length
                            .and_then(|n| n.checked_mul(10))
                            .and_then(|n| n.checked_add(u64::from(c - b'0'))),
                        b' ' | b'\t' => self.length,
                        _ => None,
                    };
                    self.line_empty = false;
                }
                c if self.in_name => {
                    if self.name_len < NAME_MAX {
                        self.name[self.name_len] = c.to_ascii_lowercase();
                        self.name_len += 1;
                    } else {
                        // Longer than any name we look for.
                        self.in_name = false;
                    }
                    self.line_empty = false;
                }
                _ => {
                    // The request line, a value, or a name too long to matter: nothing up to
                    // the end of the line counts, so skip to its CR or LF.
                    let rest = &bytes[i..];
                    i += rest
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n')
                        .unwrap_or(rest.len());
                    self.line_empty = false;
                    self.prev_cr = false;
                    continue;
                }
            }
            self.prev_cr = b == b'\r';
            i += 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scanned bytes; the same however the input is split into reads (checked for every
    /// piece size, down to the one-byte reads of a slow client), as are the bytes counted
    /// after a clean head (a poisoned one ends the connection, so its count is unused).
    fn scanned(input: &[u8]) -> Vec<u8> {
        let run = |piece: usize| {
            let mut scan = HeadScan::default();
            scan.start();
            let mut bytes = input.to_vec();
            for chunk in bytes.chunks_mut(piece) {
                let _ = scan.scan(chunk);
            }
            (bytes, scan.after)
        };
        let whole = run(input.len());
        let clean = whole.0 == input;
        for piece in 1..input.len() {
            let split = run(piece);
            assert_eq!(split.0, whole.0, "pieces of {piece}");
            if clean {
                assert_eq!(split.1, whole.1, "bytes after the head, pieces of {piece}");
            }
        }
        whole.0
    }

    #[test]
    fn bytes_after_the_head_are_counted() {
        let mut scan = HeadScan::default();
        scan.start();
        let mut bytes = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec();
        assert!(!scan.scan(&mut bytes));
        assert_eq!((scan.length, scan.after), (Some(3), 3));
        assert!(scan.fully_consumed());
    }

    #[test]
    fn crlf_heads_pass_untouched_and_the_body_is_not_scanned() {
        let input = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na\nb";
        assert_eq!(scanned(input), input.to_vec());
    }

    #[test]
    fn empty_lines_before_the_request_line_do_not_end_the_scan() {
        // The parser skips them, so the head behind them must be checked like any other.
        let smuggle =
            b"\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(scanned(smuggle).contains(&0), "CL + TE behind empty lines");
        let bare_lf = b"\r\n\r\nGET / HTTP/1.1\nHost: x\n\n";
        assert!(scanned(bare_lf).contains(&0), "bare LF behind empty lines");
        let clean = b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(scanned(clean), clean.to_vec());
    }

    #[test]
    fn content_length_with_transfer_encoding_is_poisoned_at_the_end_of_the_head() {
        let out = scanned(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTRANSFER-ENCODING: chunked\r\n\r\nabc",
        );
        assert!(out.contains(&0), "{out:?}");
        let clean =
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-Transfer-Encoding: y\r\n\r\nabc";
        assert_eq!(scanned(clean), clean.to_vec());
    }

    #[test]
    fn a_bare_lf_in_the_head_is_poisoned() {
        let out = scanned(b"GET / HTTP/1.1\nHost: x\r\n\r\n");
        assert_eq!(out[14], 0);
        let out = scanned(b"GET / HTTP/1.1\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(out.contains(&0));
    }
}
