//! Active health checks: one task per pool owns the rise/fall counters and publishes only an
//! atomic verdict per backend; it logs transitions, not every probe. An HTTP check speaks the
//! pool's own transport (TLS, HTTP/2), on a connection of its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Uri};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::client::ClientBody;
use crate::config::{HealthCheck, HealthConfig, Protocol};
use crate::conn::{IdleConns, UpstreamProto};
use crate::snapshot::Shared;
use crate::upstream;

/// Consecutive results of one backend, owned by the checker task.
#[derive(Debug, Clone, Copy)]
struct Streak {
    healthy: bool,
    passes: u32,
    fails: u32,
}

/// Checks every backend of `pool` every `interval` until the pool disappears or loses its
/// health config.
pub async fn run(shared: Arc<Shared>, pool: String) {
    let mut streaks: HashMap<(Arc<str>, SocketAddr), Streak> = HashMap::new();
    let mut all_down_warned = false;
    loop {
        let routes = shared.snapshot.load_full();
        let Some(p) = routes.pools.get(&pool).cloned() else {
            return;
        };
        let Some(health) = p.settings.health.clone() else {
            return;
        };
        drop(routes);

        let mut probes = JoinSet::new();
        for (i, b) in p.backends.iter().enumerate() {
            let (addr, check, timeout) = (b.addr, health.check.clone(), health.timeout);
            let (proto, name) = (p.settings.upstream.clone(), b.name.clone());
            probes.spawn(async move {
                let outcome = probe(addr, name.as_deref(), &check, timeout, &proto).await;
                (i, outcome)
            });
        }
        let mut live = HashMap::new();
        while let Some(done) = probes.join_next().await {
            let Ok((i, result)) = done else { continue };
            let b = &p.backends[i];
            let key = (Arc::clone(&b.id), b.addr);
            let mut s = streaks.get(&key).copied().unwrap_or(Streak {
                healthy: b.active_healthy(),
                passes: 0,
                fails: 0,
            });
            // Passive ejection may have cleared the verdict behind our back: adopt it.
            if s.healthy != b.active_healthy() {
                s = Streak {
                    healthy: b.active_healthy(),
                    passes: 0,
                    fails: 0,
                };
            }
            let seen = s.healthy;
            update(&mut s, result.is_ok(), &health);
            if b.change_healthy(seen, s.healthy) {
                if s.healthy {
                    tracing::info!(pool.name = %pool, backend.id = %b.id, backend.addr = %b.addr, "health check passed: backend up");
                } else {
                    let reason = result.err().unwrap_or_default();
                    tracing::warn!(pool.name = %pool, backend.id = %b.id, backend.addr = %b.addr, reason = %reason, "health check failed: backend down");
                }
            }
            live.insert(key, s);
        }
        streaks = live;

        let any_up = streaks.values().any(|s| s.healthy);
        if !any_up && !streaks.is_empty() && !all_down_warned {
            let mode = match p.settings.all_down {
                crate::config::AllDown::Route => "routing to them anyway (all_down = \"route\")",
                crate::config::AllDown::Fail => "answering 503 (all_down = \"fail\")",
            };
            tracing::warn!(pool.name = %pool, "every backend is down; {mode}");
        }
        all_down_warned = !any_up;
        tokio::time::sleep(health.interval).await;
    }
}

/// Applies one probe result to a streak with rise/fall hysteresis.
fn update(s: &mut Streak, passed: bool, health: &HealthConfig) {
    if passed {
        s.passes += 1;
        s.fails = 0;
        if !s.healthy && s.passes >= health.rise {
            s.healthy = true;
        }
    } else {
        s.fails += 1;
        s.passes = 0;
        if s.healthy && s.fails >= health.fall {
            s.healthy = false;
        }
    }
}

/// One check of the backend at `addr`, reached by `name` if it has one (its TLS server name
/// unless the pool sets `tls_sni`); `Err` carries a short reason for the log.
async fn probe(
    addr: SocketAddr,
    name: Option<&str>,
    check: &HealthCheck,
    timeout: Duration,
    proto: &UpstreamProto,
) -> Result<(), String> {
    let attempt = async {
        let HealthCheck::Http { path, expect } = check else {
            TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            return Ok(());
        };
        // A connection of its own that is never reused (no idle stack).
        let mut sender = upstream::connect(addr, name, timeout, proto, &IdleConns::new(0))
            .await
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send(request(addr, path, proto)?)
            .await
            .map_err(|e| format!("request: {}", e.into_error()))?;
        let status = resp.status();
        // Read (and discard) the body so the backend sees a complete exchange.
        let _ = resp.into_body().collect().await;
        if (expect.0..=expect.1).contains(&status.as_u16()) {
            Ok(())
        } else {
            Err(format!(
                "status {} outside {}-{}",
                status.as_u16(),
                expect.0,
                expect.1
            ))
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// `GET path` as the pool's protocol wants it: origin form with `Host` and `Connection:
/// close` over HTTP/1.1, an absolute URI (`:scheme`, `:authority`) over HTTP/2.
fn request(
    addr: SocketAddr,
    path: &str,
    proto: &UpstreamProto,
) -> Result<Request<ClientBody>, String> {
    let req = Request::get(path).header(http::header::USER_AGENT, "tether-health");
    let req = match proto.protocol {
        Protocol::Http1 => req
            .header(http::header::HOST, addr.to_string())
            .header(http::header::CONNECTION, "close"),
        Protocol::H2 => {
            let scheme = if proto.tls.is_some() { "https" } else { "http" };
            let uri = Uri::try_from(format!("{scheme}://{addr}{path}"))
                .map_err(|e| format!("request: {e}"))?;
            req.uri(uri)
        }
    };
    req.body(ClientBody::empty())
        .map_err(|e| format!("request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall_need_consecutive_results() {
        let h = HealthConfig {
            check: HealthCheck::Tcp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        };
        let mut s = Streak {
            healthy: true,
            passes: 0,
            fails: 0,
        };
        for passed in [false, false, true, false, false] {
            update(&mut s, passed, &h);
            assert!(s.healthy, "a pass in between resets the fall count");
        }
        update(&mut s, false, &h);
        assert!(!s.healthy, "third consecutive failure");
        update(&mut s, true, &h);
        assert!(!s.healthy);
        update(&mut s, true, &h);
        assert!(s.healthy, "second consecutive pass");
    }
}
