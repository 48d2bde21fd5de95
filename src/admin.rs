//! The admin API: tether's own health, the backends' live state, and runtime changes.
//!
//! A separate listener, loopback by default. When `admin.token` is set every request must carry
//! `Authorization: Bearer <token>` (config validation requires a token off loopback). Bad input
//! gets a 4xx with a reason and changes nothing.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::accept::AcceptBackoff;
use crate::backend::AdminState;
use crate::client::{Busy, TimedIo};
use crate::control::{Control, ControlError};
use crate::proxy::local_response;
use crate::proxy::ProxyBody;
use crate::server::stopped;
use crate::stats::BackendSnapshot;

/// Largest admin request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// Admin connections served at once; at the limit the listener stops accepting (new ones wait
/// in the kernel's backlog), so a flood of connections cannot take tether's descriptors or the
/// main thread, which also runs the data plane's accept loops.
pub const MAX_CONNECTIONS: usize = 64;

/// A request head must arrive within this of the connection (or of its first byte, on a
/// keep-alive connection), else the connection is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// An idle keep-alive admin connection is closed after this.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the admin API on `tcp` until `stop` turns true.
pub async fn serve(
    tcp: TcpListener,
    control: Arc<Control>,
    token: Option<String>,
    mut stop: watch::Receiver<bool>,
) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let token: Option<Arc<str>> = token.map(Into::into);
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = AcceptBackoff::default();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&limit).acquire_owned() => permit.expect("semaphore never closed"),
            _ = stopped(&mut stop) => break,
        };
        let (stream, _) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    backoff.pause("admin", &e).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        backoff.succeeded();
        let (control, token, builder) = (Arc::clone(&control), token.clone(), Arc::clone(&builder));
        tokio::spawn(async move {
            // The data plane's deadlines: a head within HEADER_TIMEOUT, idle for IDLE_TIMEOUT.
            let io = TimedIo::new(stream, HEADER_TIMEOUT, IDLE_TIMEOUT, None);
            let activity = io.activity();
            let service = service_fn(move |req| {
                let (control, token) = (Arc::clone(&control), token.clone());
                let busy = Busy::new(&activity);
                async move {
                    let resp = handle(&control, token.as_deref(), req).await;
                    drop(busy);
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = builder.serve_connection(TokioIo::new(io), service).await;
            drop(permit);
        });
    }
}

async fn handle(
    control: &Control,
    token: Option<&str>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    if let Some(expected) = token {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(presented_token);
        if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes())) {
            let mut resp = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            let headers = resp.headers_mut();
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            // A browser opening the dashboard asks for the token as a Basic password.
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tether admin\""),
            );
            return resp;
        }
    }
    if let Some(why) = crate::cross_site::refusal(req.method(), req.headers()) {
        return error(StatusCode::FORBIDDEN, why);
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => local_response(StatusCode::OK, "ok\n"),
        (&Method::GET, [name @ ("dashboard" | "dashboard.js")]) => {
            crate::dashboard::asset(name).expect("listed asset")
        }
        (&Method::GET, ["status"]) => json_response(StatusCode::OK, &status(control)),
        (&Method::GET, ["metrics"]) => {
            let mut resp = Response::new(ProxyBody::local(crate::metrics::render(control)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        (&Method::POST, ["reload"]) => match control.reload().await {
            Ok(summary) => json_response(
                StatusCode::OK,
                &json!({"status": "reloaded", "changes": summary}),
            ),
            Err(e) => refused(e),
        },
        (&Method::POST, ["pools", pool, "backends", id, action]) => {
            let to = match *action {
                "drain" => AdminState::Draining,
                "enable" => AdminState::Enabled,
                "disable" => AdminState::Disabled,
                other => {
                    return error(
                        StatusCode::NOT_FOUND,
                        &format!("unknown action {other:?}; expected drain, enable or disable"),
                    )
                }
            };
            match control.set_admin_state(pool, id, to).await {
                Ok(state) => json_response(
                    StatusCode::OK,
                    &json!({"pool": pool, "id": id, "state": state.as_str()}),
                ),
                Err(e) => refused(e),
            }
        }
        (&Method::PUT, ["pools", pool, "backends", id]) => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Put {
                addr: String,
                weight: Option<i64>,
            }
            let (pool, id) = (pool.to_string(), id.to_string());
            let put: Put = match read_json(req).await {
                Ok(p) => p,
                Err(resp) => return resp,
            };
            match control
                .upsert_backend(&pool, &id, &put.addr, put.weight)
                .await
            {
                Ok(added) => json_response(
                    if added {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    },
                    &json!({"pool": pool, "id": id, "addr": put.addr, "added": added}),
                ),
                Err(e) => refused(e),
            }
        }
        (&Method::DELETE, ["pools", pool, "backends", id]) => {
            match control.remove_backend(pool, id).await {
                Ok(()) => json_response(
                    StatusCode::ACCEPTED,
                    &json!({"pool": pool, "id": id, "state": "draining", "note": "removed once drained"}),
                ),
                Err(e) => refused(e),
            }
        }
        (_, ["healthz" | "status" | "metrics" | "reload"])
        | (_, ["pools", _, "backends", _, ..]) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{method} not allowed on {path}"),
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            &format!("no admin endpoint {method} {path}"),
        ),
    }
}

