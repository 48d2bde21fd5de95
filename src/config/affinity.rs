//! Validation of a pool's stickiness settings: `affinity`, `hash_key`, `max_load`,
//! `trusted_proxies`, `explain` and the `[pool.NAME.cookie]` table.

use std::time::Duration;

use toml::Spanned;

use super::problems::Problems;
use super::raw::RawPool;
use super::suggest;
use super::types::{AffinityMode, Balance, CookieConfig, HashKey, SameSite};
use crate::affinity::client_ip::TrustedProxies;
use crate::affinity::cookie::MIN_KEY_LEN;

/// The validated stickiness settings of one pool.
pub(super) struct Sticky {
    pub(super) affinity: AffinityMode,
    pub(super) hash_key: HashKey,
    pub(super) max_load: Option<f64>,
    pub(super) trusted_proxies: Vec<String>,
    pub(super) explain: bool,
    pub(super) cookie: CookieConfig,
}

pub(super) fn validate(
    p: &mut Problems<'_>,
    key: &str,
    pool: &str,
    rp: &RawPool,
    balance: Balance,
) -> Sticky {
    let affinity = match rp.affinity.as_ref() {
        None => AffinityMode::None,
        Some(a) => match a.get_ref().as_str() {
            "none" => AffinityMode::None,
            "cookie" => AffinityMode::Cookie,
            "ip_hash" => AffinityMode::IpHash,
            "spread" => AffinityMode::Spread,
            other => {
                p.add(
                    &format!("{key}.affinity"),
                    a,
                    suggest::unknown_value(
                        "affinity",
                        other,
                        &["none", "cookie", "ip_hash", "spread"],
                    ),
                );
                AffinityMode::None
            }
        },
    };
    if balance == Balance::Hash && affinity != AffinityMode::None {
        if let Some(a) = &rp.affinity {
            p.add(
                &format!("{key}.affinity"),
                a,
                "balance = \"hash\" already pins by its hash_key; use affinity = \"none\" with it",
            );
        }
    }
    let hash_key = match &rp.hash_key {
        None => HashKey::Ip,
        Some(h) => {
            if balance != Balance::Hash {
                p.add(
                    &format!("{key}.hash_key"),
                    h,
                    "only used with balance = \"hash\"",
                );
            }
            parse_hash_key(h.get_ref()).unwrap_or_else(|msg| {
                p.add(&format!("{key}.hash_key"), h, msg);
                HashKey::Ip
            })
        }
    };
    let max_load = match &rp.max_load {
        None => None,
        Some(m) if balance != Balance::Hash && affinity != AffinityMode::IpHash => {
            p.add(
                &format!("{key}.max_load"),
                m,
                "only used with balance = \"hash\" or affinity = \"ip_hash\"",
            );
            None
        }
        Some(m) if !(*m.get_ref() > 1.0 && *m.get_ref() <= 100.0) => {
            p.add(
                &format!("{key}.max_load"),
                m,
                "must be above 1.0 (e.g. 1.25), at most 100",
            );
            None
        }
        Some(m) => Some(*m.get_ref()),
    };
    let trusted_proxies = match &rp.trusted_proxies {
        None => Vec::new(),
        Some(list) => {
            if let Err(e) = TrustedProxies::parse(list.get_ref()) {
                p.add(&format!("{key}.trusted_proxies"), list, e);
            }
            list.get_ref().clone()
        }
    };
    let cookie = validate_cookie(p, key, pool, rp, affinity);
    Sticky {
        affinity,
        hash_key,
        max_load,
        trusted_proxies,
        explain: rp.explain.unwrap_or(false),
        cookie,
    }
}

