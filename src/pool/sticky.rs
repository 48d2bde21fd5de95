//! The routing decision for one request: which backend first, why, and whether to (re)issue
//! tether's cookie. The cookie case is one match over what the cookie says and what state its
//! backend is in; nothing here is an error to the client — a bad cookie just re-pins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue};
use http::Uri;

use crate::affinity::client_ip::TrustedProxies;
use crate::affinity::cookie::{BackendTag, CookieSealer, Opened};
use crate::affinity::cookie_header::find_cookie;
use crate::backend::{Backend, DrainPolicy, State};
use crate::balance::hash::{hash_key, ConsistentHash};
use crate::config::{AffinityMode, Balance, CookieConfig, HashKey, PoolConfig, SameSite};

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

/// The decision for one request. Deciding changes nothing; the pool applies what the decision
/// says happened (a redispatch to count, a draining backend's pinned client seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The backend to try first; `None` = balance.
    pub first: Option<usize>,
    /// How the decision was made (the access log's `affinity=`).
    pub why: Why,
    /// Set tether's cookie on the response (for whichever backend serves it).
    pub issue: bool,
    /// Issue time to keep when re-sealing (key rotation keeps the pin's age).
    pub issued: Option<u64>,
    /// Hash of the request's hash key, for deterministic retries.
    pub hash: Option<u64>,
    /// Anti-affinity: the backend the client used last, which the balancer must avoid.
    pub avoid: Option<usize>,
    /// The client's pinned backend, which it was moved off (a redispatch counted on it).
    pub moved_from: Option<usize>,
    /// The client is pinned to this draining backend (which keeps the drain from going quiet).
    pub pinned_draining: Option<usize>,
}

impl Plan {
    /// A plan that leaves the choice to the balancer.
    fn balanced(why: Why) -> Self {
        Plan {
            first: None,
            why,
            issue: false,
            issued: None,
            hash: None,
            avoid: None,
            moved_from: None,
            pinned_draining: None,
        }
    }

    /// A plan that (re)pins the client to whichever backend the balancer picks.
    fn repin(why: Why, moved_from: Option<usize>) -> Self {
        Plan {
            issue: true,
            moved_from,
            ..Plan::balanced(why)
        }
    }

    /// The request's pinned backend could not serve it (unreachable, or failed before
    /// responding) and another one will: the client is re-pinned. True when the pin was being
    /// honoured, so the caller counts the move on the backend it left.
    pub fn lost_pin(&mut self) -> bool {
        if self.why != Why::Hit {
            return false;
        }
        self.why = Why::RedispatchDown;
        self.issue = true;
        self.issued = None;
        true
    }
}

