//! Each backend's reusable connections: one bounded stack per worker thread, and one shared
//! HTTP/2 connection per worker thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use hyper::client::conn::{http1, http2};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::park::{quiet, Park, Parkable};
use super::sender::Sender;
use crate::client::ClientBody;

/// A connection waiting for reuse, idle since `since`.
enum Idle {
    /// With its hyper connection running.
    Live {
        sender: http1::SendRequest<ClientBody>,
        park: Option<Arc<Park>>,
        since: Instant,
    },
    /// A bare socket: its hyper connection ended while idle (`released`), or an exchange of
    /// [`crate::upstream::h1`] left it.
    Parked {
        stream: TcpStream,
        since: Instant,
        released: bool,
    },
}

/// A connection taken for a request.
pub enum Reuse {
    /// Ready to send on.
    Live(Sender),
    /// A parked socket: [`crate::upstream::resume`] starts a hyper connection on it.
    Parked(TcpStream),
}

/// The idle connections of one backend, a bounded stack: the most recently returned one is
/// reused first, so that after a burst a small hot set serves the steady load and the rest stay
/// idle long enough to be parked, then closed, instead of every connection being kept warm in
/// turn. Parked sockets sit at the bottom, below every live connection. A mutex, held for a
/// push or a pop and never across an await: uncontended in a current-thread runtime.
struct Queue {
    items: Mutex<Vec<Idle>>,
    /// The configured `max_idle_per_backend`.
    max: usize,
    /// What the stack may hold now: `max`, or more after a burst (see [`IdleConns::note_busy`]).
    room: AtomicUsize,
    /// `items.len()` as of the last change, read without the lock to skip empty stacks (the
    /// maintenance tick visits every backend's stack of every worker).
    held: AtomicUsize,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `idle` (a live one on top, a parked one at the bottom); when full, gives it back.
    fn push(&self, idle: Idle) -> Result<(), Idle> {
        let mut items = self.lock();
        if items.len() >= self.room.load(Ordering::Relaxed) {
            return Err(idle);
        }
        match idle {
            // Parked after idling, it is older than anything above it.
            Idle::Parked { released: true, .. } => items.insert(0, idle),
            _ => items.push(idle),
        }
        self.held.store(items.len(), Ordering::Relaxed);
        Ok(())
    }

    fn pop(&self) -> Option<Idle> {
        if self.held.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut items = self.lock();
        let top = items.pop();
        self.held.store(items.len(), Ordering::Relaxed);
        top
    }
}

/// Reusable connections to one backend, bounded.
pub struct IdleConns {
    /// One stack per worker thread, shared with the tasks of parkable connections, which put
    /// their socket back into the stack they came from. Empty when reuse is off.
    queues: Vec<Arc<Queue>>,
    /// One shared HTTP/2 connection per worker thread, so that no worker's requests cross to
    /// another thread's connection task.
    h2: Vec<ArcSwapOption<http2::SendRequest<ClientBody>>>,
    /// Most requests in flight to the backend at once since the last maintenance pass.
    peak: AtomicUsize,
    /// Recent peaks, decaying: the concurrency whose connections are worth keeping.
    demand: AtomicUsize,
}

/// Share of the remembered demand forgotten at each maintenance pass (1/32 per 200 ms: half
/// after about 4.5 s).
const DEMAND_DECAY: usize = 32;

impl std::fmt::Debug for IdleConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleConns")
            .field("idle", &self.len())
            .finish()
    }
}

impl IdleConns {
    /// Room for `max` idle HTTP/1.1 connections per worker thread (0 disables reuse).
    pub fn new(max: usize) -> Self {
        let workers = crate::workers::count();
        let queues = if max == 0 { 0 } else { workers };
        Self {
            queues: (0..queues)
                .map(|_| {
                    // Grown on demand: a stack per worker thread for every backend, preallocated,
                    // would cost a many-core host with a large pool megabytes for nothing.
                    Arc::new(Queue {
                        items: Mutex::new(Vec::new()),
                        max,
                        room: AtomicUsize::new(max),
                        held: AtomicUsize::new(0),
                    })
                })
                .collect(),
            h2: (0..workers).map(|_| ArcSwapOption::empty()).collect(),
            peak: AtomicUsize::new(0),
            demand: AtomicUsize::new(0),
        }
    }

