//! Config file: raw serde structs (unknown keys rejected) validated into a typed [`Config`].
//!
//! Parsing happens in two steps so that `tether check` can report *every* problem at once:
//! serde catches structural errors (syntax, unknown keys, wrong types: the first one stops it),
//! then [`validate`] walks the raw tree and collects every semantic problem with its key path
//! and line, e.g. `pool.app.backend[1].addr (line 14): invalid socket address "x"`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

mod affinity;
mod pool;
mod raw;
mod types;

pub use types::*;

use raw::RawConfig;

/// Largest accepted backend weight; keeps the round-robin schedule small.
pub const MAX_WEIGHT: u32 = 1000;

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

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_in(&text, base)
}

/// Parses and validates config text; relative file paths are taken from the current directory.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    parse_in(text, Path::new(""))
}

/// Parses and validates config text; relative file paths are resolved against `base`.
pub fn parse_in(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let de = toml::Deserializer::new(text);
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.message().to_string();
        let line = inner
            .span()
            .map(|s| format!(" (line {})", line_of(text, s.start)))
            .unwrap_or_default();
        let path = if path == "." || path.is_empty() {
            "config".to_string()
        } else {
            path
        };
        ConfigErrors(vec![format!("{path}{line}: {msg}")])
    })?;
    validate(raw, text, base)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Collects problems with their key paths and lines.
pub(super) struct Problems<'a> {
    text: &'a str,
    /// (line, message); problems without a line sort last.
    list: Vec<(usize, String)>,
    /// Warnings, in the order found.
    pub(super) warnings: Vec<String>,
}

impl Problems<'_> {
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
                self.add(
                    key,
                    raw,
                    format_args!("invalid socket address {:?}", raw.get_ref()),
                );
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

/// Checks a listener's `tls` table and loads its certificates, so `check` catches bad files.
fn validate_tls(
    p: &mut Problems<'_>,
    key: &str,
    t: &Spanned<raw::RawTls>,
    base: &Path,
) -> Vec<CertFiles> {
    let raw = t.get_ref();
    let pairs: Vec<(String, String)> = match (&raw.cert, &raw.key, &raw.certs) {
        (Some(c), Some(k), None) => vec![(c.clone(), k.clone())],
        (None, None, Some(list)) if !list.is_empty() => list
            .iter()
            .map(|c| (c.cert.clone(), c.key.clone()))
            .collect(),
        _ => {
            p.add(
                key,
                t,
                "expected { cert = \"...\", key = \"...\" } or { certs = [{ cert, key }, ...] }",
            );
            return Vec::new();
        }
    };
    let files: Vec<CertFiles> = pairs
        .into_iter()
        .map(|(cert, key)| CertFiles {
            cert: crate::tls::resolve(base, Path::new(&cert)),
            key: crate::tls::resolve(base, Path::new(&key)),
        })
        .collect();
    if let Err(e) = crate::tls::acceptor(&files) {
        p.add(key, t, e);
    }
    files
}

