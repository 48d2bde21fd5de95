//! The one builder for the configs tests start tether with: plain structs, rendered as TOML.
//!
//! `Config::new().admin().listener(Listener::web()).pool(Pool::app().backend(id, addr))`
//! renders as the hand-typed files it replaces did: `[runtime]`, `[admin]`, each
//! `[[listener]]`, then each `[pool.NAME]` with its `[[pool.NAME.backend]]` tables, every key
//! on its own line in the order it was set, values written as TOML (`"1s"`, `2`, `true`,
//! `{ keys = ["..."] }`). Setting a key again replaces its value in place.

use std::fmt;
use std::net::SocketAddr;

use toml::Value;

use super::backend::TestBackend;

/// Where every test listener binds: loopback, a port the kernel picks.
const ANY_PORT: &str = "127.0.0.1:0";

/// A whole tether config file.
#[derive(Clone, Debug, Default)]
pub struct Config {
    runtime: Keys,
    admin: Option<Keys>,
    resolver: Keys,
    listeners: Vec<Listener>,
    pools: Vec<Pool>,
}

impl Config {
    /// An empty config: no runtime keys, no admin, no listeners, no pools.
    pub fn new() -> Config {
        Config::default()
    }

    /// Listener `listener` forwarding to `pool`, which gets `balance = "round_robin"` and
    /// `backend`: the shape most tests start tether with (`Listener::web()`, `Pool::app()`,
    /// each with whatever keys the test is about).
    pub fn round_robin(backend: &TestBackend, listener: Listener, pool: Pool) -> Config {
        Config::new().listener(listener).pool(
            pool.set("balance", "round_robin")
                .backend(&backend.id, backend.addr),
        )
    }

    /// Adds `[admin]` with `listen = "127.0.0.1:0"` (kept if already there).
    pub fn admin(mut self) -> Config {
        self.admin
            .get_or_insert_with(|| Keys::one("listen", ANY_PORT));
        self
    }

    /// Adds `[admin]` (see [`Config::admin`]) with `token = "TOKEN"`.
    pub fn admin_token(self, token: &str) -> Config {
        let mut config = self.admin();
        if let Some(admin) = config.admin.as_mut() {
            admin.set("token", token);
        }
        config
    }

    /// Sets `key = value` in `[runtime]`.
    pub fn runtime(mut self, key: &str, value: impl Into<Value>) -> Config {
        self.runtime.set(key, value);
        self
    }

    /// Sets `key = value` in `[resolver]` (`nameservers`, `min_ttl`, ...).
    pub fn resolver(mut self, key: &str, value: impl Into<Value>) -> Config {
        self.resolver.set(key, value);
        self
    }

    /// Adds a `[[listener]]`, after those already added.
    pub fn listener(mut self, listener: Listener) -> Config {
        self.listeners.push(listener);
        self
    }

    /// Adds a `[pool.NAME]`, after those already added.
    pub fn pool(mut self, pool: Pool) -> Config {
        self.pools.push(pool);
        self
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.runtime.is_empty() {
            write!(f, "\n[runtime]\n{}", self.runtime)?;
        }
        if let Some(admin) = &self.admin {
            write!(f, "\n[admin]\n{admin}")?;
        }
        if !self.resolver.is_empty() {
            write!(f, "\n[resolver]\n{}", self.resolver)?;
        }
        for listener in &self.listeners {
            write!(f, "\n[[listener]]\n{}", listener.keys)?;
        }
        for pool in &self.pools {
            write!(f, "\n[pool.{}]\n{}", pool.name, pool.keys)?;
            for backend in &pool.backends {
                write!(f, "\n[[pool.{}.backend]]\n{backend}", pool.name)?;
            }
        }
        Ok(())
    }
}

/// One `[[listener]]`: `name`, `listen = "127.0.0.1:0"`, `pool`, then any keys set on it.
#[derive(Clone, Debug)]
pub struct Listener {
    keys: Keys,
}

impl Listener {
    /// Listener `name` on 127.0.0.1, port 0, forwarding to pool `pool`.
    pub fn new(name: &str, pool: &str) -> Listener {
        let mut keys = Keys::one("name", name);
        keys.set("listen", ANY_PORT);
        keys.set("pool", pool);
        Listener { keys }
    }

    /// Listener `name` on 127.0.0.1, port 0, with no default pool: its `route` key decides.
    pub fn routes_only(name: &str) -> Listener {
        let mut keys = Keys::one("name", name);
        keys.set("listen", ANY_PORT);
        Listener { keys }
    }

