//! Turns what the users saw into a cell's numbers: totals, latency percentiles, per-backend
//! load, stickiness, lost sessions, and a bucketed timeline for the charts.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::limits::{rate_figures, RateFigures};
use crate::load::{revocation, LoadResult, Outcome, Revocation, Sample};
use crate::phases::{phases, Phase};
use crate::scale_in::{scale_in, ScaleIn};
use crate::theory::Theory;
use crate::writes::{writes, Writes};
use crate::ws_figures::{ws_figures, WsFigures};

/// Latency percentiles in milliseconds.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// Requests one backend answered.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct BackendLoad {
    /// Responses carrying its `x-backend-id`.
    pub requests: u64,
    /// Its fraction of all responses.
    pub share: f64,
}

/// One time bucket of the run.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Bucket {
    /// Bucket start, seconds since the load began.
    pub t: f64,
    /// Requests per second per backend id.
    pub rps: BTreeMap<String, f64>,
    /// Errors in the bucket.
    pub errors: u64,
    /// Sessions lost in the bucket.
    pub sessions_lost: u64,
    /// Latency percentiles of requests intended in this bucket (ms).
    pub p50: f64,
    /// 99th percentile (ms).
    pub p99: f64,
    /// Max (ms).
    pub max: f64,
}

/// How quickly a backend added mid-run reached its fair share.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ScaleOut {
    /// The added backend.
    pub backend: String,
    /// When it was added (s).
    pub added_at_s: f64,
    /// Its fair share: 1 / backends answering at the end of the run.
    pub fair_share: f64,
    /// Seconds after the add until its share reached half the fair share (`null`: never).
    pub fair_share_50_s: Option<f64>,
    /// ... until 90% of the fair share (`null`: never).
    pub fair_share_90_s: Option<f64>,
    /// Its share over the last quarter of the run.
    pub final_share: f64,
}

/// Everything measured in one cell, as report.json shows it.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct CellStats {
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed (5xx, other statuses, transport errors, timeouts).
    pub errors: u64,
    /// errors / requests.
    pub error_rate: f64,
    /// Errors by kind ("502", "connect: ConnectionRefused", "timeout", ...).
    pub error_kinds: BTreeMap<String, u64>,
    /// Sessions started (successful logins). Not `sessions`: that key names the store.
    pub sessions_started: u64,
    /// Sessions the users found lost (401 or items missing).
    pub sessions_lost: u64,
    /// Lost sessions by how the user found out ("no session", "missing items").
    pub loss_reasons: BTreeMap<String, u64>,
    /// sessions_lost / sessions_started.
    pub sessions_lost_ratio: f64,
    /// Users (identities) that acted.
    pub users: u64,
    /// Users that lost at least one session.
    pub users_lost: u64,
    /// users_lost / users.
    pub users_lost_ratio: f64,
    /// Latency from the intended send time.
    pub latency_ms: Percentiles,
    /// Latency from the actual send, as a closed-loop tool would measure it: compare with
    /// `latency_ms` to see what coordinated omission would have hidden.
    pub service_ms: Percentiles,
    /// Per-backend load, by `x-backend-id`.
    pub backends: BTreeMap<String, BackendLoad>,
    /// Of consecutive responses to one user, the fraction from the same backend.
    pub sticky_ratio: f64,
    /// Busiest backend's requests / mean over backends that answered.
    pub max_mean_load: f64,
    /// Pacing precision: timer lag of on-time sends (ms).
    pub send_lag_ms: Percentiles,
    /// Sends that went out late because the user's previous request was still running.
    pub late_sends: u64,
    /// Send lag p99 over latency p99: how much of the latency tail is the generator's own.
    pub lag_share_p99: f64,
    /// False when the generator's send lag makes up [`LAG_DOMINATES`] or more of p99: the
    /// tail is then the machine's, not the proxy's ("latency not measurable on this machine").
    pub latency_measurable: bool,
    /// Present when a backend was added mid-run.
    pub scale_out: Option<ScaleOut>,
    /// Present when a backend was removed mid-run for good.
    pub scale_in: Option<ScaleIn>,
    /// Per-bucket rates, errors, losses and latency, for the charts.
    pub timeline: Vec<Bucket>,
    /// Errors and losses between consecutive timeline events: what each event cost.
    pub phases: Vec<Phase>,
    /// Present when users logged out and an attacker replayed their cookies.
    pub revocation: Option<Revocation>,
    /// Writes acknowledged, and lost by the store.
    #[serde(flatten)]
    pub writes: Writes,
    /// Present when users held WebSockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<WsFigures>,
    /// Present when a rate limit refused requests (429): what it let through per user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateFigures>,
    /// The figures the scenario's events predict, each beside its theory (empty: no theory).
    pub theory: Vec<Theory>,
}

