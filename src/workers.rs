//! Worker threads: one current-thread tokio runtime each, fed accepted connections by the
//! listeners.
//!
//! A client connection, the upstream connections its requests open, and their idle stacks
//! (one per worker, see `conn::IdleConns`) live on one thread, so a request never pays for
//! a work-stealing scheduler's cross-thread bookkeeping on its wake-ups, and an upstream socket
//! is always polled by the reactor that registered it. The control plane (listeners' accept
//! loops, admin API, health checks, the maintenance tick, signals) runs on the main thread's
//! runtime. With one worker there are no extra threads: connections are served on the main
//! runtime itself.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::runtime::Handle;

/// Worker threads started in this process (1 until [`Workers::start`] starts more).
static COUNT: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// This thread's worker index; 0 on the main thread.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// How many workers serve connections: the number of per-worker idle stacks a backend keeps.
pub fn count() -> usize {
    COUNT.load(Ordering::Relaxed)
}

/// The index of the worker running on this thread (0 on the main thread).
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// The runtimes that serve client connections.
pub struct Workers {
    /// One handle per worker thread; empty when connections are served on the main runtime.
    handles: Vec<Handle>,
    /// Client connections open on each worker, for placing the next one.
    open: Vec<AtomicUsize>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.handles.len())
            .finish()
    }
}

impl Workers {
    /// `threads` workers (0: one per CPU core). One worker means the calling runtime serves
    /// connections itself.
    pub fn start(threads: usize) -> std::io::Result<Arc<Self>> {
        let n = match threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        if n <= 1 {
            return Ok(Arc::new(Self {
                handles: Vec::new(),
                open: vec![AtomicUsize::new(0)],
            }));
        }
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            std::thread::Builder::new()
                .name(format!("tether-worker-{i}"))
                .spawn(move || {
                    INDEX.with(|c| c.set(i));
                    // Runs the spawned connections until the process exits.
                    rt.block_on(std::future::pending::<()>());
                })?;
        }
        COUNT.store(n, Ordering::Relaxed);
        Ok(Arc::new(Self {
            handles,
            open: (0..n).map(|_| AtomicUsize::new(0)).collect(),
        }))
    }

    /// Worker threads serving connections (1 when the main runtime serves them).
    pub fn threads(&self) -> usize {
        self.open.len()
    }

    /// Serves `stream` with `serve` on the worker with the fewest open connections (the lowest
    /// index among equals, so light traffic stays on one thread and reuses its upstream
    /// connections).
    pub fn spawn<F, Fut>(self: &Arc<Self>, stream: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if self.handles.is_empty() {
            tokio::spawn(serve(stream));
            return;
        }
        let i = (0..self.open.len())
            .min_by_key(|&i| self.open[i].load(Ordering::Relaxed))
            .unwrap_or(0);
        // The socket moves to the worker's reactor: deregistered here, registered there.
        let std = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "cannot hand a connection to a worker");
                return;
            }
        };
        self.open[i].fetch_add(1, Ordering::Relaxed);
        let open = Open(Arc::clone(self), i);
        self.handles[i].spawn(async move {
            let _open = open;
            match TcpStream::from_std(std) {
                Ok(stream) => serve(stream).await,
                Err(e) => tracing::debug!(error = %e, "cannot register a connection on a worker"),
            }
        });
    }
}

/// One connection counted on a worker until it ends.
struct Open(Arc<Workers>, usize);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open[self.1].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_least_loaded_worker_and_stay_on_its_thread() {
        let workers = Workers::start(2).expect("workers");
        assert_eq!(workers.threads(), 2);
        let main = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let main_thread = std::thread::current().id();
        main.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut clients = Vec::new();
            let mut seen = Vec::new();
            for _ in 0..4 {
                clients.push(std::net::TcpStream::connect(addr).unwrap());
                let (stream, _) = listener.accept().await.unwrap();
                let tx = tx.clone();
                workers.spawn(stream, move |mut stream| async move {
                    let _ = tx.send((current(), std::thread::current().id()));
                    // Open until the client closes, so the worker stays loaded.
                    let mut buf = [0u8; 1];
                    let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
                });
                // Placement reads the counts: wait until this connection runs.
                seen.push(rx.recv().await.unwrap());
            }
            let indexes: Vec<usize> = seen.iter().map(|s| s.0).collect();
            assert_eq!(
                indexes,
                vec![0, 1, 0, 1],
                "alternating while loads are equal"
            );
            assert_eq!(seen[0].1, seen[2].1, "worker 0 is one thread");
            assert_ne!(seen[0].1, seen[1].1, "two workers, two threads");
            assert!(seen.iter().all(|s| s.1 != main_thread));
            drop(clients.pop());
            // The closed connection's worker (1) is now the least loaded.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while workers.open[1].load(Ordering::Relaxed) != 1 {
                assert!(std::time::Instant::now() < deadline, "the count never fell");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            clients.push(std::net::TcpStream::connect(addr).unwrap());
            let (stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            workers.spawn(stream, move |_stream| async move {
                let _ = tx.send((current(), std::thread::current().id()));
            });
            assert_eq!(rx.recv().await.unwrap().0, 1);
        });
    }
}
