//! Passive health of a backend: outcomes of real requests, consecutive failures, ejection with
//! a doubling period, and the rules that keep one failure episode to one ejection.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::model::Backend;
use crate::clock::now_ms;
use crate::config::PassiveConfig;

impl Backend {
    /// Records the outcome of a request that started at `started` (ms, [`now_ms`]) for passive
    /// health; returns the ejection period if this failure ejected the backend.
    pub fn record_outcome(
        &self,
        ok: bool,
        started: u64,
        policy: &PassiveConfig,
    ) -> Option<Duration> {
        self.record_outcome_at(ok, started, now_ms(), policy)
    }

    /// [`Self::record_outcome`] at time `now` (ms).
    ///
    /// One failure episode is one ejection: a request that started before the current (or
    /// last) ejection ended tells nothing new. When a backend freezes under load, every request
    /// already sent to it fails together after the ejection; counting those would eject it again
    /// and again, doubling the period each time.
    pub fn record_outcome_at(
        &self,
        ok: bool,
        started: u64,
        now: u64,
        policy: &PassiveConfig,
    ) -> Option<Duration> {
        if ok {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            self.last_ok.fetch_max(now, Ordering::Relaxed);
            return None;
        }
        if policy.failures == 0 || started < self.ejected_until.load(Ordering::Acquire) {
            return None;
        }
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n < policy.failures {
            return None;
        }
        // Concurrent failures race to eject; only the one that resets the counter does.
        if self
            .consecutive_failures
            .compare_exchange(n, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        let last_end = self.ejected_until.load(Ordering::Relaxed);
        if last_end != 0 && now.saturating_sub(last_end) > policy.max_eject.as_millis() as u64 {
            // A long good run forgives earlier ejections.
            self.ejections.store(0, Ordering::Relaxed);
        }
        let repeat = self.ejections.fetch_add(1, Ordering::Relaxed).min(16);
        let period = policy
            .eject
            .saturating_mul(1u32 << repeat)
            .min(policy.max_eject);
        self.ejected_until
            .store(now + period.as_millis() as u64, Ordering::Release);
        self.stats.count_ejection();
        Some(period)
    }

    /// Records a connection to the backend that could not be made (or a reused one found
    /// closed) for a request that started at `started`; returns the ejection period if this
    /// ejected the backend.
    ///
    /// A connect that failed while the backend answered other requests says more about the
    /// path to it (a burst of tether's own connects overflowing its accept queue) than about
    /// the backend: it does not count toward an ejection.
    pub fn record_connect_failure(&self, started: u64, policy: &PassiveConfig) -> Option<Duration> {
        if self.last_ok.load(Ordering::Relaxed) >= started {
            return None;
        }
        self.record_outcome(false, started, policy)
    }

    /// After an ejection, with active checks configured, the backend must pass them again.
    pub fn require_recheck(&self) {
        self.set_healthy(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> Backend {
        Backend::new("a", "127.0.0.1:1".parse().unwrap(), 1, 4)
    }

    const POLICY: PassiveConfig = PassiveConfig {
        failures: 3,
        on_5xx: true,
        eject: Duration::from_secs(1),
        max_eject: Duration::from_secs(3),
    };

    #[test]
    fn passive_ejection_backs_off_exponentially() {
        let b = backend();
        let mut t = 1_000;
        assert_eq!(b.record_outcome_at(false, t, t, &POLICY), None);
        assert_eq!(
            b.record_outcome_at(true, t, t, &POLICY),
            None,
            "a success resets the streak"
        );
        let mut periods = Vec::new();
        for _ in 0..9 {
            // Each failure from a request sent after the previous ejection ended.
            if let Some(p) = b.record_outcome_at(false, t, t, &POLICY) {
                periods.push(p);
                t += p.as_millis() as u64;
            }
        }
        assert_eq!(
            periods,
            [1, 2, 3].map(Duration::from_secs).to_vec(),
            "doubling, capped at max_eject"
        );
        assert!(!b.is_healthy_at(t - 1));
    }

    #[test]
    fn requests_sent_before_an_ejection_cannot_extend_it() {
        let b = backend();
        let sent = 1_000;
        let ejected: Vec<_> = (0..3)
            .filter_map(|i| b.record_outcome_at(false, sent, sent + 300 + i, &POLICY))
            .collect();
        assert_eq!(ejected, [Duration::from_secs(1)]);
        // The rest of the requests in flight at the freeze fail after the ejection.
        for i in 0..50 {
            assert_eq!(
                b.record_outcome_at(false, sent, sent + 310 + i, &POLICY),
                None
            );
        }
        assert_eq!(b.stats.snapshot().ejections, 1);
        assert!(!b.is_healthy_at(sent + 1_200));
        assert!(b.is_healthy_at(sent + 1_303), "back after one period");
    }

    #[test]
    fn passing_active_checks_again_ends_an_ejection() {
        let b = backend();
        let now = now_ms();
        let long = PassiveConfig {
            eject: Duration::from_secs(60),
            ..POLICY
        };
        let ejected = (0..3).find_map(|_| b.record_outcome_at(false, now, now, &long));
        assert!(ejected.is_some());
        b.require_recheck();
        assert!(!b.is_healthy_at(now_ms()));
        b.set_healthy(true);
        assert!(b.is_healthy_at(now_ms()), "checks passed: ejection over");
    }

    #[test]
    fn connect_failures_while_the_backend_serves_others_do_not_eject_it() {
        let b = backend();
        let started = now_ms();
        // Another request succeeds while these connects are still trying.
        b.record_outcome(true, started, &POLICY);
        for _ in 0..10 {
            assert_eq!(b.record_connect_failure(started, &POLICY), None);
        }
        assert!(b.is_healthy_at(now_ms()));
        // Connects started after the last success count as usual.
        std::thread::sleep(Duration::from_millis(2));
        let later = now_ms();
        let ejected = (0..3).find_map(|_| b.record_connect_failure(later, &POLICY));
        assert!(ejected.is_some(), "a backend nobody reaches is ejected");
    }
}
