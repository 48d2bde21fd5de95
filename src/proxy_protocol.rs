//! PROXY protocol v1 (text) and v2 (binary) headers, on listeners that enable them.
//!
//! A load balancer in front of tether (HAProxy, a cloud LB) prepends the real client address to
//! the TCP stream. The parser is incremental and never over-reads: it says how many bytes it
//! needs in total, the reader reads exactly those, and the rest of the stream is HTTP (or TLS).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// The v2 signature.
const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 line, CRLF included (the spec's bound).
const V1_MAX: usize = 107;
/// Longest v2 payload accepted (addresses plus TLVs).
const V2_MAX_PAYLOAD: usize = 1024;

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The connection was proxied for this client (source) to this destination.
    Proxied {
        /// The real client.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// A health check or an unknown protocol from the proxy itself: keep the TCP peer.
    Local,
}

/// How far a parse of the bytes read so far got: a header and its length, or how many bytes
/// are needed before it can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A complete header of `len` bytes.
    Done(Header, usize),
    /// At least this many bytes are needed in total.
    Need(usize),
}

/// Why a header was refused (the connection is closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PROXY protocol header: {0}")]
pub struct Invalid(pub &'static str);

/// Parses the start of a stream.
pub fn parse(buf: &[u8]) -> Result<Parsed, Invalid> {
    if buf.len() < V2_SIG.len() {
        // Not enough to tell v1 from v2; both prefixes must still match.
        let v1 = b"PROXY "
            .get(..buf.len().min(6))
            .is_some_and(|p| buf.starts_with(p));
        let v2 = V2_SIG.starts_with(buf);
        return if v1 || v2 {
            Ok(Parsed::Need(V2_SIG.len()))
        } else {
            Err(Invalid("missing PROXY signature"))
        };
    }
    if buf.starts_with(&V2_SIG) {
        parse_v2(buf)
    } else if buf.starts_with(b"PROXY ") {
        parse_v1(buf)
    } else {
        Err(Invalid("missing PROXY signature"))
    }
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, Invalid> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(Invalid("v1 line longer than 107 bytes"))
        } else {
            Ok(Parsed::Need(buf.len() + 1))
        };
    };
    if end + 2 > V1_MAX {
        return Err(Invalid("v1 line longer than 107 bytes"));
    }
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| Invalid("v1 line is not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        ["UNKNOWN", ..] => Header::Local,
        [proto @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip = |s: &str| -> Result<IpAddr, Invalid> {
                let ip: IpAddr = s.parse().map_err(|_| Invalid("v1 address"))?;
                match (*proto, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(Invalid("v1 address family mismatch")),
                }
            };
            let port = |s: &str| -> Result<u16, Invalid> {
                // No sign, no leading zeros beyond "0", digits only.
                if s.is_empty()
                    || (s.len() > 1 && s.starts_with('0'))
                    || !s.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(Invalid("v1 port"));
                }
                s.parse().map_err(|_| Invalid("v1 port"))
            };
            Header::Proxied {
                source: SocketAddr::new(ip(src)?, port(sport)?),
                destination: SocketAddr::new(ip(dst)?, port(dport)?),
            }
        }
        _ => return Err(Invalid("v1 fields")),
    };
    Ok(Parsed::Done(header, end + 2))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, Invalid> {
    if buf.len() < 16 {
        return Ok(Parsed::Need(16));
    }
    let (ver_cmd, fam, len) = (
        buf[12],
        buf[13],
        usize::from(u16::from_be_bytes([buf[14], buf[15]])),
    );
    if ver_cmd >> 4 != 2 {
        return Err(Invalid("v2 version"));
    }
    if len > V2_MAX_PAYLOAD {
        return Err(Invalid("v2 payload too long"));
    }
    let total = 16 + len;
    if buf.len() < total {
        return Ok(Parsed::Need(total));
    }
    let body = &buf[16..total];
    let header = match (ver_cmd & 0x0f, fam) {
        (0, _) => Header::Local,
        (1, 0x11) if body.len() >= 12 => {
            let ip = |o: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[o],
                    body[o + 1],
                    body[o + 2],
                    body[o + 3],
                ))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            Header::Proxied {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            }
        }
        (1, 0x21) if body.len() >= 36 => {
            let ip = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&body[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            Header::Proxied {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            }
        }
        // UNSPEC, UDP, unix sockets: nothing usable as a client address.
        (1, 0x00 | 0x12 | 0x22 | 0x31 | 0x32) => Header::Local,
        (1, 0x11 | 0x21) => return Err(Invalid("v2 address block too short")),
        (1, _) => return Err(Invalid("v2 address family")),
        _ => return Err(Invalid("v2 command")),
    };
    Ok(Parsed::Done(header, total))
}

