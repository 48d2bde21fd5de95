//! Per request: pick a backend, forward, and retry elsewhere when the request was never sent.
//!
//! The request path reads one routing snapshot and touches only atomics and its worker's idle
//! stack of the backend (a mutex held for a push or a pop). A backend that cannot be connected
//! to is skipped and never tried twice for the same request; the request body is untouched
//! until a connection exists, so this is safe for every method. Once a request has been sent,
//! a failure is answered, not retried (unless `retry_idempotent` replays it elsewhere, or a
//! reused connection was found closed before any response, see `h1_client`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use smallvec::SmallVec;
use tokio::time::Instant;

use crate::access::AccessRecord;
use crate::affinity::sticky::{strip_cookie, Plan};
use crate::backend::{Backend, InFlight};
use crate::body::{ProxyBody, UpstreamBody};
use crate::client_body::{ClientBody, TooSlow};
use crate::config::AffinityMode;
use crate::error::ProxyError;
use crate::h1_client;
use crate::headers;
use crate::pool::{Pool, PoolSettings, Routes};
use crate::server::Busy;
use crate::stats;
use crate::upgrade;
use crate::upstream::{self, ConnectError, Release, Sender};

/// State shared by every request of the process.
#[derive(Debug)]
pub struct Shared {
    /// The current routing snapshot; replaced whole on reload.
    pub routes: ArcSwap<Routes>,
}

/// What a request needs to know about the listener that accepted it.
#[derive(Debug)]
pub struct ListenerCtx {
    /// Listener name, for logs.
    pub name: Arc<str>,
    /// Pool the listener forwards to.
    pub pool: String,
    /// Scheme clients used (`http` or `https`), for `X-Forwarded-Proto`.
    pub proto: &'static str,
    /// Slowest accepted request body, bytes per second (0 = no check).
    pub min_body_rate: u64,
    /// Time before the body rate is enforced.
    pub body_grace: std::time::Duration,
}

