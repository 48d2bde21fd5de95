//! The routing decision for one request: which backend first, why, and whether to (re)issue
//! tether's cookie. The cookie case is one match over what the cookie says and what state its
//! backend is in; nothing here is an error to the client — a bad cookie just re-pins.

use std::collections::HashMap;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderValue};
use http::Uri;

use crate::affinity::client_ip::TrustedProxies;
use crate::affinity::cookie::{BackendTag, CookieSealer, Opened};
use crate::backend::{Backend, State};
use crate::balance::hash::{hash_key, ConsistentHash};
use crate::config::{AffinityMode, CookieConfig, HashKey, PoolConfig, SameSite};
use crate::pool::Pool;

/// How the backend of a request was chosen (the access log's `affinity=` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// No stickiness configured: plain balancing.
    Balanced,
    /// No cookie yet: balanced and pinned.
    New,
    /// The cookie's backend served it.
    Hit,
    /// The cookie was garbage or tampered with: re-pinned.
    Invalid,
    /// The cookie's pin was older than `max_age`: re-pinned.
    Expired,
    /// The pinned backend was down, disabled, removed or unreachable: re-pinned.
    RedispatchDown,
    /// The pinned backend finished draining: re-pinned.
    RedispatchDrain,
    /// Chosen by consistent hash.
    Hash,
    /// Consistent hash, but the first choice was over its load bound.
    Spill,
    /// Anti-affinity: a different backend than last time.
    Spread,
}

impl Why {
    /// The name used in logs and the explain header.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Balanced => "none",
            Why::New => "new",
            Why::Hit => "hit",
            Why::Invalid => "invalid",
            Why::Expired => "expired",
            Why::RedispatchDown => "redispatch_down",
            Why::RedispatchDrain => "redispatch_drain",
            Why::Hash => "hash",
            Why::Spill => "spill",
            Why::Spread => "spread",
        }
    }
}

/// A pool's stickiness machinery, built with the pool snapshot.
#[derive(Debug)]
pub struct Stickiness {
    /// Mode from the config.
    pub mode: AffinityMode,
    cookie: Option<CookieRouting>,
    hash: Option<HashRouting>,
    trusted: TrustedProxies,
    /// Send `x-tether-affinity` on responses.
    pub explain: bool,
}

#[derive(Debug)]
struct CookieRouting {
    sealer: CookieSealer,
    /// Per key: backend tag -> backend index.
    tags: Vec<HashMap<BackendTag, usize>>,
    cfg: CookieConfig,
}

#[derive(Debug)]
struct HashRouting {
    ring: ConsistentHash,
    key: HashKey,
    max_load: Option<f64>,
}

/// The decision for one request.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The backend to try first; `None` = balance.
    pub first: Option<usize>,
    /// Why.
    pub why: Why,
    /// Set tether's cookie on the response (for whichever backend serves it).
    pub issue: bool,
    /// Issue time to keep when re-sealing (key rotation keeps the pin's age).
    pub issued: Option<u64>,
    /// Hash of the request's hash key, for deterministic retries.
    pub hash: Option<u64>,
}

impl Plan {
    /// The request's pinned backend could not serve it (unreachable, or failed before
    /// responding) and another one will: the client is re-pinned, and the move is counted on
    /// the backend it left. A no-op unless the pin was being honoured.
    pub fn lost_pin(&mut self, backend: &Backend) {
        if self.why == Why::Hit {
            self.why = Why::RedispatchDown;
            self.issue = true;
            self.issued = None;
            backend.stats.count_redispatch();
        }
    }
}