/// The share of p99 from which the generator's own send lag counts as dominating it. Latency
/// is measured from the intended send time, so a late timer adds to every figure; when a
/// quarter of the tail or more is the generator's, what remains cannot be told from its noise.
pub const LAG_DOMINATES: f64 = 0.25;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("static histogram bounds")
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        p50: ms(h.value_at_quantile(0.5)),
        p90: ms(h.value_at_quantile(0.9)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: h.mean() / 1000.0,
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// The pool's membership changes a cell's figures follow, each as (backend, seconds).
#[derive(Clone, Copy, Debug, Default)]
pub struct Changes<'a> {
    /// The first backend added mid-run, for the scale-out measure.
    pub added: Option<(&'a str, f64)>,
    /// The first backend removed mid-run for good, for the scale-in measure.
    pub removed: Option<(&'a str, f64)>,
}

/// Computes a cell's numbers from its samples alone (so `recompute` re-derives them from the
/// raw record). `changes` are the backends added and removed mid-run; `marks` are the events
/// carried out, as (seconds, "action target"), for the phases.
pub fn compute(
    r: &LoadResult,
    bucket: Duration,
    changes: Changes<'_>,
    marks: &[(f64, String)],
) -> CellStats {
    let ok_login = |x: &&Sample| x.step == 0 && x.outcome == Outcome::Ok;
    let mut s = CellStats {
        requests: r.samples.len() as u64,
        sessions_started: r.samples.iter().filter(ok_login).count() as u64,
        sessions_lost: r.samples.iter().filter(|x| x.lost.is_some()).count() as u64,
        late_sends: r.samples.iter().filter(|x| x.late).count() as u64,
        writes: writes(r),
        ..Default::default()
    };
    // Users are the identities that sent at least one request, not every identity handed out.
    let mut acted: Vec<u32> = r.samples.iter().map(|x| x.identity).collect();
    acted.sort_unstable();
    acted.dedup();
    s.users = acted.len() as u64;
    let mut all = histogram();
    let mut service = histogram();
    let mut per_backend: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_backend: HashMap<u32, &str> = HashMap::new();
    let (mut same, mut pairs) = (0u64, 0u64);
    for x in &r.samples {
        let _ = all.record(micros(x.latency));
        let _ = service.record(micros(x.service));
        if let Outcome::Error(kind) = &x.outcome {
            s.errors += 1;
            *s.error_kinds.entry(kind.clone()).or_default() += 1;
        }
        if let Some(b) = &x.backend {
            *per_backend.entry(b.to_string()).or_default() += 1;
            // Step 0 starts a new session; stickiness is about requests within one.
            if x.step != 0 {
                if let Some(prev) = last_backend.get(&x.identity) {
                    pairs += 1;
                    same += u64::from(*prev == &**b);
                }
            }
            last_backend.insert(x.identity, b);
        }
    }
    s.latency_ms = percentiles(&all);
    s.service_ms = percentiles(&service);
    let mut lag = histogram();
    for l in r.samples.iter().filter_map(|x| x.lag) {
        let _ = lag.record(micros(l));
    }
    s.send_lag_ms = percentiles(&lag);
    s.lag_share_p99 = if s.latency_ms.p99 > 0.0 {
        s.send_lag_ms.p99 / s.latency_ms.p99
    } else {
        0.0
    };
    s.latency_measurable = s.lag_share_p99 < LAG_DOMINATES;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    s.error_rate = ratio(s.errors, s.requests);
    s.sessions_lost_ratio = ratio(s.sessions_lost, s.sessions_started);
    for why in r.samples.iter().filter_map(|x| x.lost) {
        *s.loss_reasons.entry(why.to_string()).or_default() += 1;
    }
    let mut lost_users: Vec<u32> = r
        .samples
        .iter()
        .filter(|x| x.lost.is_some())
        .map(|x| x.identity)
        .collect();
    lost_users.sort_unstable();
    lost_users.dedup();
    s.users_lost = lost_users.len() as u64;
    s.users_lost_ratio = ratio(s.users_lost, s.users);
    s.sticky_ratio = ratio(same, pairs);
    let answered: u64 = per_backend.values().sum();
    if !per_backend.is_empty() {
        let mean = answered as f64 / per_backend.len() as f64;
        let max = *per_backend.values().max().unwrap_or(&0) as f64;
        s.max_mean_load = if mean > 0.0 { max / mean } else { 0.0 };
    }
    s.backends = per_backend
        .into_iter()
        .map(|(id, n)| {
            let share = ratio(n, answered);
            (id, BackendLoad { requests: n, share })
        })
        .collect();
    s.timeline = timeline(r, bucket);
    s.phases = phases(r, marks);
    s.revocation = revocation(&r.replays);
    s.rate = rate_figures(r);
    s.ws = ws_figures(r);
    s.scale_out = changes
        .added
        .map(|(id, at)| scale_out(&s.timeline, bucket, id, at));
    s.scale_in = changes.removed.map(|(id, at)| scale_in(&r.samples, id, at));
    s
}

fn timeline(r: &LoadResult, bucket: Duration) -> Vec<Bucket> {
    let end = r.samples.last().map(|x| x.at).unwrap_or_default();
    let n = (end.as_secs_f64() / bucket.as_secs_f64()) as usize + 1;
    let idx = |at: Duration| ((at.as_secs_f64() / bucket.as_secs_f64()) as usize).min(n - 1);
    let mut hists: Vec<Histogram<u64>> = Vec::new();
    let mut out: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            t: i as f64 * bucket.as_secs_f64(),
            rps: BTreeMap::new(),
            errors: 0,
            sessions_lost: 0,
            p50: 0.0,
            p99: 0.0,
            max: 0.0,
        })
        .collect();
    hists.resize_with(n, histogram);
    let per_sec = 1.0 / bucket.as_secs_f64();
    for x in &r.samples {
        let i = idx(x.at);
        let _ = hists[i].record(micros(x.latency));
        if let Some(b) = &x.backend {
            *out[i].rps.entry(b.to_string()).or_default() += per_sec;
        }
        if matches!(x.outcome, Outcome::Error(_)) {
            out[i].errors += 1;
        }
        // Losses on the requests' own clock (intended time), like everything else here.
        out[i].sessions_lost += u64::from(x.lost.is_some());
    }
    for (b, h) in out.iter_mut().zip(&hists) {
        let p = percentiles(h);
        (b.p50, b.p99, b.max) = (p.p50, p.p99, p.max);
    }
    out
}

