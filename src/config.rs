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

use serde::Deserialize;
use toml::Spanned;

/// A validated configuration, ready to build listeners and pools from.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Process-wide settings.
    pub runtime: RuntimeConfig,
    /// The admin API listener, if any.
    pub admin: Option<AdminConfig>,
    /// Client-facing listeners, in file order.
    pub listeners: Vec<ListenerConfig>,
    /// Backend pools by name.
    pub pools: BTreeMap<String, PoolConfig>,
}

/// `[runtime]`: process-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// How long SIGTERM waits for in-flight requests before exiting.
    pub shutdown_timeout: Duration,
}

/// `[admin]`: the admin API listener.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Address to bind.
    pub listen: SocketAddr,
}

/// One `[[listener]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    /// Name used in logs and metrics.
    pub name: String,
    /// Address to bind.
    pub listen: SocketAddr,
    /// Name of the pool this listener forwards to.
    pub pool: String,
    /// Concurrent client connections; further connections wait in the kernel backlog.
    pub max_connections: usize,
    /// Largest request head in bytes; larger heads get 431.
    pub max_header_size: usize,
    /// Time a client has to send a complete request head.
    pub header_timeout: Duration,
    /// Time an idle keep-alive client connection is kept open.
    pub idle_timeout: Duration,
}

/// The balancing algorithm of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round robin.
    RoundRobin,
    /// Fewest in-flight requests per unit of weight.
    LeastConn,
    /// Weighted random.
    Random,
}

/// One `[pool.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Balancing algorithm.
    pub balance: Balance,
    /// Time to establish a TCP connection to a backend.
    pub connect_timeout: Duration,
    /// Time for a backend to send response headers.
    pub response_timeout: Duration,
    /// Time an idle pooled upstream connection is kept.
    pub keepalive_timeout: Duration,
    /// Idle upstream connections kept per backend.
    pub max_idle_per_backend: usize,
    /// Backends, in file order.
    pub backends: Vec<BackendConfig>,
}

/// One `[[pool.NAME.backend]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Stable identity (used by logs, metrics and, later, stickiness).
    pub id: String,
    /// Address to connect to.
    pub addr: SocketAddr,
    /// Relative share of traffic.
    pub weight: u32,
}

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
    parse(&text)
}

/// Parses and validates config text.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
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
    validate(raw, text)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    runtime: RawRuntime,
    admin: Option<RawAdmin>,
    #[serde(default)]
    listener: Vec<RawListener>,
    #[serde(default)]
    pool: BTreeMap<String, RawPool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    threads: Option<usize>,
    shutdown_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: Option<String>,
    listen: Spanned<String>,
    pool: Spanned<String>,
    max_connections: Option<Spanned<usize>>,
    max_header_size: Option<Spanned<usize>>,
    header_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    balance: Option<Spanned<String>>,
    affinity: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    response_timeout: Option<Spanned<String>>,
    keepalive_timeout: Option<Spanned<String>>,
    max_idle_per_backend: Option<usize>,
    #[serde(default)]
    backend: Vec<RawBackend>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    id: Spanned<String>,
    addr: Spanned<String>,
    weight: Option<Spanned<i64>>,
}

/// Collects problems with their key paths and lines.
struct Problems<'a> {
    text: &'a str,
    /// (line, message); problems without a line sort last.
    list: Vec<(usize, String)>,
}

