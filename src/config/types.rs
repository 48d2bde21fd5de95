//! The validated configuration: the typed settings every other module reads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

pub use super::route::{HostMatch, RouteConfig};
pub use crate::tls::CertFiles;

/// Largest accepted backend weight; keeps the round-robin schedule small.
pub const MAX_WEIGHT: u32 = 1000;

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
    /// `[resolver]`: how backend names and `discover` queries are resolved.
    pub resolver: ResolverConfig,
    /// Things that are valid but probably not what the operator wants (printed by `check`).
    pub warnings: Vec<String>,
    /// `[log]`: how log lines are written.
    pub log: LogConfig,
}

/// `[log]`: how the event and access logs are written (fixed at startup).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogConfig {
    /// Text (`key=value`) or JSON lines.
    pub format: LogFormat,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `tracing`'s text lines, `key=value` fields (the default).
    #[default]
    Text,
    /// One JSON object per line, fields at the top level, for Loki, Elastic, Datadog and the like.
    Json,
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
    /// Bearer token required on every admin request (mandatory off loopback).
    pub token: Option<String>,
}

/// One `[[listener]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    /// Name used in logs and metrics.
    pub name: String,
    /// Address to bind.
    pub listen: SocketAddr,
    /// The pool requests go to when no route matches (`None`: they get 404).
    pub pool: Option<String>,
    /// Routes to pools, tried in order before `pool`.
    pub routes: Vec<RouteConfig>,
    /// Concurrent client connections; further connections wait in the kernel backlog.
    pub max_connections: usize,
    /// Largest request head in bytes; larger heads get 431.
    pub max_header_size: usize,
    /// Time a client has to send a complete request head.
    pub header_timeout: Duration,
    /// Time an idle keep-alive client connection is kept open.
    pub idle_timeout: Duration,
    /// Idle time after which an HTTP/1 keep-alive connection frees its buffers (`None` = never).
    pub idle_release: Option<Duration>,
    /// TLS certificates (the first is the default); empty = plain HTTP.
    pub tls: Vec<CertFiles>,
    /// Expect a PROXY protocol v1/v2 header on every connection.
    pub proxy_protocol: bool,
    /// Slowest accepted request body after `header_timeout`, in bytes per second (0 = off).
    pub min_body_rate: u64,
    /// Concurrent connections from one client address (0 = unlimited).
    pub max_connections_per_ip: usize,
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
    /// Consistent hash of `hash_key`.
    Hash,
}

/// How a pool keeps a client on one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityMode {
    /// No stickiness: every request is balanced.
    None,
    /// tether's sealed cookie names the backend.
    Cookie,
    /// Consistent hash of the client address.
    IpHash,
    /// Anti-affinity (test mode): each request goes to a different backend than the last.
    Spread,
}

/// What `balance = "hash"` hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The client address (see `trusted_proxies`).
    Ip,
    /// A request header's value.
    Header(http::HeaderName),
    /// A request cookie's value.
    Cookie(String),
    /// A query parameter's value.
    Query(String),
}

/// `SameSite` attribute of the affinity cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=None` (browsers require `Secure` with it).
    None,
}

/// `[pool.NAME.cookie]`: the affinity cookie.
#[derive(Debug, Clone, PartialEq)]
pub struct CookieConfig {
    /// The name tether's cookie is set and read under (stripped before the backend sees it).
    pub name: String,
    /// `Path` attribute.
    pub path: String,
    /// `Domain` attribute, if any.
    pub domain: Option<String>,
    /// Pin lifetime: `Max-Age` for the browser and a server-side expiry of the issue time.
    pub max_age: Option<Duration>,
    /// `Secure` attribute; `None` = only on TLS listeners.
    pub secure: Option<bool>,
    /// `HttpOnly` attribute.
    pub http_only: bool,
    /// `SameSite` attribute.
    pub same_site: SameSite,
    /// Sealing keys: the first seals, all open. Empty = derived from the pool name (forgeable).
    pub keys: Vec<String>,
}

/// The protocol tether speaks to a pool's backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2 (prior knowledge on plain TCP, ALPN `h2` over TLS): needed for gRPC.
    H2,
}