impl Stickiness {
    /// Builds the machinery for `config` over `backends` (indices are the pool's).
    pub fn build(name: &str, config: &PoolConfig, backends: &[std::sync::Arc<Backend>]) -> Self {
        let cookie =
            matches!(config.affinity, AffinityMode::Cookie | AffinityMode::Spread).then(|| {
                let sealer = if config.cookie.keys.is_empty() {
                    CookieSealer::derived(name)
                } else {
                    // Validation already refused short keys; fall back rather than panic.
                    CookieSealer::new(&config.cookie.keys)
                        .unwrap_or_else(|_| CookieSealer::derived(name))
                };
                let tags = (0..sealer.key_count())
                    .map(|k| {
                        let mut map = HashMap::with_capacity(backends.len());
                        for (i, b) in backends.iter().enumerate() {
                            // The first entry for an id wins: a replacement precedes its draining
                            // predecessor in the pool.
                            map.entry(sealer.tag(k, &b.id)).or_insert(i);
                        }
                        map
                    })
                    .collect();
                CookieRouting {
                    sealer,
                    tags,
                    cfg: config.cookie.clone(),
                }
            });
        let hash_key = match config.affinity {
            AffinityMode::IpHash => Some(HashKey::Ip),
            _ if config.balance == crate::config::Balance::Hash => Some(config.hash_key.clone()),
            _ => None,
        };
        let hash = hash_key.map(|key| {
            let ids: Vec<&str> = backends.iter().map(|b| &*b.id).collect();
            let weights: Vec<u32> = backends.iter().map(|b| b.weight()).collect();
            HashRouting {
                ring: ConsistentHash::new(&ids, &weights),
                key,
                max_load: config.max_load,
            }
        });
        Self {
            mode: config.affinity,
            cookie,
            hash,
            // Validation already refused bad entries.
            trusted: TrustedProxies::parse(&config.trusted_proxies).unwrap_or_default(),
            explain: config.explain,
        }
    }

    /// The name of tether's cookie, when this pool uses one.
    pub fn cookie_name(&self) -> Option<&str> {
        self.cookie.as_ref().map(|c| c.cfg.name.as_str())
    }

