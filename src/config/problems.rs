//! Problems found in a config file, each with its key path and line, collected so that every
//! one is reported at once.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;

/// Every problem found in a config file, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Why `s` is not an `IP:port` socket address, and what would be: `invalid socket address
/// "10.0.0.5": no port; expected IP:port, e.g. "10.0.0.5:9001"`.
pub(super) fn bad_addr(s: &str) -> String {
    describe_bad_addr(s, false)
}

/// [`bad_addr`] for an address that may also be `name:port` (a backend's).
pub(super) fn bad_backend_addr(s: &str) -> String {
    describe_bad_addr(s, true)
}

fn describe_bad_addr(s: &str, names: bool) -> String {
    let form = if names {
        "IP:port or name:port"
    } else {
        "IP:port"
    };
    let expected = format!("expected {form}, e.g. \"127.0.0.1:9001\"");
    let expected = expected.as_str();
    let why = if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        let example = SocketAddr::new(ip, 9001);
        format!("no port; expected {form}, e.g. \"{example}\"")
    } else {
        let split = match s.strip_prefix('[') {
            Some(rest) => rest.split_once("]:"),
            None => s.rsplit_once(':'),
        };
        match split {
            None => format!("no port; {expected}"),
            Some((_, "")) => format!("no port after the colon; {expected}"),
            Some((_, port)) if !port.bytes().all(|b| b.is_ascii_digit()) => {
                format!("port {port:?} is not a number; {expected}")
            }
            Some((_, port)) if port.parse::<u16>().is_err() => {
                format!("port {port} is out of range (0-65535)")
            }
            Some((host, _)) if host.contains(':') && !s.starts_with('[') => {
                "an IPv6 address goes in brackets, e.g. \"[::1]:9001\"".to_string()
            }
            Some((host, _)) if names => {
                format!("{host:?} is neither an IP address nor a DNS name; {expected}")
            }
            Some((host, _)) => format!("{host:?} is not an IP address; {expected}"),
        }
    };
    format!("invalid socket address {s:?}: {why}")
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Collects problems with their key paths and lines.
pub(super) struct Problems<'a> {
    text: &'a str,
    /// (line, message); problems without a line sort last.
    pub(super) list: Vec<(usize, String)>,
    /// Warnings, in the order found.
    pub(super) warnings: Vec<String>,
}

impl<'a> Problems<'a> {
    /// No problems yet in `text`.
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            text,
            list: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(super) fn add<T>(&mut self, key: &str, at: &Spanned<T>, msg: impl fmt::Display) {
        let line = line_of(self.text, at.span().start);
        self.list
            .push((line, format!("{key} (line {line}): {msg}")));
    }

    pub(super) fn warn<T>(&mut self, key: &str, at: &Spanned<T>, msg: impl fmt::Display) {
        let line = line_of(self.text, at.span().start);
        self.warnings.push(format!("{key} (line {line}): {msg}"));
    }

    pub(super) fn add_plain(&mut self, key: &str, msg: impl fmt::Display) {
        self.list.push((usize::MAX, format!("{key}: {msg}")));
    }

    pub(super) fn addr(&mut self, key: &str, raw: &Spanned<String>) -> Option<SocketAddr> {
        match raw.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.add(key, raw, bad_addr(raw.get_ref()));
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        key: &str,
        raw: &Option<Spanned<String>>,
        default: Duration,
    ) -> Duration {
        let d = self.duration_or_zero(key, raw, default);
        match raw {
            Some(v) if d.is_zero() => {
                self.add(key, v, "must be greater than zero");
                default
            }
            _ => d,
        }
    }

    /// A duration where zero is allowed (it switches something off).
    pub(super) fn duration_or_zero(
        &mut self,
        key: &str,
        raw: &Option<Spanned<String>>,
        default: Duration,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        match humantime::parse_duration(raw.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                self.add(
                    key,
                    raw,
                    format_args!(
                        "invalid duration {:?} ({e}); use e.g. \"500ms\", \"2s\", \"1m\"",
                        raw.get_ref()
                    ),
                );
                default
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bad_addr;

    #[test]
    fn a_bad_address_says_what_is_wrong_and_what_is_expected() {
        let cases = [
            (
                "10.0.0.5",
                "no port; expected IP:port, e.g. \"10.0.0.5:9001\"",
            ),
            ("::1", "no port; expected IP:port, e.g. \"[::1]:9001\""),
            ("app", "no port; expected IP:port"),
            ("127.0.0.1:", "no port after the colon"),
            ("127.0.0.1:99999", "port 99999 is out of range (0-65535)"),
            ("127.0.0.1:http", "port \"http\" is not a number"),
            ("app:8080", "\"app\" is not an IP address; expected IP:port"),
            ("fe80::1:8080:x", "is not a number"),
            ("fe80::1%eth0:80", "an IPv6 address goes in brackets"),
        ];
        for (input, expected) in cases {
            let msg = bad_addr(input);
            assert!(
                msg.starts_with(&format!("invalid socket address {input:?}: ")),
                "{msg}"
            );
            assert!(msg.contains(expected), "{input}: {msg}");
        }
    }
}
