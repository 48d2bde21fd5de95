//! Client-facing listeners: accept with connection limits (total and per client address),
//! read PROXY protocol headers, terminate TLS, serve HTTP/1.1, HTTP/2 and upgrades with the
//! header-read and idle deadlines of [`TimedIo`], and shut down gracefully.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Poll};

use bytes::BytesMut;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::accept::AcceptBackoff;
use crate::client::per_ip::{Admission, PerIpLimit};
use crate::client::{Busy, TimedIo};
use crate::config::ListenerConfig;
use crate::h1;
use crate::proxy::{self, ListenerCtx};
use crate::proxy_protocol;
use crate::snapshot::Shared;
use crate::stats::{ListenerStats, OpenConnection};
use crate::workers::Workers;

/// hyper's HTTP/1.1 and HTTP/2 connection settings for one listener's limits.
struct Protocols {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

impl Protocols {
    fn new(cfg: &ListenerConfig) -> Self {
        let mut h1 = http1::Builder::new();
        // The read buffer cannot grow past the largest allowed head; hyper answers 431 when a
        // head does not fit. hyper requires at least 8 KiB here, which config validation
        // enforces. Head and idle deadlines are TimedIo's, not hyper's.
        // Without writev, hyper copies a response's body behind its head and writes both with
        // one `send`: the kernel's `writev` path cost more per response than copying a body
        // chunk (bench/RESULTS.md). The copy buffer is bounded by the same limit as the read
        // buffer.
        h1.timer(TokioTimer::new())
            .header_read_timeout(None)
            .writev(false)
            .max_buf_size(cfg.max_header_size.max(8192));
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(cfg.max_header_size).unwrap_or(u32::MAX))
            .max_concurrent_streams(256);
        Self { h1, h2 }
    }
}

/// What a listener task needs besides its socket and config.
#[derive(Clone)]
pub struct ListenerEnv {
    /// The snapshot requests read.
    pub shared: Arc<Shared>,
    /// This listener's counters (also read by the admin API and by shutdown).
    pub stats: Arc<ListenerStats>,
    /// True: stop accepting on this listener (reload removed it, or shutdown).
    pub stop: watch::Receiver<bool>,
    /// True: the process is shutting down; open connections finish their requests and close.
    pub drain: watch::Receiver<bool>,
    /// The TLS acceptor, swapped on reload; `None` for plain HTTP.
    pub tls: Option<Arc<ArcSwap<TlsAcceptor>>>,
    /// The threads that serve accepted connections.
    pub workers: Arc<Workers>,
}

