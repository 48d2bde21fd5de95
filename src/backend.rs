//! One upstream server: identity, weight, live counters and its idle-connection pool.
//!
//! A `Backend` is shared (`Arc`) between pool snapshots so that its counters survive a
//! config reload; everything mutable in it is an atomic or the lock-free idle queue.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::upstream::IdleConns;

/// An upstream server of a pool.
#[derive(Debug)]
pub struct Backend {
    /// Configured identity; never derived from the position in the config.
    pub id: Arc<str>,
    /// Address tether connects to.
    pub addr: SocketAddr,
    /// Configured weight (1..=1000).
    pub weight: u32,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Idle keep-alive connections to this backend.
    pub idle: IdleConns,
}

impl Backend {
    /// A backend with zeroed counters and room for `max_idle` idle connections.
    pub fn new(id: &str, addr: SocketAddr, weight: u32, max_idle: usize) -> Self {
        Self {
            id: id.into(),
            addr,
            weight,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle: IdleConns::new(max_idle),
        }
    }

    /// Requests currently in flight (until their response body has ended).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests sent to this backend since start.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Counts a request as started; it stays in flight until the guard drops.
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
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
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_ends_when_the_guard_drops() {
        let b = Arc::new(Backend::new("a", "127.0.0.1:1".parse().unwrap(), 1, 4));
        let g1 = b.start_request();
        let g2 = b.start_request();
        assert_eq!(b.in_flight(), 2);
        drop(g1);
        assert_eq!(b.in_flight(), 1);
        drop(g2);
        assert_eq!((b.in_flight(), b.requests()), (0, 2));
    }
}
