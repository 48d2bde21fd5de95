//! The attacker of the revocation scenario: replays a session's cookies, captured just before
//! its user logged out, until a backend refuses them or the probe gives up, and records how
//! long the logged-out session kept working.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::http;

/// One logout and its replay. Times are microseconds since the cell's load began.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Replay {
    /// The identity that logged out.
    pub user: u32,
    /// Its session (n-th login attempt).
    pub session: u32,
    /// When the logout's response came back.
    pub logout_us: u64,
    /// Replays that were served as the logged-out session (2xx).
    pub accepted: u32,
    /// The last accepted replay.
    pub last_accepted_us: Option<u64>,
    /// The first refused replay (a status below 500 other than 2xx); `None`: still accepted
    /// when the probe gave up.
    pub rejected_us: Option<u64>,
}

impl Replay {
    /// The revocation window: from the logout to the last replay that still worked (0 when
    /// none did).
    pub fn window(&self) -> Duration {
        let last = self.last_accepted_us.unwrap_or(self.logout_us);
        Duration::from_micros(last.saturating_sub(self.logout_us))
    }
}

/// What the attacker got out of logged-out sessions.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Revocation {
    /// Logouts followed by a replay.
    pub logouts: u64,
    /// Replays served as the logged-out session.
    pub replays_accepted: u64,
    /// Revocation window (logout to the last accepted replay), median over logouts (ms).
    pub window_p50_ms: f64,
    /// ... and the longest (ms).
    pub window_max_ms: f64,
    /// Logouts whose token still worked when the attacker gave up.
    pub still_open: u64,
}

/// The attacker's haul over a cell's logouts (`None`: nobody logged out).
pub fn revocation(replays: &[Replay]) -> Option<Revocation> {
    if replays.is_empty() {
        return None;
    }
    let mut w: Vec<f64> = replays
        .iter()
        .map(|x| x.window().as_secs_f64() * 1000.0)
        .collect();
    w.sort_by(f64::total_cmp);
    Some(Revocation {
        logouts: w.len() as u64,
        replays_accepted: replays.iter().map(|x| u64::from(x.accepted)).sum(),
        window_p50_ms: w[w.len() / 2],
        window_max_ms: w[w.len() - 1],
        still_open: replays.iter().filter(|x| x.rejected_us.is_none()).count() as u64,
    })
}

/// How the attacker probes.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// Time between replays.
    pub every: Duration,
    /// Give up after this long.
    pub give_up: Duration,
    /// Per-request limit.
    pub timeout: Duration,
}

/// Replays `cookie` with `GET /cart` through `addr` every `probe.every`, from the logout on.
pub async fn replay(
    addr: SocketAddr,
    cookie: Option<String>,
    start: Instant,
    probe: Probe,
    (user, session): (u32, u32),
) -> Replay {
    let since = |t: Instant| t.saturating_duration_since(start).as_micros() as u64;
    let logout = Instant::now();
    let mut r = Replay {
        user,
        session,
        logout_us: since(logout),
        accepted: 0,
        last_accepted_us: None,
        rejected_us: None,
    };
    let mut conn = None;
    let tries = (probe.give_up.as_nanos() / probe.every.as_nanos().max(1)) as u32 + 1;
    // Bounded: `tries` probes, each limited by `probe.timeout`.
    for k in 0..tries {
        tokio::time::sleep_until(logout + probe.every * k).await;
        let req = http::request(Method::GET, addr, "/cart", Bytes::new(), cookie.as_deref());
        let attempt = async {
            if conn.is_none() {
                conn = Some(http::connect(addr, None).await.ok()?);
            }
            http::send(conn.as_mut()?, req).await.ok()
        };
        let reply = tokio::time::timeout(probe.timeout, attempt)
            .await
            .ok()
            .flatten();
        let now = since(Instant::now());
        match reply.map(|x| x.status) {
            Some(s) if (200..300).contains(&s) => {
                r.accepted += 1;
                r.last_accepted_us = Some(now);
            }
            Some(s) if s < 500 => {
                r.rejected_us = Some(now);
                break;
            }
            // A failure says nothing about the token: try again on a new connection.
            _ => conn = None,
        }
    }
    r
}
