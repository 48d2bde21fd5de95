//! Each listener's route table, built with the snapshot: which pool a request goes to.
//!
//! Routes are tried in file order and the first match wins; a request no route matches goes
//! to the listener's `pool`, or gets 404 when it has none. A listener without routes costs a
//! request nothing beyond the table lookup. Matching reads strings the request already has:
//! no allocation, no lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{header, HeaderMap, Method, Uri};

use crate::config::route::strip_port;
use crate::config::{ListenerConfig, RouteConfig};
use crate::pool::Pool;

/// One route and the pool it sends to.
#[derive(Debug)]
pub struct Route {
    /// The route as configured (its name, conditions and pool name).
    pub config: RouteConfig,
    /// Name shared with access-log records.
    pub name: Arc<str>,
    /// The pool requests that match go to.
    pub pool: Arc<Pool>,
    /// Requests this route took since it was first configured (kept across reloads by name).
    pub requests: Arc<AtomicU64>,
}

/// A listener's routes, in order, and its default pool.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Tried in order; the first that matches wins.
    pub routes: Vec<Route>,
    /// Where a request no route matches goes (`None`: 404).
    pub default: Option<Arc<Pool>>,
}

impl RouteTable {
    /// The table for `listener` over `pools`, keeping each route's counter from `previous`.
    pub fn build(
        listener: &ListenerConfig,
        pools: &HashMap<String, Arc<Pool>>,
        previous: Option<&RouteTable>,
    ) -> Self {
        let routes = listener
            .routes
            .iter()
            .filter_map(|r| {
                // Validation refused routes to unknown pools.
                let pool = Arc::clone(pools.get(&r.pool)?);
                let old = previous.and_then(|t| t.routes.iter().find(|o| o.config.name == r.name));
                Some(Route {
                    name: r.name.as_str().into(),
                    requests: old.map_or_else(Arc::default, |o| Arc::clone(&o.requests)),
                    config: r.clone(),
                    pool,
                })
            })
            .collect();
        Self {
            routes,
            default: listener.pool.as_ref().and_then(|p| pools.get(p)).cloned(),
        }
    }

    /// The pool for a request, and the route that chose it (`None`: the default pool).
    /// `None` when no route matches and the listener has no default pool.
    pub fn route(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Option<(&Arc<Pool>, Option<&Route>)> {
        if self.routes.is_empty() {
            return self.default.as_ref().map(|p| (p, None));
        }
        // HTTP/2's :authority and an HTTP/1 absolute-form target take precedence over Host.
        let host = uri.host().or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(strip_port)
        });
        match self
            .routes
            .iter()
            .find(|r| r.config.matches(host, uri.path(), method, headers))
        {
            Some(route) => {
                route.requests.fetch_add(1, Ordering::Relaxed);
                Some((&route.pool, Some(route)))
            }
            None => self.default.as_ref().map(|p| (p, None)),
        }
    }
}
