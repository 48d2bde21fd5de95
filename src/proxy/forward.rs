//! The retry loop: the planned backend first, then others in the balancer's (or the hash
//! ring's) order, until one answers or a failure must be answered.
//!
//! A backend that cannot be connected to is skipped and never tried twice for the same request;
//! the request body is untouched until a connection exists, so this is safe for every method.
//! Once a request has been sent, a failure is answered, not retried (unless `retry_idempotent`
//! replays it elsewhere, or a reused connection was found closed before any response, see
//! [`crate::upstream::h1`]).

use std::sync::Arc;

use http::{Request, Response};
use smallvec::SmallVec;
use tokio::time::Instant;

use super::attempt::{attempt, Failure};
use super::body::UpstreamBody;
use super::error::ProxyError;
use crate::access::AccessRecord;
use crate::backend::{Backend, InFlight};
use crate::client::{ClientBody, TooSlow};
use crate::clock::now_ms;
use crate::pool::sticky::Plan;
use crate::pool::Pool;
use crate::stats;
use crate::upstream::Release;

/// A GET, HEAD or OPTIONS without a body: safe to send again after a failure.
fn replayable(req: &Request<ClientBody>) -> bool {
    use http::Method;
    use http_body::Body as _;
    matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && req.body().is_end_stream()
}

/// Sends `req` to the planned backend, then to others in the balancer's (or the hash ring's)
/// order until one answers. A pinned backend that cannot be reached re-pins the client.
pub(super) async fn forward(
    pool: &Pool,
    mut req: Request<ClientBody>,
    record: &mut AccessRecord,
    plan: &mut Plan,
) -> Result<(Response<UpstreamBody>, InFlight, Release), ProxyError> {
    // Inline: no allocation unless a request tries more than four backends.
    let mut tried: SmallVec<[usize; 4]> = SmallVec::new();
    let mut next = plan.first;
    // The request comes back from a failed attempt only where it may be replayed.
    let replay = pool.settings.retry_idempotent && pool.backends.len() > 1 && replayable(&req);
    // Backends passed over at `max_connections`: with no other to try, the request waits for
    // the first of them.
    let mut full: SmallVec<[usize; 4]> = SmallVec::new();
    let mut attempts = 0;
    // This request's place among the pool's replaying requests, from its first replay on.
    let mut replaying = None;
    let max = pool.settings.max_connections;
    loop {
        let pinned = next.is_some();
        let pick = next.take().or_else(|| match plan.hash {
            Some(key) => pool
                .retry_hash(key, &tried)
                .or_else(|| pool.pick_new(&tried)),
            None => pool.pick_new(&tried),
        });
        let (i, in_flight) = match pick {
            Some(i) => {
                tried.push(i);
                match pool.backends[i].try_start_request(max) {
                    Some(guard) => (i, guard),
                    // Another backend first; a pinned client waits for its own.
                    None if !pinned => {
                        full.push(i);
                        continue;
                    }
                    None => (i, queue(pool, i, record).await?),
                }
            }
            None => match full.first().copied() {
                Some(i) => {
                    full.clear();
                    (i, queue(pool, i, record).await?)
                }
                None if attempts == 0 => return Err(ProxyError::NoBackend),
                None => return Err(ProxyError::AllUnreachable { attempts }),
            },
        };
        attempts += 1;
        // Set per attempt, so a request that fails on every backend logs how many it retried.
        record.retries = attempts - 1;
        let backend = &pool.backends[i];
        let sent_at = Instant::now();
        // Passive health ignores outcomes of requests sent before an ejection.
        let started = now_ms();
        let outcome = attempt(backend, &pool.settings, req, replay).await;
        let passive = &pool.settings.passive;
        match outcome {
            Ok((mut resp, release)) => {
                if let UpstreamBody::Inline(body) = resp.body_mut() {
                    if let Err(e) = body.check_start() {
                        // Nothing of it can reach the client: answer 502, not an empty 200.
                        backend.stats.count_failure(stats::Failure::Upstream);
                        note_outcome(pool, backend, started, false);
                        record.backend = Some(Arc::clone(&backend.id));
                        record.retries = attempts - 1;
                        if may_warn(pool, backend) {
                            tracing::warn!(pool.name = %pool.name, backend.id = %backend.id, error = %e, "upstream response body broken from its start");
                        }
                        return Err(ProxyError::UpstreamH1(e));
                    }
                }
                let status = resp.status();
                backend
                    .stats
                    .count_response(status.as_u16(), sent_at.elapsed());
                note_outcome(
                    pool,
                    backend,
                    started,
                    !(passive.on_5xx && status.is_server_error()),
                );
                return Ok((resp, in_flight, release));
            }
            Err(Failure::Resendable(back, e)) => {
                // The pinned backend is unreachable (e.g. killed, not yet seen down).
                if plan.lost_pin() {
                    backend.stats.count_redispatch();
                }
                backend.stats.count_failure(stats::Failure::Connect);
                let ejected = backend.record_connect_failure(started, &pool.settings.passive);
                note_ejection(pool, backend, ejected);
                if let Err(denied) = pool.retry.allow_connect(attempts) {
                    backend.stats.count_retry_refused();
                    record.backend = Some(Arc::clone(&backend.id));
                    if may_warn(pool, backend) {
                        tracing::warn!(pool.name = %pool.name, backend.id = %backend.id, backend.addr = %backend.addr, error = %e, limit = denied.as_str(), "backend unreachable, not retried");
                    }
                    return Err(ProxyError::RetryLimit {
                        attempts,
                        why: denied.as_str(),
                    });
                }
                if may_warn(pool, backend) {
                    tracing::warn!(pool.name = %pool.name, backend.id = %backend.id, backend.addr = %backend.addr, error = %e, "backend unreachable, trying another");
                }
                req = back;
            }
            // The client's body failed (malformed chunking, too slow, client gone): the
            // client's fault, so it counts against neither the backend's health nor its stats.
            Err(Failure::Sent(ProxyError::Upstream(e), _)) if e.is_user() => {
                record.backend = Some(Arc::clone(&backend.id));
                tracing::debug!(pool.name = %pool.name, backend.id = %backend.id, error = %e, "client request body failed");
                return Err(if TooSlow::caused(&e) {
                    ProxyError::ClientTooSlow
                } else {
                    ProxyError::ClientBody
                });
            }
            Err(Failure::Sent(e, back)) => {
                let kind = match e {
                    ProxyError::Timeout => stats::Failure::Timeout,
                    _ => stats::Failure::Upstream,
                };
                backend.stats.count_failure(kind);
                note_outcome(pool, backend, started, false);
                // A safe, bodiless request that died before any response (reset, closed) is
                // replayed elsewhere; a timeout is not (the backend may still be working on it).
                let again = back
                    .filter(|_| kind == stats::Failure::Upstream)
                    .filter(|_| {
                        let allowed = pool
                            .retry
                            .allow(attempts, &mut replaying, || pool.in_flight());
                        if allowed.is_err() {
                            backend.stats.count_retry_refused();
                        }
                        allowed.is_ok()
                    });
                if let Some(again) = again {
                    if may_warn(pool, backend) {
                        tracing::warn!(pool.name = %pool.name, backend.id = %backend.id, error = ?e, "upstream failed before responding; replaying the idempotent request on another backend");
                    }
                    if plan.lost_pin() {
                        backend.stats.count_redispatch();
                    }
                    req = again;
                    continue;
                }
                record.backend = Some(Arc::clone(&backend.id));
                if may_warn(pool, backend) {
                    tracing::warn!(pool.name = %pool.name, backend.id = %backend.id, error = ?e, "upstream request failed");
                }
                return Err(e);
            }
        }
    }
}

