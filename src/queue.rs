//! The wait queue of a backend at its cap (`max_connections`): at most `max_pending` requests
//! wait, each at most `queue_timeout`, for a request in flight to end; the rest are refused at
//! once. A burst then waits for the backends it has instead of opening ever more connections
//! to them (whose accept queues overflow, connects time out, and healthy backends look dead).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Requests waiting for a backend, and the signal that one of its requests ended.
#[derive(Debug, Default)]
pub struct Queue {
    waiting: AtomicUsize,
    freed: Notify,
}

/// One waiting request; leaves the count when dropped (admitted, timed out, or cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Queue {
    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A request in flight ended (after its slot was given back): wakes one waiter, if any.
    pub fn freed(&self) {
        // SeqCst with `wait`'s increment: either the waiter's next `admit` sees the freed slot,
        // or this load sees the waiter and wakes it.
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.freed.notify_one();
        }
    }

    /// `admit()` at once if it succeeds; otherwise waits in the queue, retrying `admit` each
    /// time a request ends, for at most `timeout`. `None`: `max_pending` requests were already
    /// waiting, or `timeout` passed.
    pub async fn wait<G>(
        &self,
        mut admit: impl FnMut() -> Option<G>,
        max_pending: usize,
        timeout: Duration,
    ) -> Option<G> {
        if let Some(g) = admit() {
            return Some(g);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= max_pending {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let _waiting = Waiting(&self.waiting);
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            // Registered before `admit` looks, so a slot freed in between is not missed.
            notified.as_mut().enable();
            if let Some(g) = admit() {
                return Some(g);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A cap of `max` slots over a counter, as a backend's in-flight count.
    fn admit(used: &AtomicUsize, max: usize) -> Option<()> {
        used.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| ())
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_waiter_gets_the_next_free_slot() {
        let q = Arc::new(Queue::default());
        let used = Arc::new(AtomicUsize::new(1));
        let long = Duration::from_secs(5);
        let waiter = {
            let (q, used) = (Arc::clone(&q), Arc::clone(&used));
            tokio::spawn(async move { q.wait(|| admit(&used, 1), 1, long).await })
        };
        while q.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let start = Instant::now();
        assert_eq!(
            q.wait(|| admit(&used, 1), 1, long).await,
            None,
            "queue full"
        );
        assert!(start.elapsed() < Duration::from_secs(1), "refused at once");
        used.fetch_sub(1, Ordering::SeqCst);
        q.freed();
        assert_eq!(waiter.await.unwrap(), Some(()), "the waiter got the slot");
        assert_eq!(q.waiting(), 0);
    }

    #[tokio::test]
    async fn a_waiter_gives_up_at_its_timeout() {
        let q = Queue::default();
        let used = AtomicUsize::new(1);
        let start = Instant::now();
        let got = q
            .wait(|| admit(&used, 1), 4, Duration::from_millis(50))
            .await;
        assert_eq!(got, None);
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(q.waiting(), 0, "left the queue");
    }
}