/// One `[pool.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// How clients that are not pinned are placed.
    pub balance: Balance,
    /// Time to establish a TCP connection to a backend.
    pub connect_timeout: Duration,
    /// Time for a backend to send response headers.
    pub response_timeout: Duration,
    /// Time an idle pooled upstream connection is kept.
    pub keepalive_timeout: Duration,
    /// Idle upstream connections kept per backend.
    pub max_idle_per_backend: usize,
    /// Idle time after which a plain HTTP/1.1 upstream connection gives its parser back and
    /// waits as a bare socket (`None`: never).
    pub idle_release: Option<Duration>,
    /// Active health checks, if configured.
    pub health: Option<HealthConfig>,
    /// Passive ejection on failures seen in real traffic.
    pub passive: PassiveConfig,
    /// Longest a draining backend keeps its pinned clients.
    pub drain_timeout: Duration,
    /// A draining backend with nothing in flight is drained after this long without a pinned client.
    pub drain_quiet: Duration,
    /// Ramp-up of a backend's share after it comes up; zero disables.
    pub slow_start: Duration,
    /// What to do when no backend is up.
    pub all_down: AllDown,
    /// How a client is kept on (or, for `spread`, moved off) its backend.
    pub affinity: AffinityMode,
    /// What `balance = "hash"` hashes.
    pub hash_key: HashKey,
    /// Bounded-load factor for hashing (no backend above `max_load` x mean in flight).
    pub max_load: Option<f64>,
    /// Peers whose `X-Forwarded-For` / `Forwarded` names the client (CIDR list).
    pub trusted_proxies: Vec<String>,
    /// Add an `x-tether-affinity` header explaining each routing decision (debugging).
    pub explain: bool,
    /// The affinity cookie (used by `affinity = "cookie"` and `"spread"`).
    pub cookie: CookieConfig,
    /// HTTP version spoken to backends.
    pub protocol: Protocol,
    /// TLS to backends, if enabled.
    pub tls: Option<UpstreamTls>,
    /// Replay safe bodiless requests on another backend when one fails before responding.
    pub retry_idempotent: bool,
    /// Requests in flight to one backend at once (0: no cap).
    pub max_connections: usize,
    /// Requests waiting for a backend at its cap, per backend; more are answered 503.
    pub max_pending: usize,
    /// Longest a request waits for a backend at its cap before it is answered 503.
    pub queue_timeout: Duration,
    /// Backends one request may try, the first included.
    pub max_attempts: usize,
    /// Share of the pool's requests in flight that may be retrying at once.
    pub retry_budget: f64,
    /// Requests that may be retrying at once whatever the share.
    pub min_retry_concurrency: usize,
    /// Backends with a literal `IP:port`, in file order (and those the admin API added).
    pub backends: Vec<BackendConfig>,
    /// Backends whose `addr` is `name:port`, resolved at start and while running.
    pub named: Vec<NamedBackend>,
    /// Backends discovered from DNS, if the pool has `discover`.
    pub discover: Option<DiscoverConfig>,
    /// The current answer for `named` and `discover`: the last good lookup of each (empty
    /// until the first). Pools are built from `backends` followed by these.
    pub resolved: Vec<BackendConfig>,
}

/// A backend whose `addr` is `name:port`: one backend, its address re-resolved while running.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamedBackend {
    /// Stable identity, as for any backend.
    pub id: String,
    /// The DNS name to resolve.
    pub host: String,
    /// The port to connect to.
    pub port: u16,
    /// Relative share of traffic.
    pub weight: u32,
}

/// `discover = { ... }`: a pool's backends from DNS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DiscoverConfig {
    /// What to look up.
    pub query: DiscoverQuery,
    /// Longest time between lookups (a shorter record TTL refreshes sooner); `None`: the
    /// `[resolver] max_ttl`.
    pub interval: Option<Duration>,
    /// Weight of each backend of an A/AAAA answer (SRV records carry their own).
    pub weight: u32,
}

/// The lookup behind `discover`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DiscoverQuery {
    /// A/AAAA records of `name`: one backend per address, all on `port`.
    Dns {
        /// The name to look up.
        name: String,
        /// The port every address is reached on.
        port: u16,
    },
    /// SRV records of `name`: target, port and weight from each record.
    Srv {
        /// The SRV name, e.g. `_http._tcp.app.internal`.
        name: String,
    },
}

/// `[resolver]`: name servers and the bounds put on record TTLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolverConfig {
    /// Name servers to ask (UDP, TCP on truncation); empty = the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Shortest time between lookups of one pool, whatever the TTL (a TTL of 0 is common).
    pub min_ttl: Duration,
    /// Longest time between lookups, whatever the TTL; the default `discover.interval`.
    pub max_ttl: Duration,
    /// Time one lookup may take before it counts as failed.
    pub timeout: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(30),
            timeout: Duration::from_secs(2),
        }
    }
}

/// `tls = true` on a pool: how backends are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// CA certificates (PEM) that sign backend certificates; `None` = the system's roots.
    pub ca: Option<std::path::PathBuf>,
    /// Name sent as SNI and verified in the certificate; `None` = the name the backend is
    /// reached by, or its IP address when it has none.
    pub sni: Option<String>,
}

/// `health = { ... }`: active checks of every backend of a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// What a check does.
    pub check: HealthCheck,
    /// Time between checks of a backend.
    pub interval: Duration,
    /// Time a single check may take.
    pub timeout: Duration,
    /// Consecutive passes that bring a down backend up.
    pub rise: u32,
    /// Consecutive failures that take an up backend down.
    pub fall: u32,
}

/// The kind of active check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// `GET path`; passes when the status is within `expect` (inclusive).
    Http {
        /// The path the check requests (with the backend's address as `Host`).
        path: String,
        /// Accepted status range.
        expect: (u16, u16),
    },
    /// A TCP connect that succeeds passes.
    Tcp,
}

/// `passive = { ... }`: ejection on consecutive failures from real traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct PassiveConfig {
    /// Consecutive failures that eject a backend; 0 disables passive checks.
    pub failures: u32,
    /// Count 5xx responses as failures (connect errors and timeouts always count).
    pub on_5xx: bool,
    /// First ejection period; doubles on each repeat.
    pub eject: Duration,
    /// Longest ejection period.
    pub max_eject: Duration,
}

/// `all_down`: behaviour when no backend of a pool is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllDown {
    /// Route to down backends anyway (fail open): better a chance than a certain 503.
    Route,
    /// Answer 503 at once (fail fast).
    Fail,
}

/// One `[[pool.NAME.backend]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Stable identity: logs, metrics, the admin API, affinity cookies and the hash ring use it.
    pub id: String,
    /// Address to connect to.
    pub addr: SocketAddr,
    /// Relative share of traffic.
    pub weight: u32,
    /// The DNS name it is reached by (`addr = "name:port"`, `discover.dns`): with TLS, the name
    /// sent as SNI and verified in its certificate unless the pool sets `tls_sni`.
    pub name: Option<String>,
}
