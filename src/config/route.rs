//! A listener's routes: which pool a request goes to, by host, path prefix, header and method.
//! The matchers are plain data read on the request path (no allocation per match), and the
//! rules `tether check` applies to them: known pools, no duplicate and no unreachable route.

use http::{HeaderMap, Method};
use toml::Spanned;

use super::problems::Problems;
use super::raw::RawRoute;

/// A host to match: exact, or every subdomain of a suffix (`*.example.com`). Stored lower-case
/// without a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// This host only.
    Exact(String),
    /// Any host ending in this suffix (it starts with a dot), with at least one more label.
    Suffix(String),
}

impl HostMatch {
    /// Parses `api.example.com` or `*.example.com` (case and a trailing port ignored).
    pub fn parse(text: &str) -> Result<Self, String> {
        let host = strip_port(text.trim()).to_ascii_lowercase();
        let (wild, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host.as_str()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(format!(
                "invalid host {text:?}: use a name like \"api.example.com\" or \"*.example.com\""
            ));
        }
        Ok(if wild {
            HostMatch::Suffix(format!(".{name}"))
        } else {
            HostMatch::Exact(name.to_string())
        })
    }

    /// True when `host` (any case, port already removed) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(h) => host.eq_ignore_ascii_case(h),
            HostMatch::Suffix(s) => {
                host.len() > s.len()
                    && host.is_char_boundary(host.len() - s.len())
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }

    /// True when every host `other` matches is matched by `self` too.
    fn covers(&self, other: &HostMatch) -> bool {
        match (self, other) {
            (HostMatch::Exact(a), HostMatch::Exact(b)) => a == b,
            (HostMatch::Exact(_), HostMatch::Suffix(_)) => false,
            (HostMatch::Suffix(s), HostMatch::Exact(h)) => HostMatch::Suffix(s.clone()).matches(h),
            (HostMatch::Suffix(a), HostMatch::Suffix(b)) => b == a || b.ends_with(a.as_str()),
        }
    }
}

/// `host` without a `:port` (an IPv6 literal keeps its brackets).
pub fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i)
            if !host[i..].contains(']') && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[..i]
        }
        _ => host,
    }
}

/// True when `path` is `prefix` or lies under it on a segment boundary: `/v1` matches `/v1`,
/// `/v1/` and `/v1/x`, not `/v10`; `/v1/` matches `/v1/x`, not `/v1`.
pub fn path_under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

/// One `[[listener.route]]`: every condition given must hold; none given matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Name in logs, `/status` and metrics (`route<N>` by default).
    pub name: String,
    /// The request's host (`:authority`, or `Host`).
    pub host: Option<HostMatch>,
    /// A path prefix, matched on segment boundaries.
    pub path_prefix: Option<String>,
    /// A header that must be present with exactly this value (name lower-case).
    pub header: Option<(String, String)>,
    /// The request method.
    pub method: Option<Method>,
    /// The pool requests that match go to.
    pub pool: String,
}

impl RouteConfig {
    /// True when the request matches every condition of this route.
    pub fn matches(
        &self,
        host: Option<&str>,
        path: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> bool {
        self.host
            .as_ref()
            .is_none_or(|h| host.is_some_and(|host| h.matches(host)))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path_under(path, p))
            && self.method.as_ref().is_none_or(|m| m == method)
            && self.header.as_ref().is_none_or(|(name, value)| {
                headers
                    .get_all(name.as_str())
                    .iter()
                    .any(|v| v.as_bytes() == value.as_bytes())
            })
    }

    /// True when every request `later` matches is matched by `self` first.
    fn covers(&self, later: &RouteConfig) -> bool {
        let host = match (&self.host, &later.host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a.covers(b),
        };
        let path = match (&self.path_prefix, &later.path_prefix) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => path_under(b, a),
        };
        let header = self.header.is_none() || self.header == later.header;
        let method = self.method.is_none() || self.method == later.method;
        host && path && header && method
    }
}

