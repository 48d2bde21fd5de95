//! What a per-user rate limit of L requests per sliding second should let through, by where it
//! counts and how tether spreads a user's requests: the mean admitted per user per second and
//! the most admitted to one user in any one second.

use crate::limits::RateFigures;

/// One predicted figure: metric, expected, tolerance, measured, basis.
pub type Prediction = (&'static str, f64, f64, f64, String);

/// What the prediction needs to know about the cell.
pub struct RateCell<'a> {
    /// L.
    pub per_s: f64,
    /// `memory` or `redis`.
    pub store: &'a str,
    /// tether's affinity mode.
    pub affinity: &'a str,
    /// Backends pooled at the start.
    pub backends: usize,
    /// When a backend was killed (s), if one was.
    pub kill_at: Option<f64>,
    /// How long the users acted (s).
    pub duration: f64,
    /// A user's mean time between requests (s).
    pub think: f64,
}

/// The predictions for a cell under a rate limit.
pub fn predict(f: &RateFigures, c: &RateCell) -> Vec<Prediction> {
    let l = c.per_s;
    let sticky = matches!(c.affinity, "cookie" | "ip_hash");
    let n = c.backends as f64;
    // Counters the user's requests are spread over, averaged over the run (one fewer after a
    // kill under round robin).
    let (counters, why) = match (c.store, sticky) {
        ("redis", _) => (1.0, "one count in redis that every backend shares".to_string()),
        (_, true) => (1.0, "every request of a user goes to its pinned backend's count".into()),
        _ => match c.kill_at {
            Some(t) if c.duration > 0.0 => (
                (n * t + (n - 1.0) * (c.duration - t).max(0.0)) / c.duration,
                format!("round robin spreads a user over every backend's own count: {n} of them, {} after the kill", n - 1.0),
            ),
            _ => (n, format!("round robin spreads a user over every backend's own count: {n} of them")),
        },
    };
    // A slot freed after one second is taken by the user's next request to that count, on
    // average half that count's gap between the user's requests later.
    let wait = counters * c.think / 2.0;
    let mean = l * counters / (1.0 + wait);
    let mut out = vec![(
        "admitted_per_user_s",
        mean,
        0.1 * mean,
        f.per_user_s,
        format!("L = {l} per second per count, {why}; a freed slot waits ~{:.0} ms for the next request; +/- 10%", wait * 1000.0),
    )];
    let (peak, basis) = match (c.store, sticky, c.kill_at) {
        ("redis", ..) => (l, "the shared count never admits more than L in a second".to_string()),
        (_, false, _) => (l * n, format!("L on each of the {n} backends' own counts within the same second")),
        (_, true, Some(_)) => (
            2.0 * l,
            "a user pinned to the killed backend is re-pinned to one whose count of it is empty: L there on top of the L the dead one admitted in the same second".into(),
        ),
        (_, true, None) => (l, "one pinned count per user".into()),
    };
    out.push((
        "admitted_peak_1s",
        peak,
        1.0,
        f.peak_1s as f64,
        format!(
            "{basis}; +/- 1 for the gap between the client's and the server's clock of a request"
        ),
    ));
    out
}