/// Time for `id`, added at `at` seconds, to reach 50% and 90% of its fair share, on a
/// two-bucket moving window so one lucky bucket does not count.
fn scale_out(tl: &[Bucket], bucket: Duration, id: &str, at: f64) -> ScaleOut {
    let total = |b: &Bucket| b.rps.values().sum::<f64>();
    let mine = |b: &Bucket| b.rps.get(id).copied().unwrap_or(0.0);
    let tail = &tl[tl.len() - (tl.len() / 4).max(1)..];
    let serving = {
        let mut ids: Vec<&String> = tail.iter().flat_map(|b| b.rps.keys()).collect();
        ids.sort();
        ids.dedup();
        ids.len().max(1)
    };
    let fair = 1.0 / serving as f64;
    let share_of = |w: &[Bucket]| {
        let t: f64 = w.iter().map(total).sum();
        if t > 0.0 {
            w.iter().map(mine).sum::<f64>() / t
        } else {
            0.0
        }
    };
    let width = bucket.as_secs_f64();
    let reached = |level: f64| {
        tl.windows(2)
            .filter(|w| w[0].t >= at)
            .find(|w| share_of(w) >= level * fair)
            .map(|w| w[1].t + width - at)
    };
    ScaleOut {
        backend: id.to_string(),
        added_at_s: at,
        fair_share: fair,
        fair_share_50_s: reached(0.5),
        fair_share_90_s: reached(0.9),
        final_share: share_of(tail),
    }
}