/// Validates a listener's routes (`key` is the listener's key path). `pools` says whether a
/// pool name exists.
pub(super) fn validate_routes(
    p: &mut Problems<'_>,
    key: &str,
    raw: &[Spanned<RawRoute>],
    pool_exists: impl Fn(&str) -> bool,
) -> Vec<RouteConfig> {
    let mut routes: Vec<(RouteConfig, &Spanned<RawRoute>)> = Vec::new();
    for (i, spanned) in raw.iter().enumerate() {
        let r = spanned.get_ref();
        let key = format!("{key}.route[{i}]");
        let before = p.list.len();
        if !pool_exists(r.pool.get_ref()) {
            p.add(
                &format!("{key}.pool"),
                &r.pool,
                format_args!(
                    "no pool named {:?} (define [pool.{}])",
                    r.pool.get_ref(),
                    r.pool.get_ref()
                ),
            );
        }
        let host = r
            .host
            .as_ref()
            .and_then(|h| match HostMatch::parse(h.get_ref()) {
                Ok(m) => Some(m),
                Err(e) => {
                    p.add(&format!("{key}.host"), h, e);
                    None
                }
            });
        if let Some(pp) = &r.path_prefix {
            if !pp.get_ref().starts_with('/') {
                p.add(&format!("{key}.path_prefix"), pp, "must start with \"/\"");
            }
        }
        let header = r.header.as_ref().and_then(|h| {
            let (name, value) = (h.get_ref().name.trim(), h.get_ref().value.as_str());
            let ok_name = http::HeaderName::from_bytes(name.as_bytes()).is_ok();
            let ok_value = http::HeaderValue::from_str(value).is_ok();
            if !ok_name || !ok_value {
                p.add(
                    &format!("{key}.header"),
                    h,
                    "needs a valid header name and value",
                );
                return None;
            }
            Some((name.to_ascii_lowercase(), value.to_string()))
        });
        let method = r.method.as_ref().and_then(|m| {
            let text = m.get_ref().to_ascii_uppercase();
            match Method::from_bytes(text.as_bytes()) {
                Ok(method) if text.bytes().all(|b| b.is_ascii_uppercase()) => Some(method),
                _ => {
                    p.add(
                        &format!("{key}.method"),
                        m,
                        format_args!("invalid method {:?}", m.get_ref()),
                    );
                    None
                }
            }
        });
        if p.list.len() != before {
            continue;
        }
        let route = RouteConfig {
            name: r.name.clone().unwrap_or_else(|| format!("route{i}")),
            host,
            path_prefix: r.path_prefix.as_ref().map(|p| p.get_ref().clone()),
            header,
            method,
            pool: r.pool.get_ref().clone(),
        };
        if let Some((earlier, _)) = routes.iter().find(|(e, _)| e.name == route.name) {
            p.add(
                &key,
                spanned,
                format_args!("duplicate route name {:?}", earlier.name),
            );
        } else if let Some((earlier, _)) = routes.iter().find(|(e, _)| e.covers(&route)) {
            let what = if route.covers(earlier) {
                "duplicates"
            } else {
                "can never match: every request it matches is taken first by"
            };
            p.add(
                &key,
                spanned,
                format_args!("route {:?} {what} route {:?}", route.name, earlier.name),
            );
        }
        routes.push((route, spanned));
    }
    routes.into_iter().map(|(r, _)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, prefix: Option<&str>) -> RouteConfig {
        RouteConfig {
            name: "r".into(),
            host: host.map(|h| HostMatch::parse(h).unwrap()),
            path_prefix: prefix.map(str::to_string),
            header: None,
            method: None,
            pool: "p".into(),
        }
    }

    #[test]
    fn hosts_match_exactly_or_by_wildcard_ignoring_case_and_port() {
        let exact = HostMatch::parse("API.example.com:8080").unwrap();
        assert!(exact.matches("api.EXAMPLE.com"));
        assert!(!exact.matches("www.example.com"));
        let wild = HostMatch::parse("*.example.com").unwrap();
        assert!(wild.matches("a.example.com") && wild.matches("a.b.Example.COM"));
        assert!(!wild.matches("example.com") && !wild.matches("badexample.com"));
        assert!(HostMatch::parse("not a host").is_err());
        assert!(HostMatch::parse("*.").is_err());
        assert_eq!(strip_port("a.com:80"), "a.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }

    #[test]
    fn path_prefixes_match_on_segment_boundaries() {
        assert!(
            path_under("/v1", "/v1") && path_under("/v1/", "/v1") && path_under("/v1/x", "/v1")
        );
        assert!(!path_under("/v10", "/v1"));
        assert!(path_under("/v1/x", "/v1/") && !path_under("/v1", "/v1/"));
        assert!(path_under("/anything", "/"));
    }

    #[test]
    fn an_earlier_route_covers_a_later_one_only_when_it_takes_all_its_requests() {
        let all = route(None, None);
        let api = route(Some("api.example.com"), None);
        let wild = route(Some("*.example.com"), None);
        let v1 = route(Some("api.example.com"), Some("/v1"));
        let v1_slash = route(Some("api.example.com"), Some("/v1/"));
        assert!(all.covers(&api) && wild.covers(&api) && api.covers(&v1));
        assert!(!api.covers(&all) && !api.covers(&wild) && !v1.covers(&api));
        assert!(v1.covers(&v1_slash), "/v1 takes everything under /v1/");
        assert!(!v1_slash.covers(&v1), "/v1/ does not take /v1 itself");
        let mut canary = route(None, None);
        canary.header = Some(("x-canary".into(), "1".into()));
        assert!(!canary.covers(&api) && all.covers(&canary));
    }

    #[test]
    fn requests_match_every_condition() {
        let mut r = route(Some("*.example.com"), Some("/v1/"));
        r.method = Some(Method::GET);
        r.header = Some(("x-canary".into(), "1".into()));
        let mut h = HeaderMap::new();
        h.insert("x-canary", "1".parse().unwrap());
        assert!(r.matches(Some("a.example.com"), "/v1/x", &Method::GET, &h));
        assert!(!r.matches(None, "/v1/x", &Method::GET, &h), "no host");
        assert!(!r.matches(Some("a.example.com"), "/v2/x", &Method::GET, &h));
        assert!(!r.matches(Some("a.example.com"), "/v1/x", &Method::POST, &h));
        assert!(!r.matches(
            Some("a.example.com"),
            "/v1/x",
            &Method::GET,
            &HeaderMap::new()
        ));
    }

    fn check(routes: &str, listener_pool: bool) -> Result<crate::config::Config, String> {
        let pool = if listener_pool {
            "pool = \"www\"\n"
        } else {
            ""
        };
        let text = format!(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\n{pool}{routes}\
             [pool.www]\n[[pool.www.backend]]\nid = \"w\"\naddr = \"127.0.0.1:1\"\n\
             [pool.api]\n[[pool.api.backend]]\nid = \"a\"\naddr = \"127.0.0.1:2\"\n"
        );
        crate::config::parse(&text).map_err(|e| e.to_string())
    }

    #[test]
    fn check_names_the_route_key_and_line_of_each_problem() {
        let err = check(
            "[[listener.route]]\nhost = \"api.example.com\"\npool = \"nope\"\n\
             [[listener.route]]\nhost = \"bad host\"\npath_prefix = \"v1\"\nmethod = \"G T\"\npool = \"api\"\n",
            true,
        )
        .unwrap_err();
        assert!(
            err.contains("listener[0].route[0].pool (line 6): no pool named \"nope\""),
            "{err}"
        );
        assert!(
            err.contains("listener[0].route[1].host (line 8): invalid host"),
            "{err}"
        );
        assert!(
            err.contains("listener[0].route[1].path_prefix (line 9): must start with"),
            "{err}"
        );
        assert!(
            err.contains("listener[0].route[1].method (line 10): invalid method"),
            "{err}"
        );
    }

    #[test]
    fn check_refuses_duplicate_and_unreachable_routes() {
        let err = check(
            "[[listener.route]]\nhost = \"*.example.com\"\npool = \"api\"\n\
             [[listener.route]]\nhost = \"api.example.com\"\npath_prefix = \"/v1/\"\npool = \"www\"\n\
             [[listener.route]]\nname = \"again\"\nhost = \"*.EXAMPLE.com\"\npool = \"www\"\n",
            true,
        )
        .unwrap_err();
        assert!(
            err.contains("listener[0].route[1] (line 7): route \"route1\" can never match: every request it matches is taken first by route \"route0\""),
            "{err}"
        );
        assert!(
            err.contains(
                "listener[0].route[2] (line 11): route \"again\" duplicates route \"route0\""
            ),
            "{err}"
        );
    }

    #[test]
    fn a_listener_needs_a_pool_or_routes() {
        let err = check("", false).unwrap_err();
        assert!(err.contains("listener[0] (line 2): needs a pool"), "{err}");
        let only_routes = check(
            "[[listener.route]]\npath_prefix = \"/api\"\npool = \"api\"\n",
            false,
        )
        .unwrap();
        assert_eq!(only_routes.listeners[0].pool, None);
        assert_eq!(only_routes.listeners[0].routes[0].name, "route0");
    }
}
