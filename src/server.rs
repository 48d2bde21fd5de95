//! Client-facing listeners: accept with a connection limit, serve HTTP/1.1 and h2c, enforce
//! the header-read and idle keep-alive timeouts, and shut down gracefully.
//!
//! hyper's own header-read timer also runs while a keep-alive connection waits for its next
//! request, so it cannot express "10 s to send a head, but 60 s of idle keep-alive". tether
//! instead wraps each client socket in [`TimedIo`], which knows from a per-connection
//! activity counter whether a request is in progress and arms the right deadline.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::config::ListenerConfig;
use crate::proxy::{self, ListenerCtx, Shared};
use crate::proxy_protocol;
use crate::stats::{ListenerStats, OpenConnection};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head: `header_timeout` applies.
    AwaitHead,
    /// A request is in progress: upstream timeouts apply, not ours.
    Busy,
    /// Keep-alive connection with nothing in progress: `idle_timeout` applies.
    Idle,
}

/// A client connection (TCP or TLS) with tether's header-read and idle deadlines.
pub struct TimedIo<T> {
    io: T,
    activity: Arc<Activity>,
    phase: Phase,
    /// Unknown until the first bytes; HTTP/2 has no "request head" phase on the connection.
    h2: Option<bool>,
    deadline: Instant,
    sleep: Pin<Box<Sleep>>,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl<T> TimedIo<T> {
    /// Wraps a fresh connection: the first request head is due within `header_timeout`.
    pub fn new(io: T, header_timeout: Duration, idle_timeout: Duration) -> Self {
        let deadline = Instant::now() + header_timeout;
        Self {
            io,
            activity: Arc::default(),
            phase: Phase::AwaitHead,
            h2: None,
            deadline,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            header_timeout,
            idle_timeout,
        }
    }

    /// The activity counter requests on this connection report to.
    pub fn activity(&self) -> Arc<Activity> {
        Arc::clone(&self.activity)
    }

    fn set_deadline(&mut self, phase: Phase, after: Duration) {
        self.phase = phase;
        self.deadline = Instant::now() + after;
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let busy = this.activity.active.load(Ordering::Acquire) > 0;
        match polled {
            Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[before..];
                if !fresh.is_empty() {
                    let h2 = *this
                        .h2
                        .get_or_insert_with(|| fresh.starts_with(b"PRI * HTTP/2.0"));
                    if busy {
                        this.phase = Phase::Busy;
                    } else if h2 {
                        // Any frame (PING, SETTINGS) is activity on an idle HTTP/2 connection.
                        this.set_deadline(Phase::Idle, this.idle_timeout);
                    } else if this.phase != Phase::AwaitHead {
                        // First bytes of the next request on a keep-alive connection.
                        this.set_deadline(Phase::AwaitHead, this.header_timeout);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if busy {
                    this.phase = Phase::Busy;
                    this.activity.reader.register(cx.waker());
                    // The request may have ended between the load and the registration.
                    if this.activity.active.load(Ordering::Acquire) > 0 {
                        return Poll::Pending;
                    }
                }
                if this.phase == Phase::Busy {
                    this.set_deadline(Phase::Idle, this.idle_timeout);
                }
                if this.sleep.deadline() != this.deadline {
                    let deadline = this.deadline;
                    this.sleep.as_mut().reset(deadline);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        let what = match this.phase {
                            Phase::AwaitHead => "request head not received within header_timeout",
                            _ => "idle keep-alive connection reached idle_timeout",
                        };
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The hyper connection builder for one listener's limits.
fn builder(cfg: &ListenerConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // The read buffer cannot grow past the largest allowed head; hyper answers 431 when a
    // head does not fit. hyper requires at least 8 KiB here, which config validation enforces.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(cfg.max_header_size.max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_header_size).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    b
}

/// What a listener task needs besides its socket and config.
#[derive(Clone)]
pub struct ListenerEnv {
    /// Routing state.
    pub shared: Arc<Shared>,
    /// This listener's counters (also read by the admin API and by shutdown).
    pub stats: Arc<ListenerStats>,
    /// True: stop accepting on this listener (reload removed it, or shutdown).
    pub stop: watch::Receiver<bool>,
    /// True: the process is shutting down; open connections finish their requests and close.
    pub drain: watch::Receiver<bool>,
    /// The TLS acceptor, swapped on reload; `None` for plain HTTP.
    pub tls: Option<Arc<ArcSwap<TlsAcceptor>>>,
}

/// Per-connection settings and shared handles.
#[derive(Clone)]
struct ConnEnv {
    shared: Arc<Shared>,
    ctx: Arc<ListenerCtx>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    header_timeout: Duration,
    idle_timeout: Duration,
    drain: watch::Receiver<bool>,
}

/// Accepts and serves connections on `tcp` until `env.stop` turns true, then returns (closing
/// the socket so new connections are refused). Open connections carry on independently.
pub async fn serve(tcp: TcpListener, cfg: ListenerConfig, env: ListenerEnv) {
    let ListenerEnv {
        shared,
        stats,
        mut stop,
        drain,
        tls,
    } = env;
    let conn_env = ConnEnv {
        shared,
        ctx: Arc::new(ListenerCtx {
            name: cfg.name.as_str().into(),
            pool: cfg.pool.clone(),
            proto: if tls.is_some() { "https" } else { "http" },
        }),
        builder: Arc::new(builder(&cfg)),
        header_timeout: cfg.header_timeout,
        idle_timeout: cfg.idle_timeout,
        drain,
    };
    let limit = Arc::new(Semaphore::new(cfg.max_connections));
    loop {
        // At the limit, stop accepting: new clients wait in the kernel backlog instead of
        // being accepted and dropped.
        let permit = tokio::select! {
            permit = Arc::clone(&limit).acquire_owned() => permit.expect("semaphore never closed"),
            _ = stopped(&mut stop) => break,
        };
        let (mut stream, mut peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener.name = %conn_env.ctx.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let open = OpenConnection::new(&stats);
        let _ = stream.set_nodelay(true);
        let env = conn_env.clone();
        let tls = tls.as_ref().map(|t| t.load_full());
        let proxy_protocol = cfg.proxy_protocol;
        tokio::spawn(async move {
            let (_permit, _open) = (permit, open);
            if proxy_protocol {
                match proxy_protocol::read(&mut stream, env.header_timeout).await {
                    Ok(proxy_protocol::Header::Proxied { source, .. }) => peer = source,
                    Ok(proxy_protocol::Header::Local) => {}
                    Err(e) => {
                        tracing::debug!(client.addr = %peer, error = %e, "connection refused");
                        return;
                    }
                }
            }
            match tls {
                None => serve_conn(stream, peer, env).await,
                Some(acceptor) => {
                    match tokio::time::timeout(env.header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => serve_conn(tls_stream, peer, env).await,
                        Ok(Err(e)) => {
                            tracing::debug!(client.addr = %peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(client.addr = %peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    tracing::info!(listener.name = %conn_env.ctx.name, "stopped accepting");
}

/// Serves HTTP on one established connection until it closes.
async fn serve_conn<T>(io: T, peer: SocketAddr, env: ConnEnv)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TimedIo::new(io, env.header_timeout, env.idle_timeout);
    let activity = io.activity();
    let (shared, ctx) = (env.shared, env.ctx);
    let service = service_fn(move |req| {
        let busy = Busy::new(&activity);
        proxy::handle(Arc::clone(&shared), Arc::clone(&ctx), peer, busy, req)
    });
    let mut drain = env.drain;
    let conn = env
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stopped(&mut drain) => {
            // Finish the request in progress (if any), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(client.addr = %peer, error = %e, "client connection ended");
    }
}

/// Resolves once `stop` is true (at once if it already is).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    // A closed channel means the process is going away: stop as well.
    let _ = stop.wait_for(|s| *s).await;
}
