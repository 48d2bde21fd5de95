//! The client address ip_hash keys on: the TCP peer, or, only when the peer is a trusted proxy,
//! the right-most untrusted hop its forwarding headers name.
//!
//! Every hop left of the first untrusted one was written by a party we cannot vouch for, so the
//! walk goes right to left and stops there. A hop that is malformed, obfuscated (`_hidden`) or
//! `unknown` stops the walk too, and the last valid hop wins: skipping past an unreadable hop
//! would let whoever wrote the hops to its left choose the address. Addresses come back in
//! canonical form (`::ffff:10.0.0.1` is `10.0.0.1`), so a client hashes the same on IPv4 and
//! dual-stack listeners.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::header::{HeaderMap, FORWARDED};

/// `X-Forwarded-For` (the http crate has no constant for it).
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// One trusted network: an address with its host bits clear, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    V4(u32, u8),
    V6(u128, u8),
}

impl Net {
    fn contains(self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Net::V4(net, len), IpAddr::V4(ip)) => u32::from(ip) & mask32(len) == net,
            (Net::V6(net, len), IpAddr::V6(ip)) => u128::from(ip) & mask128(len) == net,
            _ => false,
        }
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// The proxies whose forwarding headers tether believes: a list of IPv4 and IPv6 networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Net>,
}

impl TrustedProxies {
    /// Parses CIDRs and bare addresses (`10.0.0.0/8`, `127.0.0.1`, `::1/128`). An entry with
    /// host bits set (`10.0.0.1/8`) is refused: it is usually a typo that trusts far more than
    /// was meant. The error names the bad entry.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let nets = list
            .iter()
            .map(|entry| parse_net(entry).map_err(|why| format!("trusted proxy {entry:?}: {why}")))
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }

    /// True when no proxy is trusted, so the peer is always the client.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy; IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.nets
            .iter()
            .any(|net| net.contains(canonical) || net.contains(ip))
    }

    /// The client address: the TCP peer unless the peer is trusted; then the right-most
    /// address in X-Forwarded-For (all values of all such headers, in order) that is not itself
    /// trusted, or, without X-Forwarded-For, the same walk over the `for=` of `Forwarded`
    /// (RFC 7239). Malformed, obfuscated and `unknown` hops stop the walk at the last valid
    /// hop; a chain of trusted hops only yields its left-most.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let hops = if headers.contains_key(X_FORWARDED_FOR) {
            forwarded_for_hops(headers)
        } else if headers.contains_key(FORWARDED) {
            forwarded_hops(headers)
        } else {
            return peer;
        };
        let mut last = peer;
        for hop in hops.into_iter().rev() {
            let Some(ip) = hop else { return last };
            let ip = ip.to_canonical();
            if !self.contains(ip) {
                return ip;
            }
            last = ip;
        }
        last
    }
}

fn parse_net(entry: &str) -> Result<Net, String> {
    let (addr, len) = match entry.trim().split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (entry.trim(), None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| "not an IP address or CIDR")?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len.map(|l| (l, l.parse::<u8>())) {
        None => max,
        Some((l, Ok(len))) if len <= max && l.bytes().all(|b| b.is_ascii_digit()) => len,
        Some((l, _)) => return Err(format!("prefix length {l:?} is not in 0..={max}")),
    };
    let (net, masked) = match ip {
        IpAddr::V4(ip) => {
            let n = u32::from(ip) & mask32(len);
            (Net::V4(n, len), IpAddr::V4(n.into()))
        }
        IpAddr::V6(ip) => {
            let n = u128::from(ip) & mask128(len);
            (Net::V6(n, len), IpAddr::V6(n.into()))
        }
    };
    if masked != ip {
        return Err(format!("host bits are set; did you mean {masked}/{len}?"));
    }
    // A network inside ::ffff:0:0/96 is an IPv4 one in disguise; addresses are matched in
    // canonical form, so it must be too.
    Ok(match net {
        Net::V6(n, len) if len >= 96 && n >> 32 == 0xffff => Net::V4(n as u32, len - 96),
        net => net,
    })
}

/// Hops of every X-Forwarded-For value, left to right; `None` for one that does not parse.
fn forwarded_for_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        match value.to_str() {
            Ok(value) => hops.extend(value.split(',').map(|hop| parse_node(hop.trim()))),
            Err(_) => hops.push(None),
        }
    }
    hops
}

/// The `for=` of every Forwarded element, left to right; `None` for an element without a
/// usable one. A value that does not parse ends in `None`, so the walk stops at it.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all(FORWARDED) {
        let parsed = value.to_str().ok().and_then(forwarded_elements);
        match parsed {
            Some(elements) => hops.extend(elements),
            None => hops.push(None),
        }
    }
    hops
}

