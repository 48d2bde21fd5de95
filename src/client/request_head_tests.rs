//! Tests of the request-head parser. The decision is checked against an oracle written from the module's rules with httparse
//! called as hyper's server calls it, on hand-written heads and on thousands of mutated
//! ones, each fed whole (in four buffer layouts), prefix by prefix and in random reads.

use super::*;

/// xorshift64: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

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

/// Parses `buf` and checks what that did to it: nothing unless `Simple`, and then exactly
/// the head off its front.
fn run(buf: &mut BytesMut) -> Decision {
    let before = buf.to_vec();
    let parsed = parse(buf);
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
            assert_eq!(&buf[..], &before[taken..], "the bytes after the head");
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

fn exact(input: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(input.len());
    buf.extend_from_slice(input);
    assert_eq!(buf.capacity(), buf.len());
    buf
}

/// `input` exactly full, with spare capacity, behind bytes split off its front, and in
/// front of bytes split off behind it: the decision (and what is taken) must be the same.
fn decide(input: &[u8]) -> Decision {
    let mut spare = BytesMut::with_capacity(input.len() + 4096);
    spare.extend_from_slice(input);
    let mut behind = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
    behind.extend_from_slice(input);
    let behind = behind.split_off(18);
    let mut front = BytesMut::from(input);
    front.extend_from_slice(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    let front = front.split_to(input.len());
    let whole = run(&mut exact(input));
    for (what, mut buf) in [("spare", spare), ("behind", behind), ("front", front)] {
        assert_eq!(run(&mut buf), whole, "{what}: {:?}", show(input));
    }
    whole
}

fn show(input: &[u8]) -> String {
    String::from_utf8_lossy(&input[..input.len().min(600)]).into_owned()
}

/// httparse's complete head length, as hyper's server reads it.
fn httparse_len(input: &[u8]) -> Option<usize> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::Request::new(&mut raw).parse(input) {
        Ok(httparse::Status::Complete(len)) => Some(len),
        _ => None,
    }
}

/// The decision worked out from the module's stated rules, not with its code: httparse's
/// default request parse with 100 fields, then HTTP/1.1 and not CONNECT, then no bare LF
/// after the leading empty lines, then no body, upgrade or expectation, a `Connection` of
/// `keep-alive`/`close` only, and a target and fields `http` takes.
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
    loop {
        if let Some(rest) = head.strip_prefix(b"\r\n") {
            head = rest;
        } else if let Some(rest) = head.strip_prefix(b"\n") {
            head = rest;
        } else {
            break;
        }
    }
    let bare =
        head.first() == Some(&b'\n') || head.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r');
    if bare {
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
        Uri::try_from(req.path.unwrap()),
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

/// Checks `input` whole against the oracle, then fed as every prefix (a sample of them
/// past 320 bytes) and in random reads into one growing buffer, as the session feeds it.
fn check(input: &[u8], rng: &mut Rng) -> Decision {
    let whole = decide(input);
    assert_eq!(
        whole,
        expected(input),
        "against the rules: {:?}",
        show(input)
    );
    if let Decision::Simple { uri, taken, .. } = &whole {
        // The target as sent (origin-form and `*` come back byte for byte).
        let line = &input[..*taken];
        let sent = line.split(|&b| b == b' ').nth(1).unwrap();
        if sent.starts_with(b"/") || sent == b"*" {
            assert_eq!(uri.as_bytes(), sent);
        }
    }
    let head_end = httparse_len(input);
    let ends: Vec<usize> = if input.len() <= 320 {
        (0..input.len()).collect()
    } else {
        let mut ends: Vec<usize> = (0..40).map(|_| rng.below(input.len())).collect();
        if let Some(end) = head_end {
            ends.extend([end - 1, end, end + 1].iter().filter(|&&e| e < input.len()));
        }
        ends.sort_unstable();
        ends
    };
    let mut decided = None;
    for k in ends {
        let d = run(&mut exact(&input[..k]));
        if d == Decision::Partial {
            assert_eq!(decided, None, "prefix {k} undecided after {decided:?}");
            assert!(
                head_end.is_none_or(|end| k < end),
                "prefix {k} past the head"
            );
        } else {
            assert_eq!(d, whole, "prefix {k} of {:?}", show(input));
            decided = Some(k);
        }
    }
    for _ in 0..3 {
        let top = if rng.below(2) == 0 { 8 } else { 200 };
        let most = 1 + rng.below(top);
        let mut buf = BytesMut::new();
        let mut fed = 0;
        let got = loop {
            let d = run(&mut buf);
            if d != Decision::Partial || fed == input.len() {
                break d;
            }
            // Reads of at least 1/256 of a long input: no quadratic time in debug builds.
            let n = (input.len() / 256 + 1 + rng.below(most)).min(input.len() - fed);
            buf.reserve(rng.below(64));
            buf.extend_from_slice(&input[fed..fed + n]);
            fed += n;
        };
        assert_eq!(got, whole, "reads up to {most}: {:?}", show(input));
    }
    whole
}

fn simple(input: &[u8]) -> (Request<()>, bool, BytesMut) {
    let _ = check(input, &mut Rng(7));
    let mut buf = BytesMut::from(input);
    match parse(&mut buf) {
        Parsed::Simple { req, close } => (req, close, buf),
        other => panic!("{other:?} for {:?}", show(input)),
    }
}

fn assert_decides(what: &str, input: &[u8], want: &Decision) {
    assert_eq!(
        &check(input, &mut Rng(7)),
        want,
        "{what}: {:?}",
        show(input)
    );
}

#[test]
fn a_plain_get_is_taken_with_every_field_and_the_pipelined_rest_left() {
    let head: &[u8] = b"GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\
        X-Dup: one\r\nUser-Agent: t/1 (x; y)\r\nx-dup:  two \t\r\nEmpty:\r\n\
        Obs: caf\xc3\xa9\r\n\r\n";
    let next: &[u8] = b"GET /second HTTP/1.1\r\nHost: example.com\r\n\r\n";
    let input = [head, next].concat();
    let (req, close, rest) = simple(&input);
    assert_eq!(&rest[..], next, "the pipelined request stays");
    assert!(!close);
    assert_eq!(req.method(), Method::GET);
    assert_eq!(req.version(), Version::HTTP_11);
    assert_eq!(req.uri().path(), "/a/b");
    assert_eq!(req.uri().query(), Some("c=d"));
    assert_eq!(req.uri().to_string(), "/a/b?c=d");
    let want: Vec<(String, Vec<u8>)> = [
        ("host", &b"example.com"[..]),
        ("accept", b"*/*"),
        ("x-dup", b"one"),
        ("x-dup", b"two"),
        ("user-agent", b"t/1 (x; y)"),
        ("empty", b""),
        ("obs", b"caf\xc3\xa9"),
    ]
    .iter()
    .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
    .collect();
    assert_eq!(fields(req.headers()), want);
    assert_eq!(req.headers().len(), 7, "duplicates kept");

    // The values share the head's memory.
    let mut buf = BytesMut::from(&input[..]);
    let at = buf.as_ptr() as usize;
    let Parsed::Simple { req, .. } = parse(&mut buf) else {
        panic!("not simple");
    };
    for v in req.headers().values().filter(|v| !v.is_empty()) {
        let p = v.as_bytes().as_ptr() as usize;
        assert!((at..at + head.len()).contains(&p), "{v:?} copied");
    }
    // And the second request parses from what was left.
    let (req, close, rest) = simple(&rest);
    assert_eq!((req.uri().path(), close, rest.len()), ("/second", false, 0));
}

#[test]
fn absolute_form_and_asterisk_targets_are_kept() {
    let (req, ..) =
        simple(b"GET http://example.com:8080/p?q HTTP/1.1\r\nHost: example.com:8080\r\n\r\n");
    let uri = req.uri();
    assert_eq!(uri.scheme_str(), Some("http"));
    assert_eq!(
        uri.authority().map(|a| a.as_str()),
        Some("example.com:8080")
    );
    assert_eq!((uri.path(), uri.query()), ("/p", Some("q")));
    let (req, ..) = simple(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(
        (req.method(), req.uri().to_string()),
        (&Method::OPTIONS, "*".into())
    );
}

#[test]
fn connection_close_is_reported_and_keep_alive_is_not() {
    for (fields, want) in [
        ("", false),
        ("Connection: close\r\n", true),
        ("Connection: keep-alive, close\r\n", true),
        ("connection: CLOSE\r\n", true),
        ("Connection: keep-alive\r\n", false),
        ("Connection: Keep-Alive\r\n", false),
        ("Connection: keep-alive\r\nConnection: close\r\n", true),
        ("Connection: \tkeep-alive ,close\r\n", true),
    ] {
        let input = format!("GET / HTTP/1.1\r\nHost: h\r\n{fields}\r\n");
        let (req, close, _) = simple(input.as_bytes());
        assert_eq!(close, want, "{fields:?}");
        let listed = req
            .headers()
            .get_all(http::header::CONNECTION)
            .iter()
            .count();
        assert_eq!(listed, fields.matches("onnection").count(), "{fields:?}");
    }
}

#[test]
fn bodies_upgrades_expectations_and_connection_options_go_to_hyper() {
    for field in [
        "Content-Length: 0",
        "Content-Length: 5",
        "content-length: abc",
        "Content-Length:",
        "Transfer-Encoding: chunked",
        "TRANSFER-ENCODING: identity",
        "Upgrade: h2c",
        "Expect: 100-continue",
        "Connection: upgrade",
        "Connection: foo",
        "Connection: keep-alive, Upgrade",
        "Connection: close, te",
    ] {
        let input = format!("GET / HTTP/1.1\r\nHost: h\r\n{field}\r\nAccept: */*\r\n\r\nbody");
        assert_decides(field, input.as_bytes(), &Decision::Other);
    }
}

#[test]
fn other_versions_connect_and_malformed_heads_go_to_hyper() {
    let many = |n: usize| {
        let fields: String = (0..n).map(|i| format!("X-{i}: {i}\r\n")).collect();
        format!("GET / HTTP/1.1\r\n{fields}\r\n").into_bytes()
    };
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(70_000));
    let cases: [(&str, &[u8]); 15] = [
        ("HTTP/1.0", b"GET / HTTP/1.0\r\nHost: h\r\n\r\n"),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"),
        ("CONNECT", b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"),
        ("NUL in a value", b"GET / HTTP/1.1\r\nHost: h\0x\r\n\r\n"),
        ("DEL in a value", b"GET / HTTP/1.1\r\nHost: h\x7fx\r\n\r\n"),
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nX: a\r\n b\r\nHost: h\r\n\r\n",
        ),
        ("obs-fold, tab", b"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"),
        (
            "space before the colon",
            b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        ),
        (
            "tab before the colon",
            b"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n",
        ),
        ("bare CR", b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"),
        ("no colon", b"GET / HTTP/1.1\r\nHost\r\n\r\n"),
        ("two spaces", b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n"),
        (
            "a target http refuses",
            b"GET http:// HTTP/1.1\r\nHost: h\r\n\r\n",
        ),
        ("a target too long for http", long_target.as_bytes()),
        ("101 fields", &many(101)),
    ];
    for (what, input) in cases {
        assert_decides(what, input, &Decision::Other);
        if what.starts_with("a target") {
            // httparse takes these: `http` refuses them after the head was split off, and
            // the bytes must come back as they were (checked in `run`).
            assert!(httparse_len(input).is_some(), "{what}");
        }
    }
    assert!(matches!(
        check(&many(100), &mut Rng(7)),
        Decision::Simple { .. }
    ));
    let long_ok = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(8_000));
    assert!(matches!(
        check(long_ok.as_bytes(), &mut Rng(7)),
        Decision::Simple { .. }
    ));
}

#[test]
fn a_bare_lf_anywhere_in_the_head_is_refused() {
    for (what, input) in [
        ("request line", &b"GET / HTTP/1.1\nHost: h\r\n\r\n"[..]),
        ("a field", b"GET / HTTP/1.1\r\nHost: h\nAccept: */*\r\n\r\n"),
        ("an empty field", b"GET / HTTP/1.1\r\nX:\n\r\n"),
        ("the last line", b"GET / HTTP/1.1\r\nHost: h\r\n\n"),
        ("the last line, no fields", b"GET / HTTP/1.1\r\n\n"),
        ("every line", b"GET / HTTP/1.1\nHost: h\n\n"),
        ("behind empty lines", b"\r\n\r\nGET / HTTP/1.1\nHost: h\n\n"),
        (
            "with a body",
            b"POST / HTTP/1.1\r\nContent-Length: 1\n\r\nx",
        ),
    ] {
        assert_decides(what, input, &Decision::BareLf);
    }
}

#[test]
fn empty_lines_before_the_request_line_are_skipped() {
    for input in [
        &b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\nrest"[..],
        b"\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\nrest",
        // Bare LF empty lines too, as httparse skips them.
        b"\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\nrest",
    ] {
        let (req, close, rest) = simple(input);
        assert_eq!(
            (req.uri().path(), close, &rest[..]),
            ("/", false, &b"rest"[..])
        );
    }
    assert_decides(
        "CR CR LF",
        b"\r\r\nGET / HTTP/1.1\r\n\r\n",
        &Decision::Other,
    );
}

#[test]
fn incomplete_heads_take_nothing() {
    let input = b"\r\nGET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    for k in 0..input.len() {
        assert_eq!(
            run(&mut exact(&input[..k])),
            Decision::Partial,
            "prefix {k}"
        );
        let mut spare = BytesMut::with_capacity(1024);
        spare.extend_from_slice(&input[..k]);
        assert_eq!(run(&mut spare), Decision::Partial, "prefix {k}, spare");
    }
    assert!(matches!(
        check(input, &mut Rng(7)),
        Decision::Simple { close: true, .. }
    ));
}

const BASES: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Dup: 1\r\n\
      X-Dup: 2\r\n\r\nGET /next HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"HEAD http://example.com:8080/x?y HTTP/1.1\r\nHost: example.com:8080\r\n\
      Connection: keep-alive\r\n\r\n",
    b"DELETE /item/7 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: h\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"GET / HTTP/1.1\nHost: h\n\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
    b"GET / HTTP/1.1\r\nEmpty:\r\nSpaces:   padded value \t\r\nObs: caf\xc3\xa9\r\n\r\n",
];

const PIECES: &[&[u8]] = &[
    b"\n",
    b"\r",
    b"\0",
    b" ",
    b":",
    b"\t",
    b"\r\n",
    b"\r\n ",
    b"\r\n\t",
    b"\x7f",
    b"\x80",
    b"\xff",
    b",",
    b"/",
    b"?",
    b"#",
    b"%",
    b"@",
    b"[",
    b"\"",
    b"Content-Length: 0\r\n",
    b"content-length:1\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Upgrade: websocket\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"Connection: upgrade\r\n",
    b"connection: Keep-Alive, CLOSE\r\n",
    b"Connection: close,\r\n",
    b"Host: example.com\r\n",
    b"X-Dup: 1\r\nX-Dup: 2\r\n",
    b"HTTP/1.0",
    b"HTTP/1.1",
    b"HTTP/2.0",
    b"CONNECT",
    b"GET",
    b"http://example.com",
    b"*",
];

const METHODS: &[&[u8]] = &[
    b"GET", b"HEAD", b"POST", b"CONNECT", b"PATCH", b"X-Y", b"get",
];
const VERSIONS: &[&[u8]] = &[
    b"HTTP/1.0",
    b"HTTP/1.1",
    b"HTTP/2.0",
    b"HTTP/1.",
    b"http/1.1",
];

/// Where lines start in `input`.
fn line_starts(input: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(
        (0..input.len())
            .filter(|&i| input[i] == b'\n')
            .map(|i| i + 1),
    );
    starts
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    let len = input.len();
    let at = rng.below(len + 1);
    let pick = |rng: &mut Rng, from: &[&'static [u8]]| from[rng.below(from.len())];
    match rng.below(12) {
        0 if len > 0 => input[at.min(len - 1)] = rng.next() as u8,
        1 if len > 0 => input[at.min(len - 1)] ^= 1 << rng.below(8),
        2 => _ = input.splice(at..at, pick(rng, PIECES).iter().copied()),
        3 => {
            let starts = line_starts(input);
            let at = starts[rng.below(starts.len())];
            input.splice(at..at, pick(rng, PIECES).iter().copied());
        }
        4 if len > 0 => {
            let end = (at + 1 + rng.below(8)).min(len);
            input.drain(at.min(len - 1)..end);
        }
        5 => {
            // A line repeated at another line's start.
            let starts = line_starts(input);
            let i = rng.below(starts.len());
            let end = starts.get(i + 1).copied().unwrap_or(len);
            let line = input[starts[i]..end].to_vec();
            let to = starts[rng.below(starts.len())];
            input.splice(to..to, line);
        }
        6 => {
            let end = input.iter().position(|&b| b == b' ').unwrap_or(0);
            input.splice(..end, pick(rng, METHODS).iter().copied());
        }
        7 => {
            if let Some(v) = input.windows(8).position(|w| w.starts_with(b"HTTP/")) {
                input.splice(v..v + 8, pick(rng, VERSIONS).iter().copied());
            }
        }
        8 => {
            // A longer target.
            let at = input.iter().position(|&b| b == b'/').map_or(at, |p| p + 1);
            let unit: &[u8] = [&b"a"[..], b"%2F", b"\xc3\xa9"][rng.below(3)];
            let top = if rng.below(4) == 0 { 3000 } else { 60 };
            let n = 1 + rng.below(top);
            input.splice(at..at, unit.repeat(n));
        }
        9 => {
            // A CRLF made a bare LF.
            let crlfs: Vec<usize> = (0..len.saturating_sub(1))
                .filter(|&i| &input[i..i + 2] == b"\r\n")
                .collect();
            if !crlfs.is_empty() {
                input.remove(crlfs[rng.below(crlfs.len())]);
            }
        }
        10 => input.truncate(at),
        _ => {
            // Close to the limit of 100 fields.
            let starts = line_starts(input);
            let at = starts[1.min(starts.len() - 1)];
            let n = 95 + rng.below(10);
            let fields: Vec<u8> = (0..n)
                .flat_map(|i| format!("X-{i}: v\r\n").into_bytes())
                .collect();
            input.splice(at..at, fields);
        }
    }
}

#[test]
fn mutated_heads_decide_alike_in_every_split_and_agree_with_httparse() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen = [0usize; 4];
    let mut inputs = 0;
    for base in BASES {
        for _ in 0..150 {
            let mut input = base.to_vec();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut rng, &mut input);
            }
            let d = check(&input, &mut rng);
            seen[match d {
                Decision::Partial => 0,
                Decision::Other => 1,
                Decision::BareLf => 2,
                Decision::Simple { .. } => 3,
            }] += 1;
            inputs += 1;
        }
        let _ = check(base, &mut rng);
    }
    // The corpus reaches every decision often enough to mean something.
    assert!(
        seen.iter().all(|&n| n >= inputs / 50),
        "{seen:?} of {inputs}"
    );
}

