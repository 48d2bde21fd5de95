//! Whether a request is in progress on a client connection: the fact that decides which of
//! tether's deadlines applies to it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use atomic_waker::AtomicWaker;

/// Requests in progress on one client connection.
#[derive(Debug, Default)]
pub struct Activity {
    active: AtomicUsize,
    /// The connection's reader, parked without a deadline while a request was in progress.
    reader: AtomicWaker,
}

/// Marks a request in progress on its connection until dropped (it lives in the response body).
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Activity {
    /// True while a request on the connection is in progress.
    pub fn busy(&self) -> bool {
        self.active.load(Ordering::Acquire) > 0
    }

    /// Wakes `waker` when the last request in progress ends.
    pub fn register_reader(&self, waker: &std::task::Waker) {
        self.reader.register(waker);
    }
}

impl Busy {
    /// Counts a request as in progress on `activity`'s connection.
    pub fn new(activity: &Arc<Activity>) -> Self {
        activity.active.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // The last request ended: hyper may not poll the socket again until the client sends
        // something, so wake the reader to arm the idle deadline now.
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.reader.wake();
        }
    }
}