    /// Notes `in_flight` requests to the backend at once: after a burst, each worker's stack
    /// keeps room for as many connections as the burst had in flight (the configured maximum
    /// otherwise), so that the next burst reuses them instead of opening them again. Unused
    /// ones still close after `keepalive_timeout`.
    pub fn note_busy(&self, in_flight: usize) {
        if in_flight > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(in_flight, Ordering::Relaxed);
        }
    }

    /// The HTTP/2 connection slot of the worker running on this thread.
    fn h2(&self) -> &ArcSwapOption<http2::SendRequest<ClientBody>> {
        &self.h2[crate::workers::current() % self.h2.len()]
    }

    /// The stack of the worker running on this thread.
    fn queue(&self) -> Option<&Arc<Queue>> {
        match self.queues.len() {
            0 => None,
            n => self.queues.get(crate::workers::current() % n),
        }
    }

    /// Makes this worker's HTTP/2 connection to the backend the one its next requests share.
    pub fn share_h2(&self, h2: http2::SendRequest<ClientBody>) {
        self.h2().store(Some(Arc::new(h2)));
    }

    /// Wraps a plain socket for hyper so that, once parking is requested, the socket returns to
    /// this worker's stack when hyper lets go of it: the wrapper, its parking handle, and what
    /// the connection's task runs when the connection ends.
    pub fn parkable(
        &self,
        stream: TcpStream,
    ) -> (Parkable, Arc<Park>, impl FnOnce() + Send + 'static) {
        let park = Arc::new(Park::default());
        let io = Parkable::new(stream, Arc::clone(&park));
        let queue = self.queue().map(Arc::downgrade).unwrap_or_default();
        let parking = Arc::clone(&park);
        // A socket handed over for parking goes back into the stack it came from (closed
        // instead if the stack is full or gone).
        let put_back = move || {
            if let (Some((stream, since)), Some(queue)) = (parking.take_parked(), queue.upgrade()) {
                let _ = queue.push(Idle::Parked {
                    stream,
                    since,
                    released: true,
                });
            }
        };
        (io, park, put_back)
    }

    /// A reusable connection that has not been idle longer than `keepalive`, if any.
    pub fn checkout(&self, keepalive: Duration) -> Option<Reuse> {
        let slot = self.h2();
        if let Some(h2) = slot.load_full() {
            if h2.is_ready() {
                return Some(Reuse::Live(Sender::H2((*h2).clone())));
            }
            slot.store(None);
        }
        let queue = self.queue()?;
        while let Some(idle) = queue.pop() {
            // A connection the backend closed, or one idle so long the backend may be about to
            // close it, is dropped here rather than risked on a request.
            match idle {
                Idle::Live {
                    sender,
                    park,
                    since,
                } if sender.is_ready() && since.elapsed() < keepalive => {
                    return Some(Reuse::Live(Sender::H1(sender, park)));
                }
                Idle::Parked { stream, since, .. }
                    if since.elapsed() < keepalive && quiet(&stream) =>
                {
                    return Some(Reuse::Parked(stream));
                }
                _ => {}
            }
        }
        None
    }

    /// Returns an HTTP/1.1 connection for reuse; when the queue is full it is closed.
    pub fn put(&self, sender: http1::SendRequest<ClientBody>, park: Option<Arc<Park>>) {
        if let Some(queue) = self.queue() {
            let _ = queue.push(Idle::Live {
                sender,
                park,
                since: Instant::now(),
            });
        }
    }

    /// Returns a bare socket that [`crate::upstream::h1`] finished an exchange on; when the stack
    /// is full it is closed.
    pub fn put_bare(&self, stream: TcpStream) {
        if let Some(queue) = self.queue() {
            let _ = queue.push(Idle::Parked {
                stream,
                since: Instant::now(),
                released: false,
            });
        }
    }

    /// Closes the HTTP/1.1 connections that have been idle for `keepalive` or that the backend
    /// closed, so that a burst's extra connections do not stay open until a request happens
    /// to come by, and parks the plain ones idle for `release` (see the module notes).
    pub fn expire(&self, keepalive: Duration, release: Option<Duration>) {
        let remembered = self.demand.load(Ordering::Relaxed);
        let demand = self
            .peak
            .swap(0, Ordering::Relaxed)
            .max(remembered - remembered.div_ceil(DEMAND_DECAY));
        self.demand.store(demand, Ordering::Relaxed);
        for queue in &self.queues {
            queue.room.store(queue.max.max(demand), Ordering::Relaxed);
            expire(queue, keepalive, release);
        }
    }

    /// Reusable connections kept now (each worker's HTTP/2 connection counts as one).
    pub fn len(&self) -> usize {
        self.queues.iter().map(|q| q.lock().len()).sum::<usize>()
            + self.h2.iter().filter(|h2| h2.load().is_some()).count()
    }

    /// Of those, HTTP/1.1 connections parked as bare sockets after `idle_release`.
    pub fn parked(&self) -> usize {
        self.queues
            .iter()
            .map(|q| {
                q.lock()
                    .iter()
                    .filter(|idle| matches!(idle, Idle::Parked { released: true, .. }))
                    .count()
            })
            .sum()
    }

    /// True when no connection is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// [`IdleConns::expire`] for one worker's stack.
fn expire(queue: &Queue, keepalive: Duration, release: Option<Duration>) {
    if queue.held.load(Ordering::Relaxed) == 0 {
        return;
    }
    // Sorted under the lock, in stack order; closed and parked after it is released.
    let (mut closing, mut parking) = (Vec::new(), Vec::new());
    {
        let mut items = queue.lock();
        let mut kept = Vec::with_capacity(items.len());
        for idle in items.drain(..) {
            match idle {
                Idle::Live {
                    sender,
                    park: Some(park),
                    since,
                } if sender.is_ready()
                    && since.elapsed() < keepalive
                    && release.is_some_and(|after| since.elapsed() >= after) =>
                {
                    parking.push((sender, park, since));
                }
                Idle::Live {
                    ref sender, since, ..
                } if sender.is_ready() && since.elapsed() < keepalive => kept.push(idle),
                // A bare socket has no connection task to see the backend close it.
                Idle::Parked {
                    ref stream, since, ..
                } if since.elapsed() < keepalive && quiet(stream) => kept.push(idle),
                _ => closing.push(idle),
            }
        }
        *items = kept;
        queue.held.store(items.len(), Ordering::Relaxed);
    }
    for (sender, park, since) in parking {
        // Its task puts the socket back once hyper has let go of it.
        park.request(since);
        drop(sender);
    }
    drop(closing);
}
