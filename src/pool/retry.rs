//! The retry budget: how many backends one request may try (`max_attempts`), and how many
//! requests may be replaying at once, as a share of the pool's requests in flight
//! (`retry_budget`, with a floor of `min_retry_concurrency`), after Envoy's retry budget. It
//! stops a failing or slow pool from multiplying its own load with replays. Moving on after a
//! refused connection is bound by `max_attempts` only: the request was never sent, so it adds
//! no load, and a killed backend's share of a busy pool must not become errors.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Why a request may not try another backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// It has tried `max_attempts` backends.
    MaxAttempts,
    /// Too many requests of the pool are replaying already.
    Budget,
}

impl Denied {
    /// The reason as the client's message and the log show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Denied::MaxAttempts => "max_attempts reached",
            Denied::Budget => "retry budget spent",
        }
    }
}

/// A pool's retry limits and the requests replaying now.
#[derive(Debug)]
pub struct RetryBudget {
    max_attempts: usize,
    ratio: f64,
    min_concurrency: usize,
    retrying: AtomicUsize,
}

/// One request's place among the replaying ones; it leaves when the request is done.
#[derive(Debug)]
pub struct Retrying<'a>(&'a AtomicUsize);

impl Drop for Retrying<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RetryBudget {
    /// Limits: at most `max_attempts` backends per request; replaying requests at most
    /// `ratio` of those in flight, or `min_concurrency` if that is more.
    pub fn new(max_attempts: usize, ratio: f64, min_concurrency: usize) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ratio,
            min_concurrency,
            retrying: AtomicUsize::new(0),
        }
    }

    /// Whether a request that has made `attempts` attempts may try another backend after a
    /// connection that could not be made.
    pub fn allow_connect(&self, attempts: usize) -> Result<(), Denied> {
        if attempts >= self.max_attempts {
            return Err(Denied::MaxAttempts);
        }
        Ok(())
    }

    /// Whether a request that has made `attempts` attempts may be sent again (a replay after
    /// a failure once sent). A request's first replay takes a place among the replaying ones
    /// (`held` keeps it until the request is done); `in_flight` (the pool's requests in
    /// flight) is read only then.
    pub fn allow<'a>(
        &'a self,
        attempts: usize,
        held: &mut Option<Retrying<'a>>,
        in_flight: impl FnOnce() -> usize,
    ) -> Result<(), Denied> {
        self.allow_connect(attempts)?;
        if held.is_some() {
            return Ok(());
        }
        let cap = ((self.ratio * in_flight() as f64) as usize).max(self.min_concurrency);
        let before = self.retrying.fetch_add(1, Ordering::Relaxed);
        let place = Retrying(&self.retrying);
        if before >= cap {
            return Err(Denied::Budget);
        }
        *held = Some(place);
        Ok(())
    }

    /// Requests replaying now.
    pub fn replaying(&self) -> usize {
        self.retrying.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_tries_at_most_max_attempts_backends() {
        let budget = RetryBudget::new(3, 1.0, 10);
        let mut held = None;
        assert_eq!(budget.allow(1, &mut held, || 1), Ok(()));
        assert_eq!(budget.allow(2, &mut held, || 1), Ok(()));
        assert_eq!(budget.allow(3, &mut held, || 1), Err(Denied::MaxAttempts));
        assert_eq!(budget.replaying(), 1, "one request, one place");
        drop(held);
        assert_eq!(budget.replaying(), 0);
    }

    #[test]
    fn retrying_requests_are_capped_by_share_with_a_floor() {
        let budget = RetryBudget::new(5, 0.2, 2);
        // 20 in flight: 20% is 4 retrying at once.
        let mut places: Vec<Option<Retrying<'_>>> = (0..5).map(|_| None).collect();
        let granted = places
            .iter_mut()
            .filter_map(|held| budget.allow(1, held, || 20).ok())
            .count();
        assert_eq!(granted, 4);
        assert_eq!(budget.replaying(), 4, "a refused request holds no place");
        // Few in flight: the floor still allows two.
        let small = RetryBudget::new(5, 0.2, 2);
        let (mut a, mut b, mut c) = (None, None, None);
        assert_eq!(small.allow(1, &mut a, || 3), Ok(()));
        assert_eq!(small.allow(1, &mut b, || 3), Ok(()));
        assert_eq!(small.allow(1, &mut c, || 3), Err(Denied::Budget));
        drop(a);
        assert_eq!(
            small.allow(1, &mut c, || 3),
            Ok(()),
            "a place freed is reused"
        );
    }
}