/// Parses one Forwarded value (`1#( pair *( ";" pair ) )`, pair = token "=" token /
/// quoted-string) into each element's `for=` node, or `None` if it is not well-formed.
fn forwarded_elements(value: &str) -> Option<Vec<Option<IpAddr>>> {
    let mut rest = value;
    let mut elements = Vec::new();
    loop {
        let mut node = None;
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            let name_len = rest.find(|c: char| !is_tchar(c)).unwrap_or(rest.len());
            let (name, after) = rest.split_at(name_len);
            let after = after.strip_prefix('=')?;
            let (pair_value, after) = match after.strip_prefix('"') {
                Some(quoted) => unquote(quoted)?,
                None => {
                    let len = after.find(|c: char| !is_tchar(c)).unwrap_or(after.len());
                    (after[..len].to_string(), &after[len..])
                }
            };
            if name.is_empty() || pair_value.is_empty() {
                return None;
            }
            if name.eq_ignore_ascii_case("for") {
                if node.is_some() {
                    return None; // two `for` in one element: which one is the hop?
                }
                node = Some(parse_node(&pair_value));
            }
            rest = after.trim_start_matches([' ', '\t']);
            match rest.chars().next() {
                Some(';') => rest = &rest[1..],
                Some(',') | None => break,
                Some(_) => return None,
            }
        }
        elements.push(node.flatten());
        match rest.strip_prefix(',') {
            Some(after) => rest = after,
            None => return Some(elements),
        }
    }
}

/// The content of a quoted-string whose opening quote is already consumed, and what follows it.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// A node as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:443`; the port may be obfuscated (`_abc`). `unknown` and obfuscated
/// identifiers (`_hidden`) name no address.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = inner.parse().ok()?;
        return (after.is_empty() || is_port(after.strip_prefix(':')?)).then_some(IpAddr::V6(ip));
    }
    let (ip, port) = node.rsplit_once(':')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    is_port(port).then_some(IpAddr::V4(ip))
}

