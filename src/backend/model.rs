//! One upstream server: identity, weight, state machine, live counters and idle connections.
//!
//! A `Backend` is shared (`Arc`) between pool snapshots so that its state and counters survive a
//! config reload; everything mutable in it is an atomic or the lock-free idle queue.
//!
//! State is derived, not stored: an admin state (enabled / draining / disabled) plus health
//! facts (active verdict, passive ejection deadline) plus drain progress give the reported
//! `up | down | draining | drained | disabled`, computed from atomics on demand.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_ms;
use crate::conn::IdleConns;
use crate::log_limit::LogLimit;
use crate::queue::Queue;
use crate::stats::BackendStats;

/// What an operator asked of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AdminState {
    /// Serving normally (subject to health).
    Enabled = 0,
    /// Taking no new clients; pinned clients until the drain completes.
    Draining = 1,
    /// Taking nothing.
    Disabled = 2,
}

impl AdminState {
    /// Lower-case name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Enabled => "enabled",
            AdminState::Draining => "draining",
            AdminState::Disabled => "disabled",
        }
    }
}

/// The state reported by `/status` and metrics, and used for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Takes new and pinned clients.
    Up,
    /// Failed health checks or ejected: takes nothing; its pinned clients move at once.
    Down,
    /// Takes only clients pinned to it, until drained.
    Draining,
    /// Drain complete: takes nothing.
    Drained,
    /// Disabled by an operator: takes nothing.
    Disabled,
}

impl State {
    /// Every state, in metric order.
    pub const ALL: [State; 5] = [
        State::Up,
        State::Down,
        State::Draining,
        State::Drained,
        State::Disabled,
    ];

    /// Lower-case name used in JSON, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Draining => "draining",
            State::Drained => "drained",
            State::Disabled => "disabled",
        }
    }
}

/// Drain timing of the pool a backend belongs to.
#[derive(Debug, Clone, Copy)]
pub struct DrainPolicy {
    /// Pinned clients are redispatched after this, whatever is still in flight.
    pub timeout: Duration,
    /// Drained once nothing is in flight and no pinned client came for this long.
    pub quiet: Duration,
}

/// How far a drain has come (see [`Backend::drain_progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DrainProgress {
    /// Since the drain started.
    pub elapsed_ms: u64,
    /// Until `drain_timeout` redispatches the remaining pinned clients (0 once passed).
    pub deadline_in_ms: u64,
    /// Since a client pinned to the backend last came (`None`: none came during the drain).
    pub last_pinned_ms_ago: Option<u64>,
}

/// An upstream server of a pool.
#[derive(Debug)]
pub struct Backend {
    /// Configured identity; never derived from the position in the config.
    pub id: Arc<str>,
    /// Address tether connects to.
    pub addr: SocketAddr,
    /// The DNS name it is reached by, if any: the TLS server name when the pool has no
    /// `tls_sni`.
    pub name: Option<Arc<str>>,
    weight: AtomicU32,
    in_flight: AtomicUsize,
    admin: AtomicU8,
    /// Verdict of active health checks (true when none are configured).
    healthy: AtomicBool,
    /// Passive ejection: down until this time (ms, 0 = not ejected).
    pub(super) ejected_until: AtomicU64,
    pub(super) consecutive_failures: AtomicU32,
    pub(super) ejections: AtomicU32,
    /// When a request last succeeded (ms, 0 = never): a connect that failed while others
    /// succeeded is congestion, not ill health.
    pub(super) last_ok: AtomicU64,
    drain_started: AtomicU64,
    last_pinned: AtomicU64,
    /// When the backend last became able to take new clients (for slow start).
    up_since: AtomicU64,
    /// Set when the backend was removed from the config and lingers only to drain.
    removing: AtomicBool,
    /// Counters and histograms for `/status` and `/metrics`; shared with the instance of the
    /// same id this one replaced (new address), so an id's counters never split or reset.
    pub stats: Arc<BackendStats>,
    /// Idle keep-alive connections to this backend.
    pub idle: IdleConns,
    /// Requests waiting for a slot under the pool's `max_connections`.
    pub queue: Queue,
    /// Per-request warnings about this backend, a few per second.
    pub warnings: LogLimit,
}

impl Backend {
    /// A backend with zeroed counters, enabled, with the given initial health verdict.
    pub fn new(id: &str, addr: SocketAddr, weight: u32, max_idle: usize) -> Self {
        Self {
            id: id.into(),
            addr,
            name: None,
            weight: AtomicU32::new(weight),
            in_flight: AtomicUsize::new(0),
            admin: AtomicU8::new(AdminState::Enabled as u8),
            healthy: AtomicBool::new(true),
            ejected_until: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            last_ok: AtomicU64::new(0),
            drain_started: AtomicU64::new(0),
            last_pinned: AtomicU64::new(0),
            // Backends present when tether starts take their full share at once.
            up_since: AtomicU64::new(0),
            removing: AtomicBool::new(false),
            stats: Arc::default(),
            idle: IdleConns::new(max_idle),
            queue: Queue::default(),
            warnings: LogLimit::default(),
        }
    }

