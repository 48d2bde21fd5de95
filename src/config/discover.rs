//! Validation of what DNS feeds: a backend `addr` given as `name:port`, a pool's `discover`
//! table, and `[resolver]`. Nothing here resolves a name: `tether check` needs no network.

use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;

use super::problems::Problems;
use super::raw::{RawDiscover, RawResolver};
use super::types::{DiscoverConfig, DiscoverQuery, ResolverConfig, MAX_WEIGHT};

/// A backend address as written: a literal socket address, or a name resolved while running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum BackendAddr {
    /// `IP:port` (IPv6 in brackets).
    Literal(SocketAddr),
    /// `name:port`.
    Named(String, u16),
}

/// Reads a backend `addr`: `IP:port` or `name:port`; anything else is reported at `key`.
pub(super) fn backend_addr(
    p: &mut Problems<'_>,
    key: &str,
    raw: &Spanned<String>,
) -> Option<BackendAddr> {
    let text = raw.get_ref();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(BackendAddr::Literal(addr));
    }
    let named = text
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        .filter(|(host, port)| *port != 0 && is_dns_name(host));
    match named {
        Some((host, port)) => Some(BackendAddr::Named(host.to_ascii_lowercase(), port)),
        None => {
            p.add(key, raw, super::problems::bad_backend_addr(text));
            None
        }
    }
}

/// True for a host name DNS can look up: dot-separated labels of letters, digits, `-` and `_`
/// (SRV names start with `_`), at most 63 bytes each and 253 in all, not ending in a number
/// (that is a malformed IP address, not a name).
pub(super) fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = host.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let last_numeric = host
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    !host.is_empty() && host.len() <= 253 && labels_ok && !last_numeric
}

/// Validates `pool.NAME.discover`.
pub(super) fn validate_discover(
    p: &mut Problems<'_>,
    pool_key: &str,
    d: &Spanned<RawDiscover>,
) -> Option<DiscoverConfig> {
    let key = format!("{pool_key}.discover");
    let raw = d.get_ref();
    let before = p.list.len();
    let interval = p.duration(&format!("{key}.interval"), &raw.interval, Duration::ZERO);
    let weight = match &raw.weight {
        None => 1,
        Some(w) if (1..=i64::from(MAX_WEIGHT)).contains(w.get_ref()) => *w.get_ref() as u32,
        Some(w) => {
            p.add(
                &format!("{key}.weight"),
                w,
                format_args!("weight {} out of range 1..={MAX_WEIGHT}", w.get_ref()),
            );
            1
        }
    };
    let name = |p: &mut Problems<'_>, field: &str, n: &Spanned<String>| {
        let ok = is_dns_name(n.get_ref());
        if !ok {
            p.add(
                &format!("{key}.{field}"),
                n,
                format_args!("{:?} is not a DNS name", n.get_ref()),
            );
        }
        ok.then(|| n.get_ref().to_ascii_lowercase())
    };
    let query = match (&raw.dns, &raw.srv) {
        (Some(dns), None) => {
            let port = match &raw.port {
                Some(port) if (1..=65535).contains(port.get_ref()) => Some(*port.get_ref() as u16),
                Some(port) => {
                    p.add(&format!("{key}.port"), port, "must be between 1 and 65535");
                    None
                }
                None => {
                    p.add(
                        &key,
                        d,
                        "discover.dns needs a port: discover = { dns = \"app.internal\", port = 8080 }",
                    );
                    None
                }
            };
            let name = name(p, "dns", dns);
            name.zip(port)
                .map(|(name, port)| DiscoverQuery::Dns { name, port })
        }
        (None, Some(srv)) => {
            if let Some(port) = &raw.port {
                p.add(
                    &format!("{key}.port"),
                    port,
                    "an SRV record carries its own port; remove port",
                );
            }
            if let Some(w) = &raw.weight {
                p.add(
                    &format!("{key}.weight"),
                    w,
                    "an SRV record carries its own weight; remove weight",
                );
            }
            name(p, "srv", srv).map(|name| DiscoverQuery::Srv { name })
        }
        _ => {
            p.add(
                &key,
                d,
                "expected exactly one of dns = \"NAME\" (with port) or srv = \"_service._proto.NAME\"",
            );
            None
        }
    };
    let query = query?;
    (p.list.len() == before).then_some(DiscoverConfig {
        query,
        interval: (!interval.is_zero()).then_some(interval),
        weight,
    })
}

/// Validates `[resolver]` (absent: the system's name servers, default TTL bounds).
pub(super) fn validate_resolver(p: &mut Problems<'_>, raw: Option<&RawResolver>) -> ResolverConfig {
    let defaults = ResolverConfig::default();
    let Some(raw) = raw else { return defaults };
    let mut nameservers = Vec::new();
    for (i, ns) in raw.nameservers.iter().flat_map(|n| n.get_ref()).enumerate() {
        // A bare IP means the standard port.
        let parsed = ns
            .get_ref()
            .parse::<SocketAddr>()
            .or_else(|_| ns.get_ref().parse().map(|ip| SocketAddr::new(ip, 53)));
        match parsed {
            Ok(addr) => nameservers.push(addr),
            Err(_) => p.add(
                &format!("resolver.nameservers[{i}]"),
                ns,
                format_args!(
                    "invalid name server {:?}; expected IP or IP:port",
                    ns.get_ref()
                ),
            ),
        }
    }
    let min_ttl = p.duration("resolver.min_ttl", &raw.min_ttl, defaults.min_ttl);
    let max_ttl = p.duration("resolver.max_ttl", &raw.max_ttl, defaults.max_ttl);
    if let Some(at) = raw.max_ttl.as_ref().or(raw.min_ttl.as_ref()) {
        if min_ttl > max_ttl {
            p.add(
                "resolver.max_ttl",
                at,
                format_args!("max_ttl ({max_ttl:?}) must not be below min_ttl ({min_ttl:?})"),
            );
        }
    }
    ResolverConfig {
        nameservers,
        min_ttl,
        max_ttl,
        timeout: p.duration("resolver.timeout", &raw.timeout, defaults.timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::is_dns_name;

    #[test]
    fn names_and_non_names() {
        for ok in [
            "app",
            "app.internal",
            "_http._tcp.app.internal",
            "a-1.b_2.c.",
        ] {
            assert!(is_dns_name(ok), "{ok}");
        }
        for bad in [
            "",
            "1.2.3.4.5",
            "-a.b",
            "a..b",
            "a b",
            "::1",
            "app:80",
            "10.0.0",
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }
}
