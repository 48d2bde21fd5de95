//! Validation of one `[pool.NAME]` table and its backends.

use std::collections::HashSet;
use std::time::Duration;

use toml::Spanned;

use super::discover::{backend_addr, validate_discover, BackendAddr};
use super::problems::Problems;
use super::raw::{RawHealth, RawPassive, RawPool};
use super::suggest;
use super::types::{
    AllDown, BackendConfig, Balance, HealthCheck, HealthConfig, NamedBackend, PassiveConfig,
    PoolConfig, Protocol, UpstreamTls, MAX_WEIGHT,
};

pub(super) fn validate_pool(
    p: &mut Problems<'_>,
    name: &str,
    rp: &RawPool,
    base: &std::path::Path,
) -> Option<PoolConfig> {
    let key = format!("pool.{name}");
    let before = p.list.len();
    let balance = match rp.balance.as_ref() {
        None => Balance::RoundRobin,
        Some(b) => match b.get_ref().as_str() {
            "round_robin" => Balance::RoundRobin,
            "least_conn" => Balance::LeastConn,
            "random" => Balance::Random,
            "hash" => Balance::Hash,
            other => {
                p.add(
                    &format!("{key}.balance"),
                    b,
                    suggest::unknown_value(
                        "balance",
                        other,
                        &["round_robin", "least_conn", "random", "hash"],
                    ),
                );
                Balance::RoundRobin
            }
        },
    };
    let sticky = super::affinity::validate(p, &key, name, rp, balance);
    let retry = super::retry::validate(p, &key, rp);
    let queue_timeout = p.duration(
        &format!("{key}.queue_timeout"),
        &rp.queue_timeout,
        Duration::from_secs(1),
    );
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
    let idle_release = p.duration_or_zero(
        &format!("{key}.idle_release"),
        &rp.idle_release,
        Duration::from_secs(1),
    );
    let discover = rp
        .discover
        .as_ref()
        .and_then(|d| validate_discover(p, &key, d));
    if rp.backend.is_empty() && rp.discover.is_none() {
        p.add_plain(
            &format!("{key}.backend"),
            "a pool needs at least one [[pool.NAME.backend]] or discover = { ... }",
        );
    }
    let mut ids = HashSet::new();
    let mut backends = Vec::new();
    let mut named = Vec::new();
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
        let addr = backend_addr(p, &format!("{bkey}.addr"), &rb.addr);
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
        match addr {
            Some(BackendAddr::Literal(addr)) => backends.push(BackendConfig {
                id: id.clone(),
                addr,
                weight,
                name: None,
            }),
            Some(BackendAddr::Named(host, port)) => named.push(NamedBackend {
                id: id.clone(),
                host,
                port,
                weight,
            }),
            None => {}
        }
    }
    let health = rp.health.as_ref().map(|h| validate_health(p, &key, h));
    let passive = validate_passive(p, &key, rp.passive.as_ref());
    let drain_timeout = p.duration(
        &format!("{key}.drain_timeout"),
        &rp.drain_timeout,
        Duration::from_secs(30),
    );
    let drain_quiet = p.duration(
        &format!("{key}.drain_quiet"),
        &rp.drain_quiet,
        Duration::from_secs(2),
    );
    let slow_start = match &rp.slow_start {
        Some(s) if s.get_ref() == "0" || s.get_ref() == "off" => Duration::ZERO,
        other => p.duration(&format!("{key}.slow_start"), other, Duration::ZERO),
    };
    let all_down = match rp.all_down.as_ref() {
        None => AllDown::Route,
        Some(v) => match v.get_ref().as_str() {
            "route" => AllDown::Route,
            "fail" => AllDown::Fail,
            other => {
                p.add(
                    &format!("{key}.all_down"),
                    v,
                    suggest::unknown_value("value", other, &["route", "fail"]),
                );
                AllDown::Route
            }
        },
    };
    let protocol = match rp.protocol.as_ref() {
        None => Protocol::Http1,
        Some(v) => match v.get_ref().as_str() {
            "http1" | "http/1.1" => Protocol::Http1,
            "h2" => Protocol::H2,
            other => {
                p.add(
                    &format!("{key}.protocol"),
                    v,
                    suggest::unknown_value("protocol", other, &["http1", "h2"]),
                );
                Protocol::Http1
            }
        },
    };
    let tls = rp.tls.unwrap_or(false).then(|| UpstreamTls {
        ca: rp
            .tls_ca
            .as_ref()
            .map(|c| crate::tls::resolve(base, std::path::Path::new(c.get_ref()))),
        sni: rp.tls_sni.as_ref().map(|s| s.get_ref().clone()),
    });
    if let Some(t) = &tls {
        if let Some(sni) = &rp.tls_sni {
            if rustls::pki_types::ServerName::try_from(sni.get_ref().as_str()).is_err() {
                p.add(
                    &format!("{key}.tls_sni"),
                    sni,
                    "not a valid DNS name or IP address",
                );
            }
        }
        if let Err(e) = crate::tls::connector(t.ca.as_deref(), b"h2") {
            match &rp.tls_ca {
                Some(ca) => p.add(&format!("{key}.tls_ca"), ca, e),
                None => p.add_plain(&format!("{key}.tls"), e),
            }
        }
    } else if let Some(ca) = rp.tls_ca.as_ref().or(rp.tls_sni.as_ref()) {
        p.add(
            &format!("{key}.tls_ca"),
            ca,
            "tls_ca and tls_sni need tls = true",
        );
    }
    (p.list.len() == before).then(|| PoolConfig {
        balance,
        connect_timeout,
        response_timeout,
        keepalive_timeout,
        max_idle_per_backend: rp.max_idle_per_backend.unwrap_or(32),
        idle_release: (!idle_release.is_zero()).then_some(idle_release),
        health,
        passive,
        drain_timeout,
        drain_quiet,
        slow_start,
        all_down,
        affinity: sticky.affinity,
        hash_key: sticky.hash_key,
        max_load: sticky.max_load,
        trusted_proxies: sticky.trusted_proxies,
        explain: sticky.explain,
        cookie: sticky.cookie,
        protocol,
        tls,
        retry_idempotent: rp.retry_idempotent.unwrap_or(true),
        max_connections: rp.max_connections.unwrap_or(0),
        max_pending: rp.max_pending.unwrap_or(100),
        queue_timeout,
        max_attempts: retry.max_attempts,
        retry_budget: retry.budget,
        min_retry_concurrency: retry.min_concurrency,
        backends,
        named,
        discover,
        resolved: Vec::new(),
    })
}