impl Stickiness {
    /// Builds the machinery for `config` over `backends` (indices are the pool's).
    pub fn build(name: &str, config: &PoolConfig, backends: &[Arc<Backend>]) -> Self {
        let cookie =
            matches!(config.affinity, AffinityMode::Cookie | AffinityMode::Spread).then(|| {
                let sealer = if config.cookie.keys.is_empty() {
                    CookieSealer::derived(name)
                } else {
                    // Validation already refused short keys; fall back rather than panic.
                    CookieSealer::new(name, &config.cookie.keys)
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
            _ if config.balance == Balance::Hash => Some(config.hash_key.clone()),
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

    /// Decides where a request goes first, from what the request says and the state of
    /// `backends` (the pool's, in its order). For spread, `first` is left to the balancer,
    /// which must avoid `avoid`.
    pub fn plan(
        &self,
        backends: &[Arc<Backend>],
        drain: &DrainPolicy,
        headers: &HeaderMap,
        uri: &Uri,
        peer: IpAddr,
        now_secs: u64,
    ) -> Plan {
        if let Some(h) = &self.hash {
            return match self.hash_input(&h.key, headers, uri, peer) {
                Some(key) => plan_hash(backends, drain, h, key),
                None => Plan::balanced(Why::Balanced),
            };
        }
        let Some(c) = &self.cookie else {
            return Plan::balanced(Why::Balanced);
        };
        let opened = find_cookie(headers, &c.cfg.name).map(|v| c.sealer.open(v));
        if self.mode == AffinityMode::Spread {
            return Plan {
                avoid: opened
                    .and_then(Result::ok)
                    .and_then(|o| c.tags[o.key_index].get(&o.pin.backend).copied()),
                ..Plan::repin(Why::Spread, None)
            };
        }
        let max_age = c.cfg.max_age.map(|d| d.as_secs());
        match opened {
            None => Plan::repin(Why::New, None),
            Some(Err(_)) => Plan::repin(Why::Invalid, None),
            Some(Ok(o)) if o.is_expired(now_secs, max_age) => Plan::repin(Why::Expired, None),
            Some(Ok(o)) => match c.tags[o.key_index].get(&o.pin.backend) {
                // Authentic, but its backend is no longer in the pool.
                None => Plan::repin(Why::RedispatchDown, None),
                Some(&i) => pinned(&backends[i], i, drain, &o),
            },
        }
    }

    /// The next backend for a hashed request after `tried` failed: the ring's next choice.
    pub fn retry_hash(
        &self,
        backends: &[Arc<Backend>],
        drain: &DrainPolicy,
        key: u64,
        tried: &[usize],
    ) -> Option<usize> {
        let h = self.hash.as_ref()?;
        h.ring.pick(key, |i| {
            tried.contains(&i) || backends[i].state(drain) != State::Up
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

/// The plan for a client whose authentic, unexpired cookie pins it to `backend` (index `i`).
fn pinned(backend: &Backend, i: usize, drain: &DrainPolicy, o: &Opened) -> Plan {
    let hit = Plan {
        first: Some(i),
        // A cookie sealed with an old key is re-sealed with the current one, same age.
        issue: o.rotated(),
        issued: Some(o.pin.issued),
        ..Plan::balanced(Why::Hit)
    };
    match backend.state(drain) {
        State::Up => hit,
        State::Draining => Plan {
            pinned_draining: Some(i),
            ..hit
        },
        State::Drained => Plan::repin(Why::RedispatchDrain, Some(i)),
        State::Down | State::Disabled => Plan::repin(Why::RedispatchDown, Some(i)),
    }
}

/// The plan for a request whose hash key is `key`: the ring's first available backend, or,
/// with a load bound, the first one under it.
fn plan_hash(backends: &[Arc<Backend>], drain: &DrainPolicy, h: &HashRouting, key: u64) -> Plan {
    // A draining backend keeps the clients that hash to it until its drain completes.
    // States are read only for the few backends the ring walk visits.
    let unavailable = |i: usize| !matches!(backends[i].state(drain), State::Up | State::Draining);
    let picked = match h.max_load {
        None => h.ring.pick(key, unavailable).map(|i| (i, false)),
        Some(factor) => {
            let total: usize = backends.iter().map(|b| b.in_flight()).sum();
            let available = (0..backends.len()).filter(|&i| !unavailable(i)).count();
            h.ring.pick_bounded(
                key,
                factor,
                total,
                available,
                |i| backends[i].in_flight(),
                unavailable,
            )
        }
    };
    let first = picked.map(|(i, _)| i);
    Plan {
        first,
        why: if picked.is_some_and(|(_, spilled)| spilled) {
            Why::Spill
        } else {
            Why::Hash
        },
        hash: Some(key),
        pinned_draining: first.filter(|&i| backends[i].state(drain) == State::Draining),
        ..Plan::balanced(Why::Hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    use std::time::Duration;

    use crate::backend::AdminState;
    use crate::config::PoolConfig;

    const NOW: u64 = 1_800_000_000;
    const KEY_OLD: &str = "old-key-0123456789abcdef";
    const KEY_NEW: &str = "new-key-0123456789abcdef";

    /// Two backends `a` and `b` behind `affinity`, cookies good for an hour, sealed with `keys`.
    fn setup(affinity: &str, keys: &[&str]) -> (Stickiness, Vec<Arc<Backend>>) {
        let keys = keys
            .iter()
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\n\
             affinity = \"{affinity}\"\n[pool.p.cookie]\nmax_age = \"1h\"\nkeys = [{keys}]\n\
             [[pool.p.backend]]\nid = \"a\"\naddr = \"127.0.0.1:1\"\n\
             [[pool.p.backend]]\nid = \"b\"\naddr = \"127.0.0.1:2\"\n"
        );
        let config: PoolConfig = crate::config::parse(&text).unwrap().pools["p"].clone();
        let backends: Vec<Arc<Backend>> = config
            .backends
            .iter()
            .map(|b| Arc::new(Backend::new(&b.id, b.addr, b.weight, 0)))
            .collect();
        (Stickiness::build("p", &config, &backends), backends)
    }

    /// A request carrying `cookie` (a full `name=value` pair) if any.
    fn request(cookie: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(c) = cookie {
            h.insert(header::COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    /// The `name=value` pair that `sticky` would set for `backend`, issued at `issued`.
    fn cookie_for(sticky: &Stickiness, backend: &str, issued: u64) -> String {
        let set = sticky.set_cookie(backend, issued, false).unwrap();
        set.to_str().unwrap().split(';').next().unwrap().to_string()
    }

    const OPEN: DrainPolicy = DrainPolicy {
        timeout: Duration::from_secs(3600),
        quiet: Duration::from_secs(3600),
    };
    /// A drain that is over as soon as it starts.
    const OVER: DrainPolicy = DrainPolicy {
        timeout: Duration::ZERO,
        quiet: Duration::ZERO,
    };

    fn plan(
        sticky: &Stickiness,
        backends: &[Arc<Backend>],
        drain: &DrainPolicy,
        cookie: Option<&str>,
    ) -> Plan {
        let uri = Uri::from_static("/");
        sticky.plan(
            backends,
            drain,
            &request(cookie),
            &uri,
            [127, 0, 0, 1].into(),
            NOW,
        )
    }

    #[test]
    fn the_sticky_decision_one_case_at_a_time() {
        struct Case {
            name: &'static str,
            /// Puts backend `b` (index 1) in a state; returns the cookie the client sends.
            arrange: fn(&Stickiness, &Backend) -> Option<String>,
            drain: DrainPolicy,
            first: Option<usize>,
            why: Why,
            issue: bool,
            moved_from: Option<usize>,
            pinned_draining: Option<usize>,
        }
        let pin_b = |s: &Stickiness, _: &Backend| Some(cookie_for(s, "b", NOW - 60));
        let cases = [
            Case {
                name: "no cookie: balanced, then pinned",
                arrange: |_, _| None,
                drain: OPEN,
                first: None,
                why: Why::New,
                issue: true,
                moved_from: None,
                pinned_draining: None,
            },
            Case {
                name: "valid cookie, backend up: served there, cookie kept",
                arrange: pin_b,
                drain: OPEN,
                first: Some(1),
                why: Why::Hit,
                issue: false,
                moved_from: None,
                pinned_draining: None,
            },
            Case {
                name: "valid cookie, backend draining: still served there, seen by the drain",
                arrange: |s, b| {
                    b.set_admin_state(AdminState::Draining);
                    Some(cookie_for(s, "b", NOW - 60))
                },
                drain: OPEN,
                first: Some(1),
                why: Why::Hit,
                issue: false,
                moved_from: None,
                pinned_draining: Some(1),
            },
            Case {
                name: "valid cookie, drain over: re-pinned, counted on the backend left",
                arrange: |s, b| {
                    b.set_admin_state(AdminState::Draining);
                    Some(cookie_for(s, "b", NOW - 60))
                },
                drain: OVER,
                first: None,
                why: Why::RedispatchDrain,
                issue: true,
                moved_from: Some(1),
                pinned_draining: None,
            },
            Case {
                name: "valid cookie, backend down: re-pinned, counted on the backend left",
                arrange: |s, b| {
                    b.set_healthy(false);
                    Some(cookie_for(s, "b", NOW - 60))
                },
                drain: OPEN,
                first: None,
                why: Why::RedispatchDown,
                issue: true,
                moved_from: Some(1),
                pinned_draining: None,
            },
            Case {
                name: "valid cookie, backend disabled: re-pinned like down",
                arrange: |s, b| {
                    b.set_admin_state(AdminState::Disabled);
                    Some(cookie_for(s, "b", NOW - 60))
                },
                drain: OPEN,
                first: None,
                why: Why::RedispatchDown,
                issue: true,
                moved_from: Some(1),
                pinned_draining: None,
            },
            Case {
                name: "tampered cookie: re-pinned, nothing counted",
                arrange: |s, _| {
                    let mut c = cookie_for(s, "b", NOW - 60);
                    let last = c.pop().unwrap();
                    c.push(if last == 'A' { 'B' } else { 'A' });
                    Some(c)
                },
                drain: OPEN,
                first: None,
                why: Why::Invalid,
                issue: true,
                moved_from: None,
                pinned_draining: None,
            },
            Case {
                name: "garbage cookie: re-pinned",
                arrange: |s, _| Some(format!("{}=not-a-cookie", s.cookie_name().unwrap())),
                drain: OPEN,
                first: None,
                why: Why::Invalid,
                issue: true,
                moved_from: None,
                pinned_draining: None,
            },
            Case {
                name: "expired cookie: re-pinned",
                arrange: |s, _| Some(cookie_for(s, "b", NOW - 7200)),
                drain: OPEN,
                first: None,
                why: Why::Expired,
                issue: true,
                moved_from: None,
                pinned_draining: None,
            },
            Case {
                name: "authentic cookie for a backend no longer in the pool: re-pinned",
                arrange: |s, _| Some(cookie_for(s, "gone", NOW - 60)),
                drain: OPEN,
                first: None,
                why: Why::RedispatchDown,
                issue: true,
                moved_from: None,
                pinned_draining: None,
            },
        ];
        for case in cases {
            let (sticky, backends) = setup("cookie", &[KEY_NEW]);
            let cookie = (case.arrange)(&sticky, &backends[1]);
            let got = plan(&sticky, &backends, &case.drain, cookie.as_deref());
            let want = Plan {
                first: case.first,
                why: case.why,
                issue: case.issue,
                issued: case.first.map(|_| NOW - 60),
                hash: None,
                avoid: None,
                moved_from: case.moved_from,
                pinned_draining: case.pinned_draining,
            };
            assert_eq!(got, want, "{}", case.name);
        }
    }

    #[test]
    fn a_cookie_sealed_with_an_old_key_is_honoured_and_resealed_at_its_age() {
        let (old, _) = setup("cookie", &[KEY_OLD]);
        let cookie = cookie_for(&old, "a", NOW - 60);
        let (rotated, backends) = setup("cookie", &[KEY_NEW, KEY_OLD]);
        let got = plan(&rotated, &backends, &OPEN, Some(&cookie));
        assert_eq!((got.first, got.why), (Some(0), Why::Hit));
        assert!(got.issue, "re-sealed with the current key");
        assert_eq!(got.issued, Some(NOW - 60), "the pin keeps its age");
    }

    #[test]
    fn spread_avoids_the_backend_the_client_used_last() {
        let (sticky, backends) = setup("spread", &[KEY_NEW]);
        let cookie = cookie_for(&sticky, "b", NOW - 60);
        let got = plan(&sticky, &backends, &OPEN, Some(&cookie));
        assert_eq!(
            (got.why, got.avoid, got.issue),
            (Why::Spread, Some(1), true)
        );
        let fresh = plan(&sticky, &backends, &OPEN, None);
        assert_eq!((fresh.why, fresh.avoid), (Why::Spread, None));
    }

    #[test]
    fn deciding_counts_nothing() {
        let (sticky, backends) = setup("cookie", &[KEY_NEW]);
        backends[1].set_healthy(false);
        let cookie = cookie_for(&sticky, "b", NOW - 60);
        let got = plan(&sticky, &backends, &OPEN, Some(&cookie));
        assert_eq!(got.moved_from, Some(1));
        assert_eq!(backends[1].stats.snapshot().redispatches, 0);
    }

    #[test]
    fn a_lost_pin_re_pins_once() {
        let (sticky, backends) = setup("cookie", &[KEY_NEW]);
        let cookie = cookie_for(&sticky, "b", NOW - 60);
        let mut got = plan(&sticky, &backends, &OPEN, Some(&cookie));
        assert!(
            got.lost_pin(),
            "a honoured pin that could not serve is lost"
        );
        assert_eq!(
            (got.why, got.issue, got.issued),
            (Why::RedispatchDown, true, None)
        );
        assert!(!got.lost_pin(), "and only once");
    }
}
