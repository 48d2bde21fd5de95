//! One client request from start to end: routing snapshot, affinity plan, the rewritten
//! request forwarded, and the backend's response made the client's (cookie, explain header,
//! upgrade), or a failure answered.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::{local_response, ProxyBody};
use super::forward::forward;
use super::listener::ListenerCtx;
use super::rewrite::to_upstream;
use super::target;
use super::upgrade::Upgrade;
use crate::access::AccessRecord;
use crate::affinity::cookie_header::strip_cookie;
use crate::client::Busy;
use crate::config::{AffinityMode, Protocol};
use crate::headers;
use crate::request_id::{self, X_REQUEST_ID};
use crate::snapshot::Shared;

/// Proxies one client request; every failure becomes a response, never an error. The body is
/// `None` for a bodiless request read by tether's own HTTP/1 path ([`crate::h1`]), hyper's
/// otherwise.
pub async fn handle(
    shared: Arc<Shared>,
    listener: Arc<ListenerCtx>,
    client: SocketAddr,
    busy: Busy,
    req: Request<Option<Incoming>>,
) -> Result<Response<ProxyBody>, Infallible> {
    let log = AccessRecord::log_enabled();
    let mut record = AccessRecord {
        listener: Arc::clone(&listener.name),
        client,
        method: req.method().clone(),
        path: if log {
            req.uri().path().to_owned()
        } else {
            String::new()
        },
        status: StatusCode::BAD_GATEWAY,
        route: None,
        backend: None,
        retries: 0,
        request_id: None,
        affinity: "none",
        bytes: 0,
        aborted: false,
        start: Instant::now(),
        enabled: log,
    };
    let client_version = req.version();
    let has_body = req
        .body()
        .as_ref()
        .is_some_and(|b| !http_body::Body::is_end_stream(b));
    if let Some(refused) = target::refusal(&req, has_body) {
        record.status = refused.status;
        let mut resp = local_response(refused.status, &format!("{}\n", refused.reason));
        // A client that sends this is confused or hostile: do not read another request from it.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(identified(resp, &mut record, request_id::generate()));
    }
    let snapshot = shared.snapshot.load();
    let routed = match snapshot.listeners.get(&*listener.name) {
        Some(table) => table.route(req.method(), req.uri(), req.headers()),
        // A reload removed the listener; its open connections are served by the pool it had.
        None => listener
            .pool
            .as_ref()
            .and_then(|p| snapshot.pools.get(p))
            .map(|p| (p, None)),
    };
    let Some((pool, route)) = routed else {
        record.status = StatusCode::NOT_FOUND;
        let resp = local_response(record.status, "no route matches this request\n");
        return Ok(identified(resp, &mut record, request_id::generate()));
    };
    if log {
        record.route = route.map(|r| Arc::clone(&r.name));
    }
    // Only a cookie's age needs the wall clock.
    let now_secs = pool.sticky.cookie_name().map_or(0, |_| unix_now());
    let mut plan = pool.plan(req.headers(), req.uri(), client.ip(), now_secs);
    let mut req = req;
    if let Some(name) = pool.sticky.cookie_name() {
        strip_cookie(req.headers_mut(), name);
    }
    let upgrade = Upgrade::take(&mut req);
    let trusted = pool.sticky.is_trusted(client.ip());
    let h2_upstream = pool.settings.upstream.protocol == Protocol::H2;
    let id = request_id::for_request(req.headers(), trusted);
    let mut req = to_upstream(req, client, trusted, &listener, h2_upstream);
    req.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
    record.request_id = Some(id.clone());
    if let Some(upgrade) = &upgrade {
        upgrade.forward(req.headers_mut());
    }
    let result = forward(pool, req, &mut record, &mut plan).await;
    record.affinity = plan.why.as_str();
    Ok(match result {
        Ok((mut resp, in_flight, release)) => {
            let switched = Upgrade::answer(upgrade.as_ref(), &mut resp);
            // Answer in the client's protocol, whatever the backend spoke.
            *resp.version_mut() = client_version;
            let backend = in_flight.backend();
            if plan.issue {
                let issued = plan.issued.unwrap_or_else(unix_now);
                if let Some(v) =
                    pool.sticky
                        .set_cookie(&backend.id, issued, listener.proto == "https")
                {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
                if plan.issued.is_none() && pool.sticky.mode == AffinityMode::Cookie {
                    backend.stats.count_pin();
                }
            }
            if pool.sticky.explain {
                let explain = format!("{}; backend={}", plan.why.as_str(), backend.id);
                if let Ok(v) = HeaderValue::from_str(&explain) {
                    resp.headers_mut().insert(headers::EXPLAIN.clone(), v);
                }
            }
            record.status = resp.status();
            record.backend = Some(Arc::clone(&backend.id));
            resp.headers_mut().insert(X_REQUEST_ID.clone(), id);
            if let (true, Some(upgrade)) = (switched, upgrade) {
                let tunnel = upgrade.splice(resp, in_flight, busy, pool.settings.drain);
                return Ok(tunnel.map(|()| ProxyBody::Local(None)));
            }
            resp.map(|inner| ProxyBody::Upstream {
                inner,
                in_flight,
                record,
                busy: Some(busy),
                release,
            })
        }
        Err(e) => {
            record.status = e.status();
            tracing::debug!(listener.name = %listener.name, error = %e, "request failed");
            let resp = local_response(e.status(), &format!("{e}\n"));
            identified(resp, &mut record, id)
        }
    })
}

/// `resp` with `id` as its `X-Request-Id`, and `id` in the access record.
fn identified(
    mut resp: Response<ProxyBody>,
    record: &mut AccessRecord,
    id: HeaderValue,
) -> Response<ProxyBody> {
    resp.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
    record.request_id = Some(id);
    resp
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
