//! A TCP relay in front of a test backend that can be killed like a crashed process: its port
//! then refuses connections and every connection through it is closed, including the idle
//! keep-alive connections tether holds (dropping a [`super::TestBackend`] only stops accepting).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// A relay on 127.0.0.1:0 to one target; killed on drop at the latest.
pub struct KillSwitch {
    /// Where it listens: configure this as the backend's address.
    pub addr: SocketAddr,
    kill: Option<oneshot::Sender<()>>,
    relay: Option<JoinHandle<()>>,
}

impl KillSwitch {
    /// Starts relaying connections to `target`.
    pub async fn start(target: SocketAddr) -> KillSwitch {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind kill switch");
        let addr = listener.local_addr().expect("kill switch addr");
        let (kill, mut killed) = oneshot::channel();
        let relay = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut killed => break,
                    accepted = listener.accept() => {
                        let Ok((inbound, _)) = accepted else {
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                            continue;
                        };
                        conns.spawn(relay(inbound, target));
                    }
                    // Reap finished relays so the set does not grow without bound.
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
            drop(listener);
            // Aborts every relay and waits until each has dropped (closed) its sockets.
            conns.shutdown().await;
        });
        KillSwitch {
            addr,
            kill: Some(kill),
            relay: Some(relay),
        }
    }

    /// Closes the port and every relayed connection; returns once all of them are closed.
    pub async fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(relay) = self.relay.take() {
            let _ = relay.await;
        }
    }
}

impl Drop for KillSwitch {
    fn drop(&mut self) {
        if let Some(relay) = &self.relay {
            relay.abort();
        }
    }
}

async fn relay(mut inbound: TcpStream, target: SocketAddr) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}
