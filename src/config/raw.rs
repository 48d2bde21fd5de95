//! The config file as serde sees it: every key optional where a default exists, unknown keys
//! rejected. Values that need semantic checks stay strings (with their span for line numbers)
//! until `validate` turns them into typed settings.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) runtime: RawRuntime,
    pub(super) admin: Option<RawAdmin>,
    #[serde(default)]
    pub(super) listener: Vec<RawListener>,
    #[serde(default)]
    pub(super) pool: BTreeMap<String, RawPool>,
    pub(super) log: Option<RawLog>,
    pub(super) resolver: Option<RawResolver>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResolver {
    pub(super) nameservers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) min_ttl: Option<Spanned<String>>,
    pub(super) max_ttl: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscover {
    pub(super) dns: Option<Spanned<String>>,
    pub(super) srv: Option<Spanned<String>>,
    pub(super) port: Option<Spanned<i64>>,
    pub(super) interval: Option<Spanned<String>>,
    pub(super) weight: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRuntime {
    pub(super) threads: Option<usize>,
    pub(super) shutdown_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Spanned<String>,
    pub(super) token: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListener {
    pub(super) name: Option<String>,
    pub(super) listen: Spanned<String>,
    pub(super) pool: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) route: Vec<Spanned<RawRoute>>,
    pub(super) max_connections: Option<Spanned<usize>>,
    pub(super) max_header_size: Option<Spanned<usize>>,
    pub(super) header_timeout: Option<Spanned<String>>,
    pub(super) idle_timeout: Option<Spanned<String>>,
    pub(super) idle_release: Option<Spanned<String>>,
    pub(super) tls: Option<Spanned<RawTls>>,
    pub(super) proxy_protocol: Option<bool>,
    pub(super) min_body_rate: Option<u64>,
    pub(super) max_connections_per_ip: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) name: Option<String>,
    pub(super) host: Option<Spanned<String>>,
    pub(super) path_prefix: Option<Spanned<String>>,
    pub(super) header: Option<Spanned<RawHeaderMatch>>,
    pub(super) method: Option<Spanned<String>>,
    pub(super) pool: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeaderMatch {
    pub(super) name: String,
    pub(super) value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: Option<String>,
    pub(super) key: Option<String>,
    pub(super) certs: Option<Vec<RawCertPair>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCertPair {
    pub(super) cert: String,
    pub(super) key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    pub(super) balance: Option<Spanned<String>>,
    pub(super) affinity: Option<Spanned<String>>,
    pub(super) connect_timeout: Option<Spanned<String>>,
    pub(super) response_timeout: Option<Spanned<String>>,
    pub(super) keepalive_timeout: Option<Spanned<String>>,
    pub(super) max_idle_per_backend: Option<usize>,
    pub(super) idle_release: Option<Spanned<String>>,
    pub(super) health: Option<Spanned<RawHealth>>,
    pub(super) passive: Option<RawPassive>,
    pub(super) drain_timeout: Option<Spanned<String>>,
    pub(super) drain_quiet: Option<Spanned<String>>,
    pub(super) slow_start: Option<Spanned<String>>,
    pub(super) all_down: Option<Spanned<String>>,
    pub(super) hash_key: Option<Spanned<String>>,
    pub(super) max_load: Option<Spanned<f64>>,
    pub(super) trusted_proxies: Option<Spanned<Vec<String>>>,
    pub(super) explain: Option<bool>,
    pub(super) cookie: Option<RawCookie>,
    pub(super) protocol: Option<Spanned<String>>,
    pub(super) tls: Option<bool>,
    pub(super) tls_ca: Option<Spanned<String>>,
    pub(super) tls_sni: Option<Spanned<String>>,
    pub(super) retry_idempotent: Option<bool>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_pending: Option<usize>,
    pub(super) max_attempts: Option<Spanned<i64>>,
    pub(super) retry_budget: Option<Spanned<f64>>,
    pub(super) min_retry_concurrency: Option<usize>,
    pub(super) queue_timeout: Option<Spanned<String>>,
    pub(super) discover: Option<Spanned<RawDiscover>>,
    #[serde(default)]
    pub(super) backend: Vec<RawBackend>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCookie {
    pub(super) name: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) domain: Option<Spanned<String>>,
    pub(super) max_age: Option<Spanned<String>>,
    pub(super) secure: Option<bool>,
    pub(super) http_only: Option<bool>,
    pub(super) same_site: Option<Spanned<String>>,
    pub(super) keys: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub(super) check: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) expect: Option<Spanned<String>>,
    pub(super) interval: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) rise: Option<Spanned<u32>>,
    pub(super) fall: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPassive {
    pub(super) failures: Option<u32>,
    pub(super) on_5xx: Option<bool>,
    pub(super) eject: Option<Spanned<String>>,
    pub(super) max_eject: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    pub(super) id: Spanned<String>,
    pub(super) addr: Spanned<String>,
    pub(super) weight: Option<Spanned<i64>>,
}