/// Proxies one client request; every failure becomes a response, never an error.
pub async fn handle(
    shared: Arc<Shared>,
    listener: Arc<ListenerCtx>,
    client: SocketAddr,
    busy: Busy,
    req: Request<Incoming>,
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
        backend: None,
        retries: 0,
        affinity: "none",
        bytes: 0,
        aborted: false,
        start: Instant::now(),
        enabled: log,
    };
    let client_version = req.version();
    // RFC 9112 3.2: more than one Host is answered 400, never guessed at.
    if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
        record.status = StatusCode::BAD_REQUEST;
        let mut resp = local_response(record.status, "more than one Host header\n");
        // A client that sends this is confused or hostile: do not read another request from it.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(resp);
    }
    let routes = shared.routes.load();
    let Some(pool) = routes.pools.get(&listener.pool) else {
        record.status = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(local_response(record.status, "no backend available\n"));
    };
    // Only a cookie's age needs the wall clock.
    let now_secs = pool.sticky.cookie_name().map_or(0, |_| unix_now());
    let mut plan = pool
        .sticky
        .plan(pool, req.headers(), req.uri(), client.ip(), now_secs);
    let mut req = req;
    if let Some(name) = pool.sticky.cookie_name() {
        strip_cookie(req.headers_mut(), name);
    }
    let upgrade = upgrade::requested(&req).map(|proto| (proto, hyper::upgrade::on(&mut req)));
    let trusted = pool.sticky.is_trusted(client.ip());
    let h2_upstream = pool.settings.upstream.protocol == crate::upstream::Protocol::H2;
    let mut req = to_upstream(req, client, trusted, &listener, h2_upstream);
    if let Some((proto, _)) = &upgrade {
        upgrade::restore_headers(req.headers_mut(), proto.clone());
    }
    let result = forward(pool, req, &mut record, &mut plan).await;
    record.affinity = plan.why.as_str();
    Ok(match result {
        Ok((mut resp, in_flight, release)) => {
            let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
            let upgraded_to = switching
                .then(|| resp.headers().get(header::UPGRADE).cloned())
                .flatten();
            headers::strip_hop_by_hop(resp.headers_mut());
            if let Some(proto) = upgraded_to.filter(|_| upgrade.is_some()) {
                upgrade::restore_headers(resp.headers_mut(), proto);
            }
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
            if let (true, Some((_, client_side))) = (switching, upgrade) {
                let tunnel = upgrade::Tunnel {
                    client: client_side,
                    in_flight,
                    busy,
                    drain: pool.settings.drain,
                };
                return Ok(upgrade::splice(resp, tunnel).map(|()| ProxyBody::Local(None)));
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
            tracing::debug!(listener = %listener.name, error = %e, "request failed");
            local_response(e.status(), &format!("{e}\n"))
        }
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A short plain-text response produced by tether.
pub fn local_response(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::local(text.to_owned()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Rewrites a client request into the HTTP/1.1 origin-form request a backend expects.
fn to_upstream(
    req: Request<Incoming>,
    client: SocketAddr,
    trusted_peer: bool,
    listener: &ListenerCtx,
    h2_upstream: bool,
) -> Request<ClientBody> {
    let proto = listener.proto;
    let (mut parts, body) = req.into_parts();
    // `TE: trailers` is the one TE a proxy passes on, and only to HTTP/2 backends: gRPC
    // servers require it there. To HTTP/1.1 backends it is hop-by-hop like any TE.
    let te_trailers = h2_upstream
        && parts
            .headers
            .get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    headers::strip_hop_by_hop(&mut parts.headers);
    if te_trailers {
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    // The URI's authority becomes Host: an HTTP/1 absolute-form target overrides Host
    // (RFC 9112 3.2.2), so the backend sees the one authority tether routed by; HTTP/2 clients
    // send it as :authority, and HTTP/1.1 backends need it as Host.
    let http1 = matches!(parts.version, Version::HTTP_10 | Version::HTTP_11);
    if http1 || !parts.headers.contains_key(header::HOST) {
        if let Some(v) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(header::HOST, v);
        }
    }
    let host = parts.headers.get(header::HOST).cloned();
    headers::set_forwarded(
        &mut parts.headers,
        client.ip(),
        trusted_peer,
        proto,
        host.as_ref(),
    );
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        parts.uri = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    }
    parts.version = Version::HTTP_11;
    let body = ClientBody::new(body, listener.min_body_rate, listener.body_grace);
    Request::from_parts(parts, body)
}

/// What is needed to send a safe, bodiless request again.
struct Replay {
    method: http::Method,
    uri: Uri,
    headers: http::HeaderMap,
}

impl Replay {
    /// A copy of `req` if it is GET, HEAD or OPTIONS without a body.
    fn of(req: &Request<ClientBody>) -> Option<Replay> {
        use http::Method;
        use http_body::Body as _;
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        (safe && req.body().is_end_stream()).then(|| Replay {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        })
    }

    fn request(&self) -> Request<ClientBody> {
        let mut req = Request::new(ClientBody::empty());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// HTTP/2 carries scheme and authority as pseudo-headers: the request needs an absolute URI.
fn absolute_uri(req: &mut Request<ClientBody>, settings: &PoolSettings, backend: &Backend) {
    let scheme = if settings.upstream.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let authority = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| backend.addr.to_string(), str::to_owned);
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    if let Ok(uri) = Uri::try_from(format!("{scheme}://{authority}{path}")) {
        *req.uri_mut() = uri;
    }
}

/// Why one attempt on one backend did not produce a response.
// The large variant carries the request back for the next attempt; boxing it would cost an
// allocation on every retry for nothing.
#[allow(clippy::large_enum_variant)]
enum Failure {
    /// Nothing was sent; the request comes back for the next backend.
    NotSent(Request<ClientBody>, ConnectError),
    /// The request was sent (at least partly) and then failed.
    Sent(ProxyError),
}

/// Sends `req` to the planned backend, then to others in the balancer's (or the hash ring's)
/// order until one answers. A pinned backend that cannot be reached re-pins the client.
async fn forward(
    pool: &Pool,
    mut req: Request<ClientBody>,
    record: &mut AccessRecord,
    plan: &mut Plan,
) -> Result<(Response<UpstreamBody>, InFlight, Release), ProxyError> {
    // Inline: no allocation unless a request tries more than four backends.
    let mut tried: SmallVec<[usize; 4]> = SmallVec::new();
    let mut next = plan.first;
    // The copy costs a header-map clone, so it is made only where a replay could happen.
    let replay = (pool.settings.retry_idempotent && pool.backends.len() > 1)
        .then(|| Replay::of(&req))
        .flatten();
    loop {
        let pick = next.take().or_else(|| match plan.hash {
            Some(key) => pool
                .sticky
                .retry_hash(pool, key, &tried)
                .or_else(|| pool.pick_new(&tried)),
            None => pool.pick_new(&tried),
        });
        let Some(i) = pick else {
            return Err(if tried.is_empty() {
                ProxyError::NoBackend
            } else {
                ProxyError::AllUnreachable {
                    attempts: tried.len(),
                }
            });
        };
        tried.push(i);
        let backend = &pool.backends[i];
        let in_flight = backend.start_request();
        let sent_at = Instant::now();
        let outcome = attempt(backend, &pool.settings, req).await;
        let passive = &pool.settings.passive;
        match outcome {
            Ok((resp, release)) => {
                let status = resp.status();
                backend
                    .stats
                    .count_response(status.as_u16(), sent_at.elapsed());
                note_outcome(pool, backend, !(passive.on_5xx && status.is_server_error()));
                record.retries = tried.len() - 1;
                return Ok((resp, in_flight, release));
            }
            Err(Failure::NotSent(back, e)) => {
                // The pinned backend is unreachable (e.g. killed, not yet seen down).
                plan.lost_pin(backend);
                backend.stats.count_failure(stats::Failure::Connect);
                note_outcome(pool, backend, false);
                tracing::warn!(pool = %pool.name, backend.id = %backend.id, backend.addr = %backend.addr, error = %e, "backend unreachable, trying another");
                req = back;
            }
            // The client's body failed (malformed chunking, too slow, client gone): the
            // client's fault, so it counts against neither the backend's health nor its stats.
            Err(Failure::Sent(ProxyError::Upstream(e))) if e.is_user() => {
                record.backend = Some(Arc::clone(&backend.id));
                tracing::debug!(pool = %pool.name, backend.id = %backend.id, error = %e, "client request body failed");
                return Err(if TooSlow::caused(&e) {
                    ProxyError::ClientTooSlow
                } else {
                    ProxyError::ClientBody
                });
            }
            Err(Failure::Sent(e)) => {
                let kind = match e {
                    ProxyError::Timeout => stats::Failure::Timeout,
                    _ => stats::Failure::Upstream,
                };
                backend.stats.count_failure(kind);
                note_outcome(pool, backend, false);
                // A safe, bodiless request that died before any response (reset, closed) is
                // replayed elsewhere; a timeout is not (the backend may still be working on it).
                if let (Some(replay), stats::Failure::Upstream) = (&replay, kind) {
                    tracing::warn!(pool = %pool.name, backend.id = %backend.id, error = ?e, "upstream failed before responding; replaying the idempotent request on another backend");
                    plan.lost_pin(backend);
                    req = replay.request();
                    continue;
                }
                record.backend = Some(Arc::clone(&backend.id));
                tracing::warn!(pool = %pool.name, backend.id = %backend.id, error = ?e, "upstream request failed");
                return Err(e);
            }
        }
    }
}

/// Feeds passive health; logs an ejection.
fn note_outcome(pool: &Pool, backend: &Backend, ok: bool) {
    if let Some(period) = backend.record_outcome(ok, &pool.settings.passive) {
        tracing::warn!(pool = %pool.name, backend.id = %backend.id, eject_for = ?period, "backend ejected after consecutive failures");
        if pool.settings.health.is_some() {
            backend.require_recheck();
        }
    }
}

/// A connection to send one request on.
enum Conn {
    /// Through hyper's client.
    Hyper(Sender),
    /// A plain socket that [`h1_client`] drives in this task, and whether it is reused.
    Bare(tokio::net::TcpStream, bool),
}

/// One backend: reuse an idle connection or open one, then send.
async fn attempt(
    backend: &Arc<Backend>,
    settings: &PoolSettings,
    mut req: Request<ClientBody>,
) -> Result<(Response<UpstreamBody>, Release), Failure> {
    // Bodiless requests to plain HTTP/1.1 backends skip hyper's client (see `h1_client`).
    let inline = settings.upstream.plain_h1() && h1_client::eligible(&req);
    let reused = match backend.idle.checkout(settings.keepalive_timeout) {
        Some(upstream::Reuse::Live(sender)) => Some(Conn::Hyper(sender)),
        Some(upstream::Reuse::Parked(stream)) if inline => Some(Conn::Bare(stream, true)),
        // A fresh HTTP/1 handshake on a socket known to be open: no I/O, nothing to wait for.
        Some(upstream::Reuse::Parked(stream)) => {
            upstream::resume(stream, backend.addr, &backend.idle)
                .await
                .ok()
                .map(Conn::Hyper)
        }
        None => None,
    };
    if let Some(conn) = reused {
        match send(conn, backend, settings, req).await {
            // The backend closed the idle connection just as we took it: not the backend's
            // fault and nothing was sent, so a fresh connection to it gets the request.
            Err(Failure::NotSent(back, _)) => req = back,
            done => return done,
        }
    }
    // Boxed: opening a connection (TLS and HTTP/2 handshakes) takes a 6.8 KB future, which
    // inline would size every request's future (10 KB instead of 4.8) for a path most
    // requests never take.
    let fresh = if inline {
        Box::pin(upstream::connect_plain(
            backend.addr,
            settings.connect_timeout,
        ))
        .await
        .map(|stream| Conn::Bare(stream, false))
    } else {
        Box::pin(upstream::connect(
            backend.addr,
            settings.connect_timeout,
            &settings.upstream,
            &backend.idle,
        ))
        .await
        .map(Conn::Hyper)
    };
    match fresh {
        Ok(conn) => send(conn, backend, settings, req).await,
        Err(e) => Err(Failure::NotSent(req, e)),
    }
}

async fn send(
    conn: Conn,
    backend: &Arc<Backend>,
    settings: &PoolSettings,
    mut req: Request<ClientBody>,
) -> Result<(Response<UpstreamBody>, Release), Failure> {
    let mut sender = match conn {
        Conn::Hyper(sender) => sender,
        Conn::Bare(stream, reused) => {
            let exchange = h1_client::exchange(stream, &req, backend, reused);
            return match tokio::time::timeout(settings.response_timeout, exchange).await {
                Err(_) => Err(Failure::Sent(ProxyError::Timeout)),
                Ok(Ok(resp)) => Ok((resp.map(UpstreamBody::Inline), Release::none())),
                Ok(Err(h1_client::Failed { sent: false, error })) => Err(Failure::NotSent(
                    req,
                    ConnectError::Io(std::io::Error::other(error)),
                )),
                Ok(Err(h1_client::Failed { error, .. })) => {
                    Err(Failure::Sent(ProxyError::UpstreamH1(error)))
                }
            };
        }
    };
    if let Sender::H2(_) = sender {
        absolute_uri(&mut req, settings, backend);
    }
    let sent = tokio::time::timeout(settings.response_timeout, sender.send(req)).await;
    match sent {
        Err(_) => Err(Failure::Sent(ProxyError::Timeout)),
        Ok(Ok(resp)) => Ok((resp.map(UpstreamBody::Hyper), Release::new(sender, backend))),
        Ok(Err(mut e)) => match e.take_message() {
            Some(back) => Err(Failure::NotSent(
                back,
                ConnectError::Handshake(e.into_error()),
            )),
            None => Err(Failure::Sent(ProxyError::Upstream(e.into_error()))),
        },
    }
}