fn is_port(port: &str) -> bool {
    match port.strip_prefix('_') {
        // RFC 7239 obfport: "_" 1*(ALPHA / DIGIT / "." / "_" / "-")
        Some(obf) => {
            !obf.is_empty()
                && obf
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        }
        None => port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn trusted(list: &[&str]) -> TrustedProxies {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        TrustedProxies::parse(&list).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(name, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    /// Asserts the client seen through a trusted proxy at 10.0.0.1 for each header's values.
    fn check(name: &'static str, cases: &[(&[&str], &str)]) {
        let t = trusted(&["10.0.0.0/8", "::1", "fd00::/8"]);
        for (values, expected) in cases {
            let got = t.client_ip(ip("10.0.0.1"), &headers(name, values));
            assert_eq!(got, ip(expected), "{name}: {values:?}");
        }
    }

    #[test]
    fn parses_cidrs_and_names_bad_entries() {
        let t = trusted(&[
            "10.0.0.0/8",
            "127.0.0.1",
            " ::1/128 ",
            "fd00::/8",
            "0.0.0.0/0",
        ]);
        assert_eq!(t.nets.len(), 5);
        assert!(TrustedProxies::parse(&[]).unwrap().is_empty());
        for (bad, why) in [
            ("10.0.0.0/33", "not in 0..=32"),
            ("::/129", "not in 0..=128"),
            ("10.0.0.0/-1", "not in"),
            ("10.0.0.0/+8", "not in"),
            ("10.0.0.0/", "not in"),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
            ("fd00::1/8", "did you mean fd00::/8"),
            ("10.0.0", "not an IP"),
            ("example.com", "not an IP"),
            ("", "not an IP"),
        ] {
            let list = vec!["127.0.0.1".to_string(), bad.to_string()];
            let err = TrustedProxies::parse(&list).unwrap_err();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains(why),
                "{err}"
            );
        }
    }

    #[test]
    fn contains_v4_v6_and_mapped() {
        let t = trusted(&["127.0.0.0/8", "10.1.0.0/16", "::1", "2001:db8::/32"]);
        for yes in [
            "127.255.0.1",
            "10.1.200.3",
            "::1",
            "2001:db8:ffff::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(t.contains(ip(yes)), "{yes}");
        }
        for no in [
            "10.2.0.1",
            "::2",
            "2001:db9::1",
            "::ffff:11.0.0.1",
            "128.0.0.1",
        ] {
            assert!(!t.contains(ip(no)), "{no}");
        }
        assert!(trusted(&["::ffff:0:0/96"]).contains(ip("192.0.2.1")));
        assert!(trusted(&["::ffff:10.0.0.0/104"]).contains(ip("::ffff:10.1.2.3")));
        assert!(!trusted(&["::ffff:10.0.0.0/104"]).contains(ip("11.1.2.3")));
        assert!(trusted(&["0.0.0.0/0"]).contains(ip("8.8.8.8")));
        assert!(!trusted(&["0.0.0.0/0"]).contains(ip("::1")));
    }

    #[test]
    fn untrusted_peer_ignores_headers() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers("x-forwarded-for", &["1.1.1.1"]);
        assert_eq!(t.client_ip(ip("192.0.2.9"), &h), ip("192.0.2.9"));
        let nobody = TrustedProxies::default();
        assert_eq!(nobody.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn right_most_untrusted_forwarded_for() {
        check(
            "x-forwarded-for",
            &[
                (&["1.1.1.1"], "1.1.1.1"),
                // The client may prepend anything; only what trusted proxies appended counts.
                (&["6.6.6.6, 1.1.1.1"], "1.1.1.1"),
                (&["6.6.6.6, 1.1.1.1, 10.0.0.7, 10.9.9.9"], "1.1.1.1"),
                (&["6.6.6.6", "1.1.1.1,10.0.0.7", " 10.0.0.8 "], "1.1.1.1"),
                (&["2001:db8::1, fd00::5"], "2001:db8::1"),
                (&["1.1.1.1:5000, [2001:db8::1]:443"], "2001:db8::1"),
                (&["[2001:db8::2]"], "2001:db8::2"),
                (&["::ffff:1.1.1.1"], "1.1.1.1"),
                // An all-trusted chain yields its left-most hop.
                (&["10.0.0.9, 10.0.0.5, ::1"], "10.0.0.9"),
            ],
        );
    }

    #[test]
    fn malformed_hops_stop_at_the_last_valid_one() {
        let huge = vec!["1.1.1.1"; 10_000].join(",") + ",x";
        check(
            "x-forwarded-for",
            &[
                (&["1.1.1.1, garbage"], "10.0.0.1"),
                (&["6.6.6.6, garbage, 10.0.0.5"], "10.0.0.5"),
                (&["6.6.6.6, unknown, 10.0.0.5"], "10.0.0.5"),
                (&["6.6.6.6,, 10.0.0.5"], "10.0.0.5"),
                (&["1.1.1.1, "], "10.0.0.1"),
                (&[""], "10.0.0.1"),
                (&["1.1.1.1:99999"], "10.0.0.1"),
                (&["1.1.1.1:"], "10.0.0.1"),
                (&["[2001:db8::1"], "10.0.0.1"),
                (&["fe80::1%eth0"], "10.0.0.1"),
                (&["1.1.1.1/24"], "10.0.0.1"),
                (&[&huge], "10.0.0.1"),
            ],
        );
        let mut h = headers("x-forwarded-for", &["1.1.1.1"]);
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_header() {
        check(
            "forwarded",
            &[
                (&["for=192.0.2.60;proto=http;by=203.0.113.43"], "192.0.2.60"),
                (&["For=\"[2001:db8:cafe::17]:4711\""], "2001:db8:cafe::17"),
                (&["for=\"192.0.2.60:8080\""], "192.0.2.60"),
                (&["for=\"[2001:db8::1]:_port\""], "2001:db8::1"),
                (
                    &["for=6.6.6.6, for=1.1.1.1;proto=https, for=10.0.0.2"],
                    "1.1.1.1",
                ),
                (&["for=6.6.6.6", "for=1.1.1.1 ; by=10.0.0.1"], "1.1.1.1"),
                (&["for=10.0.0.9, for=\"[::1]\""], "10.0.0.9"),
                // Quoted strings may hide separators and escaped quotes.
                (
                    &[r#"for=1.1.1.1;x="a,b;c\"d, for=6.6.6.6", for=10.0.0.2"#],
                    "1.1.1.1",
                ),
                // Garbage on the left is behind a valid right-most hop, which still counts.
                (&["for=\"broken", "for=1.1.1.1"], "1.1.1.1"),
            ],
        );
        let mut h = headers("forwarded", &["for=6.6.6.6"]);
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("1.1.1.1"), "XFF wins");
    }

    #[test]
    fn forwarded_obfuscated_unknown_and_garbage() {
        check(
            "forwarded",
            &[
                (&["for=1.1.1.1, for=_hidden, for=10.0.0.3"], "10.0.0.3"),
                (&["for=1.1.1.1, for=unknown"], "10.0.0.1"),
                (&["for=1.1.1.1, proto=http"], "10.0.0.1"),
                (&["for=\"1.1.1.1"], "10.0.0.1"),
                (&["for=2001:db8::1"], "10.0.0.1"),
                (&["for=1.1.1.1:80"], "10.0.0.1"),
                (&["for=1.1.1.1;for=2.2.2.2"], "10.0.0.1"),
                (&["for="], "10.0.0.1"),
                (&["for=1.1.1.1;;by=x"], "10.0.0.1"),
                (&["=1.1.1.1"], "10.0.0.1"),
                (&["for 1.1.1.1"], "10.0.0.1"),
                (&["for=1.1.1.1,"], "10.0.0.1"),
                (&["for=1.1.1.1 junk"], "10.0.0.1"),
                (&[""], "10.0.0.1"),
            ],
        );
    }

    #[test]
    fn mapped_peer_is_trusted_and_canonical() {
        let t = trusted(&["127.0.0.0/8"]);
        let h = headers("x-forwarded-for", &["1.1.1.1"]);
        assert_eq!(t.client_ip(ip("::ffff:127.0.0.1"), &h), ip("1.1.1.1"));
        assert_eq!(t.client_ip(ip("::ffff:192.0.2.1"), &h), ip("192.0.2.1"));
        let none = HeaderMap::new();
        assert_eq!(t.client_ip(ip("::ffff:127.0.0.1"), &none), ip("127.0.0.1"));
    }
}