    /// Configured weight.
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Changes the weight (the pool's balancer must be rebuilt to use it).
    pub fn set_weight(&self, weight: u32) {
        self.weight.store(weight, Ordering::Relaxed);
    }

    /// Requests currently in flight (until their response body has ended).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request as started; it stays in flight until the guard drops.
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.idle.note_busy(before + 1);
        InFlight(Arc::clone(self))
    }

    /// Counts a request as started if fewer than `max` are in flight (`max = 0`: no cap).
    pub fn try_start_request(self: &Arc<Self>, max: usize) -> Option<InFlight> {
        if max == 0 {
            return Some(self.start_request());
        }
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|before| {
                self.idle.note_busy(before + 1);
                InFlight(Arc::clone(self))
            })
    }

    /// The operator's setting.
    pub fn admin_state(&self) -> AdminState {
        match self.admin.load(Ordering::Acquire) {
            1 => AdminState::Draining,
            2 => AdminState::Disabled,
            _ => AdminState::Enabled,
        }
    }

    /// Sets the operator's state; returns the previous one.
    pub fn set_admin_state(&self, to: AdminState) -> AdminState {
        let now = now_ms();
        let before = self.admin_state();
        if before == to {
            return before;
        }
        if to == AdminState::Draining {
            self.drain_started.store(now, Ordering::Relaxed);
            self.last_pinned.store(0, Ordering::Relaxed);
        }
        if to == AdminState::Enabled {
            self.up_since.store(now, Ordering::Relaxed);
        }
        self.admin.store(to as u8, Ordering::Release);
        before
    }

    /// The state used for routing and reporting, at time `now` (ms).
    pub fn state_at(&self, now: u64, drain: &DrainPolicy) -> State {
        match self.admin_state() {
            AdminState::Disabled => State::Disabled,
            AdminState::Draining => {
                let started = self.drain_started.load(Ordering::Relaxed);
                let last = self.last_pinned.load(Ordering::Relaxed).max(started);
                let past_deadline = now.saturating_sub(started) >= drain.timeout.as_millis() as u64;
                let quiet = self.in_flight() == 0
                    && now.saturating_sub(last) >= drain.quiet.as_millis() as u64;
                if past_deadline || quiet {
                    State::Drained
                } else {
                    State::Draining
                }
            }
            AdminState::Enabled if self.is_healthy_at(now) => State::Up,
            AdminState::Enabled => State::Down,
        }
    }

    /// The state now.
    pub fn state(&self, drain: &DrainPolicy) -> State {
        self.state_at(now_ms(), drain)
    }

    /// Passes active checks (or has none) and is not passively ejected.
    pub fn is_healthy_at(&self, now: u64) -> bool {
        self.healthy.load(Ordering::Acquire) && self.ejected_until.load(Ordering::Acquire) <= now
    }

    /// The active health verdict alone.
    pub fn active_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Publishes an active health verdict; returns true if it changed.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        let changed = self.healthy.swap(healthy, Ordering::AcqRel) != healthy;
        self.healthy_changed(changed, healthy)
    }

    /// Publishes an active health verdict `to` only if the verdict is still `from` (what the
    /// checker last saw): a passive ejection that cleared it in between is not undone by a
    /// probe that started before it. Returns true if it changed.
    pub fn change_healthy(&self, from: bool, to: bool) -> bool {
        let changed = from != to
            && self
                .healthy
                .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        self.healthy_changed(changed, to)
    }

    fn healthy_changed(&self, changed: bool, healthy: bool) -> bool {
        if changed {
            self.stats.count_health_transition();
            if healthy {
                let now = now_ms();
                self.up_since.store(now, Ordering::Relaxed);
                // Passing active checks again ends a passive ejection (which cleared the
                // verdict): the checks are better evidence than the ejection's timer.
                self.ejected_until.fetch_min(now, Ordering::AcqRel);
            }
        }
        changed
    }

    /// Notes a pinned client's request while draining (it delays `drained` by `quiet`).
    pub fn note_pinned_while_draining(&self) {
        self.last_pinned.store(now_ms(), Ordering::Relaxed);
        self.stats.count_pinned_while_draining();
    }

    /// Drain progress at `now` (ms) while an operator's drain is in progress: milliseconds since
    /// it started, until its deadline, and since a pinned client last came.
    pub fn drain_progress(&self, now: u64, drain: &DrainPolicy) -> Option<DrainProgress> {
        if self.admin_state() != AdminState::Draining {
            return None;
        }
        let started = self.drain_started.load(Ordering::Relaxed);
        let last = self.last_pinned.load(Ordering::Relaxed);
        let timeout = drain.timeout.as_millis() as u64;
        Some(DrainProgress {
            elapsed_ms: now.saturating_sub(started),
            deadline_in_ms: (started + timeout).saturating_sub(now),
            last_pinned_ms_ago: (last >= started).then(|| now.saturating_sub(last)),
        })
    }

    /// Starts slow start now: the backend was just added to a running pool.
    pub fn start_ramp(&self) {
        self.up_since.store(now_ms(), Ordering::Relaxed);
    }

    /// Fraction of full weight during slow start (1.0 once `ramp` has passed since coming up).
    pub fn slow_start_factor(&self, now: u64, ramp: Duration) -> f64 {
        if ramp.is_zero() {
            return 1.0;
        }
        let since = self
            .up_since
            .load(Ordering::Relaxed)
            .max(self.ejected_until.load(Ordering::Relaxed));
        // 0: up since tether started, never down or ejected.
        if since == 0 {
            return 1.0;
        }
        let elapsed = now.saturating_sub(since) as f64;
        (elapsed / ramp.as_millis() as f64).clamp(0.05, 1.0)
    }

    /// Marks the backend as lingering only to drain after removal from the config.
    pub fn mark_removing(&self) {
        self.removing.store(true, Ordering::Relaxed);
        self.set_admin_state(AdminState::Draining);
    }

    /// Takes a backend that was draining after its removal back into the config (re-added with
    /// the same address): it serves again as the one instance of its id.
    pub fn revive(&self) {
        self.removing.store(false, Ordering::Relaxed);
        self.set_admin_state(AdminState::Enabled);
    }

    /// True when the backend was removed and lingers only to drain.
    pub fn is_removing(&self) -> bool {
        self.removing.load(Ordering::Relaxed)
    }
}