#[test]
fn a_head_longer_than_the_limit_is_left_to_hyper_and_the_end_test_finds_every_line_end() {
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789\r\n\r\n";
    let mut buf = BytesMut::from(&head[..]);
    assert!(matches!(
        parse_within(&mut buf, head.len() - 1),
        Parsed::Other
    ));
    assert_eq!(
        &buf[..],
        &head[..],
        "bytes taken from a head over the limit"
    );
    assert!(matches!(
        parse_within(&mut buf, head.len()),
        Parsed::Simple { .. }
    ));
    // Every prefix that httparse could read as complete is one `may_end_head` lets through,
    // whatever was already scanned (as the session calls it: from the previous length).
    for end in [&b"\r\n\r\n"[..], b"\n\n", b"\r\n\n", b"\n\r\n"] {
        let mut whole = b"GET / HTTP/1.1\r\nHost: a".to_vec();
        whole.extend_from_slice(end);
        for split in 0..whole.len() {
            let (seen, _) = whole.split_at(split);
            let empty_line =
                seen.windows(2).any(|w| w == b"\n\n") || seen.windows(3).any(|w| w == b"\n\r\n");
            assert_eq!(may_end_head(seen, 0), empty_line, "{seen:?}");
            assert!(
                may_end_head(&whole, split),
                "end {end:?} missed after {split} bytes"
            );
        }
    }
    assert!(!may_end_head(b"GET / HTTP/1.1\r\nHost: a\r\n", 0));
}