/// Reads exactly one header from `io` within `timeout`.
pub async fn read<R: tokio::io::AsyncRead + Unpin>(
    io: &mut R,
    timeout: Duration,
) -> Result<Header, Invalid> {
    let reading = async {
        let mut buf = Vec::with_capacity(64);
        let mut need = V2_SIG.len();
        loop {
            let have = buf.len();
            buf.resize(need, 0);
            io.read_exact(&mut buf[have..need])
                .await
                .map_err(|_| Invalid("connection closed before the header ended"))?;
            match parse(&buf)? {
                Parsed::Done(header, _) => return Ok(header),
                Parsed::Need(n) => need = n,
            }
        }
    };
    tokio::time::timeout(timeout, reading)
        .await
        .unwrap_or(Err(Invalid("header not received in time")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(buf: &[u8]) -> (Header, usize) {
        match parse(buf) {
            Ok(Parsed::Done(h, n)) => (h, n),
            other => panic!("{other:?} for {buf:?}"),
        }
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let (h, n) = done(b"PROXY TCP4 192.0.2.7 127.0.0.1 56324 8080\r\nGET / HTTP/1.1\r\n");
        assert_eq!(n, 43);
        assert_eq!(
            h,
            Header::Proxied {
                source: "192.0.2.7:56324".parse().unwrap(),
                destination: "127.0.0.1:8080".parse().unwrap()
            }
        );
        let (h, _) = done(b"PROXY TCP6 2001:db8::1 ::1 4000 443\r\n");
        assert!(
            matches!(h, Header::Proxied { source, .. } if source == "[2001:db8::1]:4000".parse().unwrap())
        );
        assert_eq!(done(b"PROXY UNKNOWN\r\n").0, Header::Local);
    }

    #[test]
    fn v1_rejects_malformed_lines() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 127.0.0.1 56324\r\n"[..],
            b"PROXY TCP4 ::1 127.0.0.1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 070000 2\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = [b"PROXY ".as_slice(), &[b'1'; 120]].concat();
        assert!(parse(&long).is_err());
    }

    #[test]
    fn incomplete_input_asks_for_more_without_overreading() {
        assert_eq!(parse(b"PRO"), Ok(Parsed::Need(12)));
        assert_eq!(parse(b"PROXY TCP4 1"), Ok(Parsed::Need(13)));
        assert_eq!(parse(&V2_SIG), Ok(Parsed::Need(16)));
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut v = V2_SIG.to_vec();
        v.push(0x20 | cmd);
        v.push(fam);
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn v2_ipv4_ipv6_local_and_tlvs() {
        let body = [
            10, 0, 0, 9, 127, 0, 0, 1, 0x1f, 0x90, 0, 80, /* a TLV */ 0x04, 0, 1, 7,
        ];
        let buf = v2(1, 0x11, &body);
        let (h, n) = done(&buf);
        assert_eq!(n, buf.len());
        assert!(
            matches!(h, Header::Proxied { source, .. } if source == "10.0.0.9:8080".parse().unwrap())
        );
        let mut body6 = vec![0u8; 36];
        body6[15] = 1;
        body6[32..34].copy_from_slice(&443u16.to_be_bytes());
        let (h, _) = done(&v2(1, 0x21, &body6));
        assert!(
            matches!(h, Header::Proxied { source, .. } if source == "[::1]:443".parse().unwrap())
        );
        assert_eq!(done(&v2(0, 0x00, &[])).0, Header::Local);
        let partial = v2(1, 0x11, &body);
        assert_eq!(parse(&partial[..20]), Ok(Parsed::Need(partial.len())));
    }

    #[test]
    fn v2_rejects_bad_versions_and_short_blocks() {
        let mut bad_version = v2(1, 0x11, &[0; 12]);
        bad_version[12] = 0x11;
        assert!(parse(&bad_version).is_err());
        assert!(parse(&v2(1, 0x11, &[0; 5])).is_err());
        assert!(parse(&v2(7, 0x11, &[0; 12])).is_err());
        let mut huge = V2_SIG.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(parse(&huge).is_err());
    }
}
