//! A "backend" that accepts TCP connections and resets each one at once, counting them.
//!
//! It models a crashed or misconfigured upstream whose port is open but which never answers:
//! the connect succeeds, so only what happens after it tells the proxy something is wrong.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::AbortHandle;

/// A listener on 127.0.0.1:0 that resets every connection it accepts; stops when dropped.
pub struct ResetBackend {
    /// Where it listens.
    pub addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    accept_loop: AbortHandle,
}

impl ResetBackend {
    /// Starts accepting and resetting.
    pub async fn start() -> ResetBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind reset backend");
        let addr = listener.local_addr().expect("reset backend addr");
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        let accept_loop = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        // SO_LINGER 0: closing sends RST instead of FIN, a hard reset.
                        let _ = stream.set_zero_linger();
                        drop(stream);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .abort_handle();
        ResetBackend {
            addr,
            accepted,
            accept_loop,
        }
    }

    /// Connections accepted (and reset) so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for ResetBackend {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}