fn parse_hash_key(s: &str) -> Result<HashKey, String> {
    let expected = "expected \"ip\", \"header:NAME\", \"cookie:NAME\" or \"query:NAME\"";
    match s.split_once(':') {
        None if s == "ip" => Ok(HashKey::Ip),
        Some(("header", name)) => http::HeaderName::from_bytes(name.trim().as_bytes())
            .map(HashKey::Header)
            .map_err(|_| format!("invalid header name {name:?}")),
        Some(("cookie", name)) if !name.trim().is_empty() => {
            Ok(HashKey::Cookie(name.trim().into()))
        }
        Some(("query", name)) if !name.trim().is_empty() => Ok(HashKey::Query(name.trim().into())),
        _ => Err(format!("unknown hash_key {s:?}; {expected}")),
    }
}

fn validate_cookie(
    p: &mut Problems<'_>,
    key: &str,
    pool: &str,
    rp: &RawPool,
    affinity: AffinityMode,
) -> CookieConfig {
    let key = format!("{key}.cookie");
    let uses_cookie = matches!(affinity, AffinityMode::Cookie | AffinityMode::Spread);
    let raw = rp.cookie.as_ref();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let value = |s: &str| {
        s.bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b';' && b != b',')
    };
    let text = |p: &mut Problems<'_>,
                name: &str,
                v: Option<&Spanned<String>>,
                ok: &dyn Fn(&str) -> bool,
                default: &str| match v {
        Some(v) if !ok(v.get_ref()) => {
            p.add(
                &format!("{key}.{name}"),
                v,
                format_args!("invalid cookie {name} {:?}", v.get_ref()),
            );
            default.to_string()
        }
        Some(v) => v.get_ref().clone(),
        None => default.to_string(),
    };
    let name = text(
        p,
        "name",
        raw.and_then(|r| r.name.as_ref()),
        &token,
        &format!("tether_{pool}"),
    );
    let name = if token(&name) {
        name
    } else {
        "tether".to_string()
    };
    let path = text(p, "path", raw.and_then(|r| r.path.as_ref()), &value, "/");
    let domain = raw
        .and_then(|r| r.domain.as_ref())
        .map(|d| text(p, "domain", Some(d), &value, ""));
    let none = None;
    let max_age = match raw.map_or(&none, |r| &r.max_age) {
        None => None,
        some => Some(p.duration(&format!("{key}.max_age"), some, Duration::from_secs(3600))),
    };
    let same_site = match raw.and_then(|r| r.same_site.as_ref()) {
        None => SameSite::Lax,
        Some(s) => match s.get_ref().to_ascii_lowercase().as_str() {
            "lax" => SameSite::Lax,
            "strict" => SameSite::Strict,
            "none" => SameSite::None,
            other => {
                p.add(
                    &format!("{key}.same_site"),
                    s,
                    suggest::unknown_value("same_site", other, &["lax", "strict", "none"]),
                );
                SameSite::Lax
            }
        },
    };
    let keys = match raw.and_then(|r| r.keys.as_ref()) {
        Some(k) => {
            if k.get_ref().is_empty() {
                p.add(
                    &format!("{key}.keys"),
                    k,
                    "an empty list; omit the key or give at least one secret",
                );
            }
            for (i, secret) in k.get_ref().iter().enumerate() {
                if secret.len() < MIN_KEY_LEN {
                    p.add(
                        &format!("{key}.keys[{i}]"),
                        k,
                        format_args!(
                            "secret is {} bytes; at least {MIN_KEY_LEN} are needed",
                            secret.len()
                        ),
                    );
                }
            }
            k.get_ref().clone()
        }
        None => Vec::new(),
    };
    if uses_cookie && keys.is_empty() {
        if let Some(a) = &rp.affinity {
            p.warn(
                &format!("{key}.keys"),
                a,
                "not set: the cookie key is derived from the pool name, so anyone who knows this config can forge cookies that pick a backend; set keys = [\"<random secret>\"]",
            );
        }
    }
    if raw.is_some() && !uses_cookie {
        p.list.push((
            usize::MAX,
            format!("{key}: only used with affinity = \"cookie\" or \"spread\""),
        ));
    }
    CookieConfig {
        name,
        path,
        domain,
        max_age,
        secure: raw.and_then(|r| r.secure),
        http_only: raw.and_then(|r| r.http_only).unwrap_or(true),
        same_site,
        keys,
    }
}