    /// Listener `web` forwarding to pool `app`: the one most tests use.
    pub fn web() -> Listener {
        Listener::new("web", "app")
    }

    /// Sets `key = value` (`header_timeout`, `tls`, `proxy_protocol`, ...).
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Listener {
        self.keys.set(key, value);
        self
    }
}

impl Default for Listener {
    fn default() -> Listener {
        Listener::web()
    }
}

/// One `[pool.NAME]`: its keys, then its backends as `[[pool.NAME.backend]]`.
#[derive(Clone, Debug, Default)]
pub struct Pool {
    name: String,
    keys: Keys,
    backends: Vec<Keys>,
}

impl Pool {
    /// Pool `name` with no keys and no backends.
    pub fn new(name: &str) -> Pool {
        Pool {
            name: name.to_string(),
            ..Pool::default()
        }
    }

    /// Pool `app`: the one most tests use.
    pub fn app() -> Pool {
        Pool::new("app")
    }

    /// Sets `key = value` (`balance`, `affinity`, `drain_quiet`, ...).
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Pool {
        self.keys.set(key, value);
        self
    }

    /// Sets `key = value` inside the table `table` of this pool (`cookie`, `health`,
    /// `passive`), creating the table if it is not there yet.
    pub fn set_in(mut self, table: &str, key: &str, value: impl Into<Value>) -> Pool {
        self.keys.set_in(table, key, value);
        self
    }

    /// Adds a backend with `id` and `addr`.
    pub fn backend(mut self, id: &str, addr: SocketAddr) -> Pool {
        let mut keys = Keys::one("id", id);
        keys.set("addr", addr.to_string());
        self.backends.push(keys);
        self
    }

    /// Adds a backend with `id`, `addr` and `weight`.
    pub fn weighted_backend(mut self, id: &str, addr: SocketAddr, weight: u32) -> Pool {
        self = self.backend(id, addr);
        if let Some(keys) = self.backends.last_mut() {
            keys.set("weight", weight);
        }
        self
    }

    /// Adds each `(id, addr)` as a backend, in order.
    pub fn backends(self, backends: &[(&str, SocketAddr)]) -> Pool {
        backends
            .iter()
            .fold(self, |pool, (id, addr)| pool.backend(id, *addr))
    }
}

/// An inline TOML table from `(key, value)` pairs, for values such as `tls = { certs = [...] }`.
pub fn table<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::Table(
        pairs
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
    )
}

/// `key = value` lines of one table, in the order they were first set.
#[derive(Clone, Debug, Default)]
struct Keys(Vec<(String, Value)>);

impl Keys {
    fn one(key: &str, value: impl Into<Value>) -> Keys {
        let mut keys = Keys::default();
        keys.set(key, value);
        keys
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn set(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    fn set_in(&mut self, table: &str, key: &str, value: impl Into<Value>) {
        if !self.0.iter().any(|(k, v)| k == table && v.is_table()) {
            self.set(table, Value::Table(toml::Table::new()));
        }
        if let Some((_, Value::Table(inner))) = self.0.iter_mut().find(|(k, _)| k == table) {
            inner.insert(key.to_string(), value.into());
        }
    }
}

impl fmt::Display for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in &self.0 {
            writeln!(f, "{key} = {value}")?;
        }
        Ok(())
    }
}

#[test]
fn a_config_renders_as_the_toml_it_describes() {
    let addr: SocketAddr = "127.0.0.1:9001".parse().unwrap();
    let config = Config::new()
        .runtime("threads", 2)
        .admin_token("secret")
        .listener(Listener::web().set("header_timeout", "1s"))
        .pool(
            Pool::app()
                .set("balance", "round_robin")
                .set("balance", "least_conn")
                .set_in("cookie", "keys", vec!["k1", "k2"])
                .set_in("cookie", "max_age", "1s")
                .backend("a", addr)
                .weighted_backend("b", addr, 3),
        );
    let expected = r#"
[runtime]
threads = 2

[admin]
listen = "127.0.0.1:0"
token = "secret"

[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "app"
header_timeout = "1s"

[pool.app]
balance = "least_conn"
cookie = { keys = ["k1", "k2"], max_age = "1s" }

[[pool.app.backend]]
id = "a"
addr = "127.0.0.1:9001"

[[pool.app.backend]]
id = "b"
addr = "127.0.0.1:9001"
weight = 3
"#;
    assert_eq!(config.to_string(), expected);
    let parsed: toml::Table = config.to_string().parse().expect("valid TOML");
    assert_eq!(parsed, expected.parse::<toml::Table>().unwrap());
}