/// Waits in backend `i`'s queue for a slot under `max_connections`; refused (503) when the
/// queue is full or the wait reaches `queue_timeout`.
async fn queue(pool: &Pool, i: usize, record: &mut AccessRecord) -> Result<InFlight, ProxyError> {
    let (b, s) = (&pool.backends[i], &pool.settings);
    let admitted = b
        .queue
        .wait(
            || b.try_start_request(s.max_connections),
            s.max_pending,
            s.queue_timeout,
        )
        .await;
    admitted.ok_or_else(|| {
        b.stats.count_queue_full();
        record.backend = Some(Arc::clone(&b.id));
        ProxyError::QueueFull
    })
}

/// Feeds passive health; logs an ejection.
fn note_outcome(pool: &Pool, backend: &Backend, started: u64, ok: bool) {
    let ejected = backend.record_outcome(ok, started, &pool.settings.passive);
    note_ejection(pool, backend, ejected);
}

/// Logs an ejection; with active checks, the backend must pass them again.
fn note_ejection(pool: &Pool, backend: &Backend, ejected: Option<std::time::Duration>) {
    if let Some(period) = ejected {
        tracing::warn!(pool.name = %pool.name, backend.id = %backend.id, eject_for = ?period, "backend ejected after consecutive failures");
        if pool.settings.health.is_some() {
            backend.require_recheck();
        }
    }
}

/// Whether a per-request warning about `backend` may be logged now (a few per second); the
/// first one after a quiet spell says how many were left out.
fn may_warn(pool: &Pool, backend: &Backend) -> bool {
    match backend.warnings.allow() {
        Some(0) => true,
        Some(left_out) => {
            tracing::warn!(pool.name = %pool.name, backend.id = %backend.id, left_out, per_second = crate::log_limit::PER_SECOND, "similar warnings about this backend were left out");
            true
        }
        None => false,
    }
}