impl Problems<'_> {
    fn add<T>(&mut self, key: &str, at: &Spanned<T>, msg: impl fmt::Display) {
        let line = line_of(self.text, at.span().start);
        self.list
            .push((line, format!("{key} (line {line}): {msg}")));
    }

    fn add_plain(&mut self, key: &str, msg: impl fmt::Display) {
        self.list.push((usize::MAX, format!("{key}: {msg}")));
    }

    fn addr(&mut self, key: &str, raw: &Spanned<String>) -> Option<SocketAddr> {
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

    fn duration(
        &mut self,
        key: &str,
        raw: &Option<Spanned<String>>,
        default: Duration,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        match humantime::parse_duration(raw.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.add(key, raw, "must be greater than zero");
                default
            }
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

fn validate(raw: RawConfig, text: &str) -> Result<Config, ConfigErrors> {
    let mut p = Problems {
        text,
        list: Vec::new(),
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
        p.addr("admin.listen", &a.listen)
            .map(|listen| AdminConfig { listen })
    });

    let mut pools = BTreeMap::new();
    for (name, rp) in &raw.pool {
        if let Some(pool) = validate_pool(&mut p, name, rp) {
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
        if let Some(listen) = listen {
            listeners.push(ListenerConfig {
                name,
                listen,
                pool: rl.pool.get_ref().clone(),
                max_connections,
                max_header_size,
                header_timeout,
                idle_timeout,
            });
        }
    }

    if p.list.is_empty() {
        Ok(Config {
            runtime,
            admin,
            listeners,
            pools,
        })
    } else {
        // Report in file order, as an editor would show them.
        p.list.sort_by_key(|(line, _)| *line);
        Err(ConfigErrors(
            p.list.into_iter().map(|(_, msg)| msg).collect(),
        ))
    }
}

fn validate_pool(p: &mut Problems<'_>, name: &str, rp: &RawPool) -> Option<PoolConfig> {
    let key = format!("pool.{name}");
    let before = p.list.len();
    let balance = match rp.balance.as_ref() {
        None => Balance::RoundRobin,
        Some(b) => match b.get_ref().as_str() {
            "round_robin" => Balance::RoundRobin,
            "least_conn" => Balance::LeastConn,
            "random" => Balance::Random,
            other => {
                p.add(
                    &format!("{key}.balance"),
                    b,
                    format_args!(
                        "unknown balance {other:?}; expected round_robin, least_conn or random"
                    ),
                );
                Balance::RoundRobin
            }
        },
    };
    if let Some(a) = &rp.affinity {
        if a.get_ref() != "none" {
            p.add(
                &format!("{key}.affinity"),
                a,
                format_args!(
                    "affinity {:?} is not supported by this version; only \"none\"",
                    a.get_ref()
                ),
            );
        }
    }
    let connect_timeout = p.duration(
        &format!("{key}.connect_timeout"),
        &rp.connect_timeout,
        Duration::from_secs(2),
    );
    let response_timeout = p.duration(
        &format!("{key}.response_timeout"),
        &rp.response_timeout,
        Duration::from_secs(30),
    );
    let keepalive_timeout = p.duration(
        &format!("{key}.keepalive_timeout"),
        &rp.keepalive_timeout,
        Duration::from_secs(60),
    );
    if rp.backend.is_empty() {
        p.add_plain(
            &format!("{key}.backend"),
            "a pool needs at least one [[pool.NAME.backend]]",
        );
    }
    let mut ids = HashSet::new();
    let mut backends = Vec::new();
    for (i, rb) in rp.backend.iter().enumerate() {
        let bkey = format!("{key}.backend[{i}]");
        let id = rb.id.get_ref();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_graphic()) {
            p.add(
                &format!("{bkey}.id"),
                &rb.id,
                "must be non-empty printable ASCII without spaces",
            );
        } else if !ids.insert(id.clone()) {
            p.add(
                &format!("{bkey}.id"),
                &rb.id,
                format_args!("duplicate backend id {id:?}"),
            );
        }
        let addr = p.addr(&format!("{bkey}.addr"), &rb.addr);
        let weight = match &rb.weight {
            None => 1,
            Some(w) if (1..=i64::from(MAX_WEIGHT)).contains(w.get_ref()) => *w.get_ref() as u32,
            Some(w) => {
                p.add(
                    &format!("{bkey}.weight"),
                    w,
                    format_args!("weight {} out of range 1..={MAX_WEIGHT}", w.get_ref()),
                );
                1
            }
        };
        if let Some(addr) = addr {
            backends.push(BackendConfig {
                id: id.clone(),
                addr,
                weight,
            });
        }
    }
    (p.list.len() == before).then(|| PoolConfig {
        balance,
        connect_timeout,
        response_timeout,
        keepalive_timeout,
        max_idle_per_backend: rp.max_idle_per_backend.unwrap_or(32),
        backends,
    })
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
    fn syntax_errors_name_the_line() {
        let err = parse("[[listener]\nname = 1").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