fn validate(raw: RawConfig, text: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let mut p = Problems {
        text,
        list: Vec::new(),
        warnings: Vec::new(),
    };

    let runtime = RuntimeConfig {
        threads: raw.runtime.threads.unwrap_or(0),
        shutdown_timeout: p.duration(
            "runtime.shutdown_timeout",
            &raw.runtime.shutdown_timeout,
            Duration::from_secs(30),
        ),
    };

    let admin = raw.admin.as_ref().and_then(|a| {
        let listen = p.addr("admin.listen", &a.listen)?;
        let token = a.token.as_ref().map(|t| t.get_ref().clone());
        if let Some(t) = &a.token {
            if t.get_ref().len() < 16 {
                p.add("admin.token", t, "must be at least 16 characters");
            }
        }
        if token.is_none() && !listen.ip().is_loopback() {
            p.add(
                "admin.listen",
                &a.listen,
                "the admin API is bound off loopback: set admin.token (a bearer token) too",
            );
        }
        Some(AdminConfig { listen, token })
    });

    let mut pools = BTreeMap::new();
    for (name, rp) in &raw.pool {
        if let Some(pool) = pool::validate_pool(&mut p, name, rp, base) {
            pools.insert(name.clone(), pool);
        }
    }

    if raw.listener.is_empty() {
        p.add_plain("listener", "at least one [[listener]] is required");
    }
    let mut listeners = Vec::new();
    let mut names = HashSet::new();
    for (i, rl) in raw.listener.iter().enumerate() {
        let key = format!("listener[{i}]");
        let name = rl.name.clone().unwrap_or_else(|| format!("listener{i}"));
        if !names.insert(name.clone()) {
            p.add_plain(
                &format!("{key}.name"),
                format_args!("duplicate listener name {name:?}"),
            );
        }
        let listen = p.addr(&format!("{key}.listen"), &rl.listen);
        if !raw.pool.contains_key(rl.pool.get_ref()) {
            p.add(
                &format!("{key}.pool"),
                &rl.pool,
                format_args!(
                    "no pool named {:?} (define [pool.{}])",
                    rl.pool.get_ref(),
                    rl.pool.get_ref()
                ),
            );
        }
        let max_connections = match &rl.max_connections {
            Some(v) if *v.get_ref() == 0 => {
                p.add(&format!("{key}.max_connections"), v, "must be at least 1");
                1
            }
            Some(v) => *v.get_ref(),
            None => 10_000,
        };
        let max_header_size = match &rl.max_header_size {
            Some(v) if !(8192..=1 << 20).contains(v.get_ref()) => {
                p.add(
                    &format!("{key}.max_header_size"),
                    v,
                    "must be between 8192 and 1048576 bytes",
                );
                32 * 1024
            }
            Some(v) => *v.get_ref(),
            None => 32 * 1024,
        };
        let header_timeout = p.duration(
            &format!("{key}.header_timeout"),
            &rl.header_timeout,
            Duration::from_secs(10),
        );
        let idle_timeout = p.duration(
            &format!("{key}.idle_timeout"),
            &rl.idle_timeout,
            Duration::from_secs(60),
        );
        let idle_release = p.duration_or_zero(
            &format!("{key}.idle_release"),
            &rl.idle_release,
            Duration::from_secs(1),
        );
        if let Some(listen) = listen {
            let tls = rl
                .tls
                .as_ref()
                .map(|t| validate_tls(&mut p, &format!("{key}.tls"), t, base))
                .unwrap_or_default();
            listeners.push(ListenerConfig {
                name,
                listen,
                pool: rl.pool.get_ref().clone(),
                max_connections,
                max_header_size,
                header_timeout,
                idle_timeout,
                idle_release: (!idle_release.is_zero()).then_some(idle_release),
                tls,
                proxy_protocol: rl.proxy_protocol.unwrap_or(false),
                min_body_rate: rl.min_body_rate.unwrap_or(1024),
                max_connections_per_ip: rl.max_connections_per_ip.unwrap_or(0),
            });
        }
    }

    if p.list.is_empty() {
        Ok(Config {
            runtime,
            admin,
            listeners,
            pools,
            warnings: p.warnings,
        })
    } else {
        // Report in file order, as an editor would show them.
        p.list.sort_by_key(|(line, _)| *line);
        Err(ConfigErrors(
            p.list.into_iter().map(|(_, msg)| msg).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
pool = "app"

[pool.app]
balance = "least_conn"

[[pool.app.backend]]
id = "app-1"
addr = "127.0.0.1:9001"

[[pool.app.backend]]
id = "app-2"
addr = "127.0.0.1:9002"
weight = 2
"#;

    #[test]
    fn defaults_fill_in() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.runtime.shutdown_timeout, Duration::from_secs(30));
        let l = &c.listeners[0];
        assert_eq!(l.max_header_size, 32 * 1024);
        assert_eq!(l.header_timeout, Duration::from_secs(10));
        let pool = &c.pools["app"];
        assert_eq!(pool.balance, Balance::LeastConn);
        assert_eq!(pool.backends[1].weight, 2);
        assert_eq!(pool.connect_timeout, Duration::from_secs(2));
    }

    #[test]
    fn every_semantic_problem_is_reported_with_key_and_line() {
        let bad = GOOD
            .replace("127.0.0.1:9002", "127.0.0.1:notaport")
            .replace("least_conn", "fastest")
            .replace("pool = \"app\"", "pool = \"nope\"");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(
            err.contains(
                "pool.app.backend[1].addr (line 16): invalid socket address \"127.0.0.1:notaport\""
            ),
            "{err}"
        );
        assert!(
            err.contains("pool.app.balance (line 8): unknown balance \"fastest\""),
            "{err}"
        );
        assert!(
            err.contains("listener[0].pool (line 5): no pool named \"nope\""),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_their_path() {
        let bad = GOOD.replace("weight = 2", "weight = 2\nwieght = 3");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.starts_with("pool.app.backend[1]"), "{err}");
        assert!(err.contains("unknown field `wieght`"), "{err}");
    }

    #[test]
    fn bad_durations_weights_and_duplicates() {
        let bad = GOOD
            .replace("weight = 2", "weight = 0\nid2 = 1")
            .replace("id2 = 1", "")
            .replace("\"app-2\"", "\"app-1\"")
            .replace("balance = \"least_conn\"", "connect_timeout = \"soon\"");
        let err = parse(&bad).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 3, "{text}");
        assert!(text.contains("pool.app.connect_timeout"), "{text}");
        assert!(text.contains("pool.app.backend[1].id"), "{text}");
        assert!(text.contains("pool.app.backend[1].weight"), "{text}");
    }

    #[test]
    fn idle_release_defaults_to_a_second_and_zero_turns_it_off() {
        let listener =
            |extra: &str| GOOD.replace("pool = \"app\"\n", &format!("pool = \"app\"\n{extra}\n"));
        let cfg = parse(GOOD).expect("good config");
        assert_eq!(cfg.listeners[0].idle_release, Some(Duration::from_secs(1)));
        let cfg = parse(&listener("idle_release = \"0s\"")).expect("zero is allowed");
        assert_eq!(cfg.listeners[0].idle_release, None);
        let err = parse(&listener("idle_release = \"soon\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listener[0].idle_release"), "{err}");
        let err = parse(&listener("idle_timeout = \"0s\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("idle_timeout") && err.contains("greater than zero"),
            "{err}"
        );
    }

    #[test]
    fn pool_idle_release_defaults_to_a_second_and_zero_turns_it_off() {
        let pool = |extra: &str| {
            GOOD.replace(
                "balance = \"least_conn\"",
                &format!("balance = \"least_conn\"\n{extra}"),
            )
        };
        let cfg = parse(GOOD).expect("good config");
        assert_eq!(cfg.pools["app"].idle_release, Some(Duration::from_secs(1)));
        let cfg = parse(&pool("idle_release = \"0s\"")).expect("zero is allowed");
        assert_eq!(cfg.pools["app"].idle_release, None);
        let cfg = parse(&pool("idle_release = \"250ms\"")).expect("good config");
        assert_eq!(
            cfg.pools["app"].idle_release,
            Some(Duration::from_millis(250))
        );
        let err = parse(&pool("idle_release = \"later\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pool.app.idle_release"), "{err}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse("[[listener]\nname = 1").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