async fn read_json<T: for<'de> Deserialize<'de>>(
    req: Request<Incoming>,
) -> Result<T, Response<ProxyBody>> {
    let body: Bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body larger than 64 KiB or broken",
            ))
        }
    };
    serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")))
}

fn refused(e: ControlError) -> Response<ProxyBody> {
    let status = match e {
        ControlError::UnknownPool(_) | ControlError::UnknownBackend { .. } => StatusCode::NOT_FOUND,
        ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
        ControlError::Apply(_) => StatusCode::CONFLICT,
    };
    error(status, &e.to_string())
}

fn error(status: StatusCode, reason: &str) -> Response<ProxyBody> {
    json_response(status, &json!({"error": reason}))
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<ProxyBody> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    let mut resp = Response::new(ProxyBody::local(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[derive(Serialize)]
struct BackendStatus<'a> {
    id: &'a str,
    addr: String,
    weight: u32,
    state: &'static str,
    /// Requests in flight on every instance of the id.
    in_flight: usize,
    idle_connections: usize,
    parked_connections: usize,
    /// Present while an operator's drain is in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    drain: Option<crate::backend::DrainProgress>,
    #[serde(flatten)]
    counters: BackendSnapshot,
    /// Earlier instances of the id (another address) still draining after a change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    draining_instances: Vec<DrainingInstance>,
}

#[derive(Serialize)]
struct DrainingInstance {
    addr: String,
    state: &'static str,
    in_flight: usize,
}

fn status(control: &Control) -> serde_json::Value {
    let routes = control.shared.snapshot.load();
    let mut pools = serde_json::Map::new();
    let mut names: Vec<&String> = routes.pools.keys().collect();
    names.sort();
    for name in names {
        let pool = &routes.pools[name];
        let drain = &pool.settings.drain;
        // One entry per id, however many instances of it are still draining.
        let backends: Vec<BackendStatus<'_>> = pool
            .by_id()
            .into_iter()
            .map(|g| BackendStatus {
                id: &g.current.id,
                addr: g.current.addr.to_string(),
                weight: g.current.weight(),
                state: g.current.state(drain).as_str(),
                in_flight: g.in_flight(),
                idle_connections: g.current.idle.len(),
                parked_connections: g.current.idle.parked(),
                drain: g.current.drain_progress(crate::clock::now_ms(), drain),
                counters: g.current.stats.snapshot(),
                draining_instances: g
                    .draining
                    .iter()
                    .map(|b| DrainingInstance {
                        addr: b.addr.to_string(),
                        state: b.state(drain).as_str(),
                        in_flight: b.in_flight(),
                    })
                    .collect(),
            })
            .collect();
        pools.insert(name.clone(), json!({ "backends": backends }));
    }
    json!({ "pools": pools, "listeners": listener_routes(&routes) })
}

/// Each listener's routes in order (name, conditions, pool, requests taken) and default pool.
fn listener_routes(snapshot: &crate::snapshot::Snapshot) -> serde_json::Value {
    let mut listeners = serde_json::Map::new();
    for l in &snapshot.config.listeners {
        let Some(table) = snapshot.listeners.get(&l.name) else {
            continue;
        };
        let routes: Vec<serde_json::Value> = table
            .routes
            .iter()
            .map(|r| {
                let c = &r.config;
                json!({
                    "name": c.name,
                    "host": c.host.as_ref().map(|h| match h {
                        crate::config::HostMatch::Exact(h) => h.clone(),
                        crate::config::HostMatch::Suffix(s) => format!("*{s}"),
                    }),
                    "path_prefix": c.path_prefix,
                    "header": c.header.as_ref().map(|(n, v)| json!({"name": n, "value": v})),
                    "method": c.method.as_ref().map(|m| m.as_str()),
                    "pool": c.pool,
                    "requests": r.requests.load(std::sync::atomic::Ordering::Relaxed),
                })
            })
            .collect();
        listeners.insert(l.name.clone(), json!({ "pool": l.pool, "routes": routes }));
    }
    serde_json::Value::Object(listeners)
}

/// The token an `Authorization` value carries: `Bearer TOKEN`, or `Basic` credentials whose
/// password is the token (what a browser sends for the dashboard; the user name is ignored).
fn presented_token(value: &str) -> Option<String> {
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.to_string());
    }
    let encoded = value.strip_prefix("Basic ")?;
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_string())
}

/// Compares secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
