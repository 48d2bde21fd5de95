//! Every number beside its theory: for the figures a scenario's events predict, the expected
//! value, a tolerance and the basis, derived from the cell's timeline and its raw record (so
//! `recompute` derives them again). Figures without a theory get none: `rows` says so.

use serde::{Deserialize, Serialize};

use crate::limits::rate_figures;
use crate::load::{LoadResult, Outcome};
use crate::rate_theory::{predict, RateCell};
use crate::writes::rmw_losses;
use crate::ws_theory;

/// z for a two-sided 99% normal interval: a figure outside it is off, not unlucky.
const Z99: f64 = 2.576;

/// One figure beside its theory.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Theory {
    /// The metric (`users_lost_ratio`, `users_lost`, `sessions_lost`).
    pub metric: String,
    /// What the theory predicts.
    pub expected: f64,
    /// How far the measured value may be from it.
    pub tolerance: f64,
    /// The measured value.
    pub measured: f64,
    /// Where the prediction comes from, in words.
    pub basis: String,
    /// |measured - expected| <= tolerance.
    pub holds: bool,
}

/// What the theory needs to know about a cell besides its record.
pub struct Setup<'a> {
    /// tether's affinity mode.
    pub affinity: &'a str,
    /// The session store (or app variant).
    pub sessions: &'a str,
    /// Backends pooled at the start.
    pub backends: usize,
    /// Events as carried out: (seconds, action, target).
    pub events: Vec<(f64, &'a str, &'a str)>,
    /// The shop's token lifetime in this cell (s; `None`: tokens never expire).
    pub token_ttl: Option<f64>,
    /// Time between the attacker's replays (s).
    pub replay_every: f64,
    /// The shop's rate limit: L per second, and where it counts (`memory`, `redis`).
    pub rate_limit: Option<(f64, &'a str)>,
    /// How the shop applies concurrent cart adds (`in-process`, `rmw`, `atomic`, `token`).
    pub cart_write: Option<&'a str>,
    /// The pool's drain_timeout (s), when the scenario sets one.
    pub drain_timeout: Option<f64>,
    /// How long the users acted (s).
    pub duration: f64,
    /// A user's mean time between actions (s).
    pub think: f64,
}

fn figure(metric: &str, expected: f64, tolerance: f64, measured: f64, basis: String) -> Theory {
    Theory {
        metric: metric.into(),
        expected,
        tolerance,
        measured,
        holds: (measured - expected).abs() <= tolerance + 1e-9,
        basis,
    }
}

/// The theories that apply to this cell (none when its events predict nothing).
pub fn derive(r: &LoadResult, s: &Setup) -> Vec<Theory> {
    let lost_users = users_where(r, |x| x.lost.is_some(), 0.0);
    let sessions_lost = r.samples.iter().filter(|x| x.lost.is_some()).count() as f64;
    let users = users_where(r, |_| true, 0.0).len() as f64;
    let mut out = Vec::new();
    let killed = s
        .events
        .iter()
        .find(|(_, a, b)| *a == "kill" && b.starts_with("app-"));
    if let Some(&(at, _, id)) = killed {
        match (s.sessions, s.affinity) {
            ("shared" | "token", _) => out.push(figure(
                "sessions_lost",
                0.0,
                0.0,
                sessions_lost,
                format!("the session lives outside the process: killing {id} loses none"),
            )),
            ("local", "cookie" | "ip_hash") if s.backends > 0 && users > 0.0 => {
                let p = 1.0 / s.backends as f64;
                let tol = Z99 * (p * (1.0 - p) / users).sqrt();
                out.push(figure(
                    "users_lost_ratio",
                    p,
                    tol,
                    lost_users.len() as f64 / users,
                    format!(
                        "1/N of users are pinned to {id} (N = {}); 99% binomial interval for {users} users",
                        s.backends
                    ),
                ));
                let pinned = pinned_then_acting(r, at, id) as f64;
                out.push(figure(
                    "users_lost",
                    pinned,
                    0.0,
                    lost_users.len() as f64,
                    format!("users whose session tether had routed to {id} when it was killed, and who came back after (from the record)"),
                ));
            }
            _ => {}
        }
    }
    if let Some(rv) = revocation(r, s) {
        out.push(rv);
    }
    if r.samples.iter().any(|x| x.ws.is_some()) {
        for (metric, expected, tolerance, measured, basis) in
            ws_theory::predict(r, &s.events, s.drain_timeout)
        {
            out.push(figure(metric, expected, tolerance, measured, basis));
        }
    }
    let lost_updates = r.samples.iter().map(|x| f64::from(x.missing)).sum();
    match s.cart_write {
        Some(how @ ("in-process" | "atomic")) => out.push(figure(
            "lost_updates",
            0.0,
            0.0,
            lost_updates,
            format!("{how} updates apply concurrent adds one after another: none is lost"),
        )),
        Some("rmw") => {
            let expected = rmw_losses(r) as f64;
            out.push(figure(
                "lost_updates",
                expected,
                0.1 * expected,
                lost_updates,
                "every add of a burst reads the cart before the first writes it back, and the last write-back keeps one of them: acknowledged - 1 per burst read back (from the record); +/- 10%".into(),
            ));
        }
        _ => {}
    }
    if let (Some((per_s, store)), Some(f)) = (s.rate_limit, rate_figures(r)) {
        let cell = RateCell {
            per_s,
            store,
            affinity: s.affinity,
            backends: s.backends,
            kill_at: killed.map(|k| k.0),
            duration: s.duration,
            think: s.think,
        };
        for (metric, expected, tolerance, measured, basis) in predict(&f, &cell) {
            out.push(figure(metric, expected, tolerance, measured, basis));
        }
    }
    let redis_kill = s
        .events
        .iter()
        .find(|(_, a, b)| *a == "kill" && *b == "redis");
    if let Some(&(at, _, _)) = redis_kill {
        match s.sessions {
            "shared" => {
                // Requests during the outage fail without losing the session: a user finds out
                // only once redis answers again, empty.
                let back = s
                    .events
                    .iter()
                    .find(|(t, a, b)| *a == "start" && *b == "redis" && *t >= at)
                    .map_or(at, |e| e.0);
                let holding = holding_then_acting(r, at, back) as f64;
                out.push(figure(
                    "users_lost",
                    holding,
                    0.0,
                    lost_users.len() as f64,
                    "users holding a session when redis was killed, and acting after it came back empty (from the record)".into(),
                ));
            }
            _ => out.push(figure(
                "sessions_lost",
                0.0,
                0.0,
                sessions_lost,
                "these sessions never touch redis".into(),
            )),
        }
    }
    out
}