/// Settings and shared handles for every connection of a listener.
struct ConnEnv {
    shared: Arc<Shared>,
    ctx: Arc<ListenerCtx>,
    protocols: Arc<Protocols>,
    header_timeout: Duration,
    idle_timeout: Duration,
    idle_release: Option<Duration>,
    max_header_size: usize,
    drain: watch::Receiver<bool>,
    stats: Arc<ListenerStats>,
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
        workers,
    } = env;
    let conn_env = Arc::new(ConnEnv {
        shared,
        ctx: Arc::new(ListenerCtx {
            name: cfg.name.as_str().into(),
            pool: cfg.pool.clone(),
            proto: if tls.is_some() { "https" } else { "http" },
            min_body_rate: cfg.min_body_rate,
            body_grace: cfg.header_timeout,
        }),
        protocols: Arc::new(Protocols::new(&cfg)),
        header_timeout: cfg.header_timeout,
        idle_timeout: cfg.idle_timeout,
        idle_release: cfg.idle_release,
        max_header_size: cfg.max_header_size,
        drain,
        stats: Arc::clone(&stats),
    });
    let limit = Arc::new(Semaphore::new(cfg.max_connections));
    let per_ip = Arc::new(PerIpLimit::new(cfg.max_connections_per_ip));
    let mut backoff = AcceptBackoff::default();
    loop {
        // At the limit, stop accepting: new clients wait in the kernel backlog instead of
        // being accepted and dropped.
        let permit = tokio::select! {
            permit = Arc::clone(&limit).acquire_owned() => permit.expect("semaphore never closed"),
            _ = stopped(&mut stop) => break,
        };
        let (stream, mut peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    backoff.pause(&conn_env.ctx.name, &e).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        backoff.succeeded();
        let open = OpenConnection::new(&stats);
        let _ = stream.set_nodelay(true);
        let env = Arc::clone(&conn_env);
        let tls = tls.as_ref().map(|t| t.load_full());
        let proxy_protocol = cfg.proxy_protocol;
        let per_ip = Arc::clone(&per_ip);
        // The task is the largest part of an idle connection's memory, so it is kept small: the
        // guards and `env` are used where they were captured rather than moved on, since every
        // move into a callee's future would keep a second copy for the connection's life.
        workers.spawn(stream, move |mut stream| async move {
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
            // Counted on the real client address, which PROXY protocol may have supplied.
            let _slot = match per_ip.acquire(peer.ip()) {
                Admission::Refused => {
                    tracing::debug!(client.addr = %peer, "connection refused: max_connections_per_ip reached");
                    return;
                }
                admitted => admitted,
            };
            // One span per connection: debug events of its requests carry where they came from.
            let span = tracing::debug_span!("conn", listener.name = %env.ctx.name, client.addr = %peer);
            async {
                match tls {
                    None => serve_conn(stream, peer, &env).await,
                    // Boxed: the handshake's state is large and would otherwise size every task.
                    Some(acceptor) => Box::pin(async {
                        match tokio::time::timeout(env.header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(tls_stream)) => serve_conn(tls_stream, peer, &env).await,
                            Ok(Err(e)) => {
                                tracing::debug!(client.addr = %peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(client.addr = %peer, "TLS handshake timed out"),
                        }
                    })
                    .await,
                }
            }
            .instrument(span)
            .await;
            drop((permit, open));
        });
    }
    tracing::info!(listener.name = %conn_env.ctx.name, "stopped accepting");
}

/// Serves HTTP on one established connection until it closes.
///
/// An HTTP/1 connection is served in sessions: a session (hyper's parser and its read and
/// write buffers) starts when the client sends and ends when the connection has
/// been idle for `idle_release` with nothing left unparsed. Between sessions an idle
/// keep-alive connection holds only its socket and this task.
async fn serve_conn<T>(io: T, peer: SocketAddr, env: &ConnEnv)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut io = TimedIo::new(io, env.header_timeout, env.idle_timeout, env.idle_release);
    // HTTP/1 heads are read by `h1` first, which checks them itself.
    io.set_inline(false);
    let activity = io.activity();
    let (shared, ctx) = (Arc::clone(&env.shared), Arc::clone(&env.ctx));
    let session = h1::Session {
        shared: &env.shared,
        listener: &env.ctx,
        peer,
        activity: &io.activity(),
        max_head: env.max_header_size,
    };
    let service = service_fn(move |req| {
        let busy = Busy::new(&activity);
        proxy::handle(
            Arc::clone(&shared),
            Arc::clone(&ctx),
            peer,
            busy,
            req.map(Some),
        )
    });
    let mut drain = env.drain.clone();
    loop {
        let h2 = tokio::select! {
            ahead = read_ahead(&mut io) => match ahead {
                Ok(Some(h2)) => h2,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(client.addr = %peer, error = %e, "client connection ended");
                    return;
                }
            },
            // An idle connection has nothing to finish: close it.
            _ = stopped(&mut drain) => return,
        };
        let result = if h2 {
            let conn = env.protocols.h2.serve_connection(TokioIo::new(io), service);
            until_done(Box::pin(conn).as_mut(), &mut drain, |c| {
                c.graceful_shutdown()
            })
            .await
        } else {
            // Bodiless HTTP/1.1 requests are served in this task; the first other request
            // hands the connection to a hyper session.
            // Boxed with its drain wait, so that a connection between sessions does not carry
            // the session's size.
            let session = Box::pin(async {
                let drained = std::pin::pin!(stopped(&mut drain));
                h1::serve(&mut io, &session, drained).await
            });
            match session.await {
                h1::End::Closed => return,
                h1::End::Failed(e) => {
                    tracing::debug!(client.addr = %peer, error = %e, "client connection ended");
                    return;
                }
                h1::End::Released => {
                    env.stats.idle_releases.fetch_add(1, Ordering::Relaxed);
                    io.resume();
                    continue;
                }
                h1::End::Handoff(bytes) => io.hand_over(bytes),
            }
            let conn = env
                .protocols
                .h1
                .serve_connection(TokioIo::new(io), service.clone())
                .with_upgrades();
            // Boxed, so that a connection between sessions does not carry the session's size.
            let mut conn = Box::new(conn);
            let result =
                until_done(Pin::new(&mut *conn), &mut drain, |c| c.graceful_shutdown()).await;
            match (&result, conn.into_parts()) {
                (Ok(()), Some(parts)) if parts.io.inner().released() => {
                    env.stats.idle_releases.fetch_add(1, Ordering::Relaxed);
                    io = parts.io.into_inner();
                    io.resume();
                    io.set_inline(false);
                    // Empty by TimedIo's rule; should a byte remain, the next session reads it.
                    io.rewind(parts.read_buf);
                    continue;
                }
                _ => result,
            }
        };
        if let Err(e) = result {
            tracing::debug!(client.addr = %peer, error = %e, "client connection ended");
        }
        return;
    }
}

/// Drives a hyper connection to its end; on drain, lets the request in progress finish, then
/// closes.
async fn until_done<C>(
    mut conn: Pin<&mut C>,
    drain: &mut watch::Receiver<bool>,
    graceful_shutdown: fn(Pin<&mut C>),
) -> hyper::Result<()>
where
    C: Future<Output = hyper::Result<()>>,
{
    tokio::select! {
        result = conn.as_mut() => result,
        _ = stopped(drain) => {
            graceful_shutdown(conn.as_mut());
            conn.await
        }
    }
}

/// The HTTP/2 connection preface (RFC 9113 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits for a session's first bytes without a buffer of its own, tells HTTP/2's preface from
/// HTTP/1, and puts the bytes back. `None`: the client closed first.
async fn read_ahead<T: AsyncRead + Unpin>(io: &mut TimedIo<T>) -> std::io::Result<Option<bool>> {
    let mut ahead = BytesMut::new();
    let h2 = loop {
        let n = poll_fn(|cx| {
            let mut chunk = [0u8; 4096];
            let mut buf = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut *io).poll_read(cx, &mut buf))?;
            ahead.extend_from_slice(buf.filled());
            Poll::Ready(Ok::<_, std::io::Error>(buf.filled().len()))
        })
        .await?;
        if n == 0 {
            return Ok(None);
        }
        let seen = ahead.len().min(H2_PREFACE.len());
        if ahead[..seen] != H2_PREFACE[..seen] {
            break false;
        }
        if seen == H2_PREFACE.len() {
            break true;
        }
    };
    io.set_h2(h2);
    io.rewind(ahead.freeze());
    Ok(Some(h2))
}

/// Resolves once `stop` is true (at once if it already is).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    // A closed channel means the process is going away: stop as well.
    let _ = stop.wait_for(|s| *s).await;
}