fn validate_health(p: &mut Problems<'_>, pool_key: &str, h: &Spanned<RawHealth>) -> HealthConfig {
    let key = format!("{pool_key}.health");
    let raw = h.get_ref();
    let interval = p.duration(
        &format!("{key}.interval"),
        &raw.interval,
        Duration::from_secs(2),
    );
    let timeout = p.duration(
        &format!("{key}.timeout"),
        &raw.timeout,
        Duration::from_secs(1),
    );
    if timeout > interval {
        p.add(
            &key,
            h,
            format_args!("timeout ({timeout:?}) must not exceed interval ({interval:?})"),
        );
    }
    let mut count = |name: &str, v: &Option<Spanned<u32>>, default: u32| match v {
        Some(n) if !(1..=100).contains(n.get_ref()) => {
            p.add(&format!("{key}.{name}"), n, "must be between 1 and 100");
            default
        }
        Some(n) => *n.get_ref(),
        None => default,
    };
    let rise = count("rise", &raw.rise, 2);
    let fall = count("fall", &raw.fall, 3);
    let kind = raw.check.as_ref().map_or("http", |c| c.get_ref().as_str());
    let check = match kind {
        "tcp" => {
            if let Some(path) = &raw.path {
                p.add(&format!("{key}.path"), path, "a tcp check has no path");
            }
            HealthCheck::Tcp
        }
        "http" => {
            let path = raw.path.as_ref().map_or("/", |s| s.get_ref().as_str());
            if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                if let Some(raw_path) = &raw.path {
                    p.add(
                        &format!("{key}.path"),
                        raw_path,
                        "must be an absolute path such as \"/healthz\"",
                    );
                }
            }
            let expect = match &raw.expect {
                None => (200, 399),
                Some(e) => parse_status_range(e.get_ref()).unwrap_or_else(|| {
                    p.add(
                        &format!("{key}.expect"),
                        e,
                        "expected a status or range such as \"200\" or \"200-399\"",
                    );
                    (200, 399)
                }),
            };
            HealthCheck::Http {
                path: path.to_string(),
                expect,
            }
        }
        other => {
            if let Some(c) = &raw.check {
                p.add(
                    &format!("{key}.check"),
                    c,
                    suggest::unknown_value("check", other, &["http", "tcp"]),
                );
            }
            HealthCheck::Tcp
        }
    };
    HealthConfig {
        check,
        interval,
        timeout,
        rise,
        fall,
    }
}

fn parse_status_range(s: &str) -> Option<(u16, u16)> {
    let (lo, hi) = match s.split_once('-') {
        Some((lo, hi)) => (lo.trim().parse().ok()?, hi.trim().parse().ok()?),
        None => {
            let one = s.trim().parse().ok()?;
            (one, one)
        }
    };
    ((100..=599).contains(&lo) && (lo..=599).contains(&hi)).then_some((lo, hi))
}

fn validate_passive(
    p: &mut Problems<'_>,
    pool_key: &str,
    raw: Option<&RawPassive>,
) -> PassiveConfig {
    let key = format!("{pool_key}.passive");
    let none = None;
    let eject = p.duration(
        &format!("{key}.eject"),
        raw.map_or(&none, |r| &r.eject),
        Duration::from_secs(10),
    );
    let max_eject = p.duration(
        &format!("{key}.max_eject"),
        raw.map_or(&none, |r| &r.max_eject),
        Duration::from_secs(300),
    );
    PassiveConfig {
        failures: raw.and_then(|r| r.failures).unwrap_or(5),
        on_5xx: raw.and_then(|r| r.on_5xx).unwrap_or(false),
        eject,
        max_eject: max_eject.max(eject),
    }
}