/// Distinct identities with a sample at or after `from` that satisfies `f`.
fn users_where(r: &LoadResult, f: impl Fn(&crate::load::Sample) -> bool, from: f64) -> Vec<u32> {
    let mut ids: Vec<u32> = r
        .samples
        .iter()
        .filter(|x| x.at.as_secs_f64() >= from && f(x))
        .map(|x| x.identity)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The backend each identity's current session started on, over requests intended before `t`.
fn sessions_at(r: &LoadResult, t: f64) -> std::collections::HashMap<u32, Option<&str>> {
    let mut on = std::collections::HashMap::new();
    for x in r.samples.iter().take_while(|x| x.at.as_secs_f64() < t) {
        if x.step == 0 {
            let ok = x.outcome == Outcome::Ok;
            on.insert(x.identity, x.backend.as_deref().filter(|_| ok));
        } else if x.lost.is_some() {
            on.insert(x.identity, None);
        }
    }
    on
}

/// Users whose session was on `id` at `t` and who sent a request after `t`.
fn pinned_then_acting(r: &LoadResult, t: f64, id: &str) -> usize {
    let on = sessions_at(r, t);
    let after = users_where(r, |x| x.step != 0, t);
    after
        .iter()
        .filter(|u| on.get(u).copied().flatten() == Some(id))
        .count()
}

/// Users holding any session at `t` who sent a request within it after `back`.
fn holding_then_acting(r: &LoadResult, t: f64, back: f64) -> usize {
    let on = sessions_at(r, t);
    let after = users_where(r, |x| x.step != 0, back);
    after
        .iter()
        .filter(|u| on.get(u).copied().flatten().is_some())
        .count()
}

/// The revocation window a logout leaves, by store: a plain signed token keeps working until
/// it expires (its lifetime, counted from the write just before the logout), a denylist
/// revokes it at once, a refresh record in Redis leaves at most the access token's lifetime.
fn revocation(r: &LoadResult, s: &Setup) -> Option<Theory> {
    if r.replays.is_empty() {
        return None;
    }
    let measured = r
        .replays
        .iter()
        .map(|x| x.window().as_secs_f64() * 1000.0)
        .fold(0.0, f64::max);
    // One replay interval of resolution, plus the few ms between the last write and the logout.
    let slack = s.replay_every * 1000.0 + 50.0;
    let (expected, tolerance, basis) = match (s.sessions, s.token_ttl) {
        ("token-denylist", _) => (
            0.0,
            0.0,
            "the denylist in redis refuses a logged-out token at once".to_string(),
        ),
        ("token" | "token-refresh", Some(ttl)) => (
            ttl * 1000.0,
            slack,
            format!(
                "a token sealed at the last write keeps working until it expires, {:.0} ms later{}",
                ttl * 1000.0,
                if s.sessions == "token-refresh" {
                    " (the access lifetime; the refresh record is gone)"
                } else {
                    ""
                }
            ),
        ),
        _ => return None,
    };
    Some(figure(
        "revocation_window_max_ms",
        expected,
        tolerance,
        measured,
        basis,
    ))
}