    /// True when `peer` is a trusted proxy whose forwarding headers are believed.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted.contains(peer)
    }

    /// The client address used for hashing and logs (trusted proxies' headers honoured).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.trusted.client_ip(peer, headers)
    }

    /// Decides where a request goes first.
    pub fn plan(
        &self,
        pool: &Pool,
        headers: &HeaderMap,
        uri: &Uri,
        peer: IpAddr,
        now_secs: u64,
    ) -> Plan {
        let balanced = |why| Plan {
            first: None,
            why,
            issue: false,
            issued: None,
            hash: None,
        };
        if let Some(h) = &self.hash {
            let Some(key) = self.hash_input(&h.key, headers, uri, peer) else {
                return balanced(Why::Balanced);
            };
            return self.plan_hash(pool, h, key);
        }
        let Some(c) = &self.cookie else {
            return balanced(Why::Balanced);
        };
        let repin = |why, from: Option<usize>| {
            if let Some(i) = from {
                pool.backends[i].stats.count_redispatch();
            }
            Plan {
                first: None,
                why,
                issue: true,
                issued: None,
                hash: None,
            }
        };
        let opened = find_cookie(headers, &c.cfg.name).map(|v| c.sealer.open(v));
        if self.mode == AffinityMode::Spread {
            let last = opened
                .and_then(Result::ok)
                .and_then(|o| c.tags[o.key_index].get(&o.pin.backend).copied());
            let first = last
                .and_then(|l| pool.pick_new(&[l]))
                .or_else(|| pool.pick_new(&[]));
            return Plan {
                first,
                why: Why::Spread,
                issue: true,
                issued: None,
                hash: None,
            };
        }
        let max_age = c.cfg.max_age.map(|d| d.as_secs());
        match opened {
            None => repin(Why::New, None),
            Some(Err(_)) => repin(Why::Invalid, None),
            Some(Ok(o)) if o.is_expired(now_secs, max_age) => repin(Why::Expired, None),
            Some(Ok(o)) => match c.tags[o.key_index].get(&o.pin.backend) {
                // Authentic, but its backend is no longer in the pool.
                None => repin(Why::RedispatchDown, None),
                Some(&i) => self.pinned(pool, i, &o, repin),
            },
        }
    }

    fn pinned(
        &self,
        pool: &Pool,
        i: usize,
        o: &Opened,
        repin: impl Fn(Why, Option<usize>) -> Plan,
    ) -> Plan {
        let backend = &pool.backends[i];
        let hit = Plan {
            first: Some(i),
            why: Why::Hit,
            // A cookie sealed with an old key is re-sealed with the current one, same age.
            issue: o.rotated(),
            issued: Some(o.pin.issued),
            hash: None,
        };
        match backend.state(&pool.settings.drain) {
            State::Up => hit,
            State::Draining => {
                backend.note_pinned_while_draining();
                hit
            }
            State::Drained => repin(Why::RedispatchDrain, Some(i)),
            State::Down | State::Disabled => repin(Why::RedispatchDown, Some(i)),
        }
    }

    fn plan_hash(&self, pool: &Pool, h: &HashRouting, key: u64) -> Plan {
        let drain = &pool.settings.drain;
        // A draining backend keeps the clients that hash to it until its drain completes.
        // States are read only for the few backends the ring walk visits.
        let unavailable =
            |i: usize| !matches!(pool.backends[i].state(drain), State::Up | State::Draining);
        let picked = match h.max_load {
            None => h.ring.pick(key, unavailable).map(|i| (i, false)),
            Some(factor) => {
                let total: usize = pool.backends.iter().map(|b| b.in_flight()).sum();
                let available = (0..pool.backends.len())
                    .filter(|&i| !unavailable(i))
                    .count();
                h.ring.pick_bounded(
                    key,
                    factor,
                    total,
                    available,
                    |i| pool.backends[i].in_flight(),
                    unavailable,
                )
            }
        };
        if let Some((i, _)) = picked {
            if pool.backends[i].state(drain) == State::Draining {
                pool.backends[i].note_pinned_while_draining();
            }
        }
        Plan {
            first: picked.map(|(i, _)| i),
            why: if picked.is_some_and(|(_, spilled)| spilled) {
                Why::Spill
            } else {
                Why::Hash
            },
            issue: false,
            issued: None,
            hash: Some(key),
        }
    }

    /// The next backend for a hashed request after `tried` failed: the ring's next choice.
    pub fn retry_hash(&self, pool: &Pool, key: u64, tried: &[usize]) -> Option<usize> {
        let h = self.hash.as_ref()?;
        let drain = &pool.settings.drain;
        h.ring.pick(key, |i| {
            tried.contains(&i) || pool.backends[i].state(drain) != State::Up
        })
    }

    fn hash_input(
        &self,
        key: &HashKey,
        headers: &HeaderMap,
        uri: &Uri,
        peer: IpAddr,
    ) -> Option<u64> {
        match key {
            HashKey::Ip => Some(match self.client_ip(peer, headers) {
                IpAddr::V4(v4) => hash_key(&v4.octets()),
                IpAddr::V6(v6) => hash_key(&v6.octets()),
            }),
            HashKey::Header(name) => headers.get(name).map(|v| hash_key(v.as_bytes())),
            HashKey::Cookie(name) => find_cookie(headers, name).map(|v| hash_key(v.as_bytes())),
            HashKey::Query(name) => uri.query().and_then(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| hash_key(v.as_bytes()))
            }),
        }
    }

    /// The `Set-Cookie` value pinning `backend_id`, issued at `issued` (unix seconds).
    pub fn set_cookie(&self, backend_id: &str, issued: u64, tls: bool) -> Option<HeaderValue> {
        let c = self.cookie.as_ref()?;
        let value = c.sealer.seal(&c.sealer.pin(backend_id, issued));
        let cfg = &c.cfg;
        let mut s = format!("{}={value}; Path={}", cfg.name, cfg.path);
        if let Some(d) = &cfg.domain {
            s.push_str("; Domain=");
            s.push_str(d);
        }
        if let Some(age) = cfg.max_age {
            s.push_str(&format!("; Max-Age={}", age.as_secs()));
        }
        if cfg.secure.unwrap_or(tls) {
            s.push_str("; Secure");
        }
        if cfg.http_only {
            s.push_str("; HttpOnly");
        }
        s.push_str(match cfg.same_site {
            SameSite::Lax => "; SameSite=Lax",
            SameSite::Strict => "; SameSite=Strict",
            SameSite::None => "; SameSite=None",
        });
        HeaderValue::from_str(&s).ok()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (first occurrence).
pub fn find_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// Removes cookie `name` from the request's `Cookie` headers (tether's cookie is tether's
/// business; the backend never sees it).
pub fn strip_cookie(headers: &mut HeaderMap, name: &str) {
    if find_cookie(headers, name).is_none() {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split_once('=').is_none_or(|(k, _)| k != name))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(header::COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_and_stripped() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; tether_app=XYZ; b=2"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(find_cookie(&h, "tether_app"), Some("XYZ"));
        assert_eq!(find_cookie(&h, "c"), Some("3"));
        strip_cookie(&mut h, "tether_app");
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2; c=3");
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, HeaderValue::from_static("tether_app=XYZ"));
        strip_cookie(&mut only, "tether_app");
        assert!(!only.contains_key(header::COOKIE));
    }
}