/// RAII in-flight marker: lives inside the response body so that least_conn sees streaming and
/// slow responses until their last byte (or until the client goes away).
#[derive(Debug)]
pub struct InFlight(Arc<Backend>);

impl InFlight {
    /// The backend this request is counted against.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.queue.freed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> Backend {
        Backend::new("a", "127.0.0.1:1".parse().unwrap(), 1, 4)
    }

    const DRAIN: DrainPolicy = DrainPolicy {
        timeout: Duration::from_secs(30),
        quiet: Duration::from_secs(2),
    };

    #[test]
    fn slow_start_ramps_only_a_backend_that_came_up_while_tether_ran() {
        let ramp = Duration::from_secs(60);
        let b = backend();
        assert_eq!(b.slow_start_factor(now_ms(), ramp), 1.0, "present at start");
        b.set_admin_state(AdminState::Disabled);
        b.set_admin_state(AdminState::Enabled);
        let now = now_ms();
        assert_eq!(b.slow_start_factor(now, ramp), 0.05, "just enabled");
        let half = b.slow_start_factor(now + 30_000, ramp);
        assert!((0.49..=0.51).contains(&half), "{half}");
        assert_eq!(b.slow_start_factor(now + 60_000, ramp), 1.0);
        let added = backend();
        added.start_ramp();
        assert_eq!(
            added.slow_start_factor(now_ms(), ramp),
            0.05,
            "added while running"
        );
        assert_eq!(
            added.slow_start_factor(now_ms(), Duration::ZERO),
            1.0,
            "slow start off"
        );
    }

    #[test]
    fn in_flight_ends_when_the_guard_drops() {
        let b = Arc::new(backend());
        let g1 = b.start_request();
        let g2 = b.start_request();
        assert_eq!(b.in_flight(), 2);
        drop(g1);
        assert_eq!(b.in_flight(), 1);
        drop(g2);
        assert_eq!(b.in_flight(), 0);
    }

    #[test]
    fn drain_completes_when_quiet_and_idle_or_at_the_deadline() {
        let b = Arc::new(backend());
        let guard = b.start_request();
        b.set_admin_state(AdminState::Draining);
        let t0 = b.drain_started.load(Ordering::Relaxed);
        assert_eq!(b.state_at(t0 + 5_000, &DRAIN), State::Draining, "in flight");
        drop(guard);
        assert_eq!(
            b.state_at(t0 + 1_000, &DRAIN),
            State::Draining,
            "not yet quiet"
        );
        assert_eq!(b.state_at(t0 + 2_000, &DRAIN), State::Drained);
        let _busy = b.start_request();
        assert_eq!(b.state_at(t0 + 30_000, &DRAIN), State::Drained, "deadline");
    }

    #[test]
    fn health_and_admin_combine() {
        let b = backend();
        let now = now_ms();
        assert_eq!(b.state_at(now, &DRAIN), State::Up);
        b.set_healthy(false);
        assert_eq!(b.state_at(now, &DRAIN), State::Down);
        b.set_admin_state(AdminState::Disabled);
        assert_eq!(b.state_at(now, &DRAIN), State::Disabled);
    }
}
