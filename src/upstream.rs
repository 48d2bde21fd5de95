//! Connections to backends: connect with a deadline (optionally TLS), speak HTTP/1.1 or HTTP/2,
//! and keep connections for reuse per backend.
//!
//! tether manages upstream connections itself instead of using a pooled client so that the
//! proxy can tell the two failures apart that matter for retries: "could not connect" (the
//! request was never sent: safe to retry on another backend for any method) and "sent, then
//! failed" (not retried). HTTP/1.1 connections wait in bounded stacks, one per worker thread
//! (see `workers`), behind a mutex held for a push or a pop (most recently used first, see
//! [`Queue`]): a connection is only ever reused on the thread whose reactor registered it. An
//! HTTP/2 connection is shared by all requests of one worker to its backend (a multiplexed
//! sender behind an `ArcSwapOption`).
//!
//! Bodiless requests to plain HTTP/1.1 backends do not use hyper's client at all: they take a
//! bare socket from the stack, and [`crate::h1_client`] puts it back after the response.
//!
//! A plain HTTP/1.1 connection idle for the pool's `idle_release` is parked: its hyper
//! connection (parser, read and write buffers, task: about 18 KiB of RSS) ends and hands the
//! socket back, and the stack keeps the bare socket. Taking a parked socket starts a new hyper
//! connection on it, after checking that the backend has not closed or written to it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::client_body::ClientBody;

/// The protocol tether speaks to a pool's backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2 (prior knowledge on plain TCP, ALPN `h2` over TLS): needed for gRPC.
    H2,
}

/// How to reach a pool's backends.
#[derive(Clone)]
pub struct UpstreamProto {
    /// HTTP version.
    pub protocol: Protocol,
    /// TLS client settings and the name to send and verify, if the pool uses TLS.
    pub tls: Option<(TlsConnector, Option<ServerName<'static>>)>,
    /// TLS is configured but could not be set up: refuse to connect rather than go plain.
    pub tls_broken: bool,
}

impl UpstreamProto {
    /// Plain HTTP/1.1: bodiless requests can go through [`crate::h1_client`].
    pub fn plain_h1(&self) -> bool {
        self.protocol == Protocol::Http1 && self.tls.is_none() && !self.tls_broken
    }
}

impl std::fmt::Debug for UpstreamProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamProto")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.as_ref().map(|(_, name)| name))
            .finish()
    }
}

/// A ready-to-use connection to a backend.
pub enum Sender {
    /// An HTTP/1.1 connection (one request at a time), and its parking handle if it is plain
    /// TCP.
    H1(http1::SendRequest<ClientBody>, Option<Arc<Park>>),
    /// A handle on a multiplexed HTTP/2 connection.
    H2(http2::SendRequest<ClientBody>),
}

impl Sender {
    /// Can take a request now.
    pub fn is_ready(&self) -> bool {
        match self {
            Sender::H1(s, _) => s.is_ready(),
            Sender::H2(s) => s.is_ready(),
        }
    }

    /// Sends a request; if it could not be sent at all, the error gives it back.
    pub async fn send(
        &mut self,
        req: Request<ClientBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<ClientBody>>> {
        match self {
            Sender::H1(s, _) => s.try_send_request(req).await,
            Sender::H2(s) => s.try_send_request(req).await,
        }
    }
}

/// Why a connection to a backend could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connect did not finish within `connect_timeout`.
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    /// The TCP connect or the TLS handshake failed.
    #[error("connect failed: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] hyper::Error),
}

/// A connection waiting for reuse, idle since `since`.
enum Idle {
    /// With its hyper connection running.
    Live {
        sender: http1::SendRequest<ClientBody>,
        park: Option<Arc<Park>>,
        since: Instant,
    },
    /// A bare socket: its hyper connection ended while idle (`released`), or an exchange of
    /// [`crate::h1_client`] left it.
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
    /// A parked socket: [`resume`] starts a hyper connection on it.
    Parked(TcpStream),
}

/// The idle connections of one backend, a bounded stack: the most recently returned one is
/// reused first, so that after a burst a small hot set serves the steady load and the rest stay
/// idle long enough to be parked, then closed, instead of every connection being kept warm in
/// turn. Parked sockets sit at the bottom, below every live connection. A mutex, held for a
/// push or a pop and never across an await: uncontended in a current-thread runtime.
struct Queue {
    items: Mutex<Vec<Idle>>,
    max: usize,
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
        if items.len() >= self.max {
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
}

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
                        held: AtomicUsize::new(0),
                    })
                })
                .collect(),
            h2: (0..workers).map(|_| ArcSwapOption::empty()).collect(),
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
    fn put(&self, sender: http1::SendRequest<ClientBody>, park: Option<Arc<Park>>) {
        if let Some(queue) = self.queue() {
            let _ = queue.push(Idle::Live {
                sender,
                park,
                since: Instant::now(),
            });
        }
    }

    /// Returns a bare socket that [`crate::h1_client`] finished an exchange on; when the stack
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
        for queue in &self.queues {
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

/// Opens a new connection to `addr` within `timeout`. An HTTP/2 connection is also shared
/// through `idle` for the requests that follow.
pub async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    proto: &UpstreamProto,
    idle: &IdleConns,
) -> Result<Sender, ConnectError> {
    if proto.tls_broken {
        return Err(ConnectError::Io(std::io::Error::other(
            "TLS to backends is configured but could not be set up",
        )));
    }
    let started = Instant::now();
    let stream = connect_plain(addr, timeout).await?;
    let connecting = async {
        match &proto.tls {
            None if proto.protocol == Protocol::Http1 => Ok(resume(stream, addr, idle).await?),
            None => handshake(stream, addr, proto.protocol).await,
            Some((connector, name)) => {
                let name = name
                    .clone()
                    .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
                let tls = connector.connect(name, stream).await?;
                handshake(tls, addr, proto.protocol).await
            }
        }
    };
    // One deadline for the TCP connect and the handshakes together.
    let sender = tokio::time::timeout_at(started + timeout, connecting)
        .await
        .map_err(|_| ConnectError::Timeout(timeout))??;
    if let Sender::H2(h2) = &sender {
        idle.h2().store(Some(Arc::new(h2.clone())));
    }
    Ok(sender)
}

/// Opens a plain TCP connection to `addr` within `timeout`, for [`crate::h1_client`].
pub async fn connect_plain(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let connecting = async {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(stream)
    };
    Ok(tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| ConnectError::Timeout(timeout))??)
}

/// Starts an HTTP/1.1 connection on a plain socket, new or parked, that can be parked again.
pub async fn resume(
    stream: TcpStream,
    addr: SocketAddr,
    idle: &IdleConns,
) -> Result<Sender, hyper::Error> {
    let park = Arc::new(Park::default());
    let io = Parkable {
        io: Some(stream),
        park: Arc::clone(&park),
    };
    let queue = idle.queue().map(Arc::downgrade).unwrap_or_default();
    let parking = Arc::clone(&park);
    let sender = start_h1(io, addr, move || parking.put_back(&queue)).await?;
    Ok(Sender::H1(sender, Some(park)))
}

/// Largest response head accepted from an HTTP/1.1 backend (a larger one is answered 502), and
/// the most a backend connection buffers in either direction. HAProxy's whole buffer is 16 KiB
/// by default and nginx's `proxy_buffer_size` 4-8 KiB.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Starts an HTTP/1.1 connection on `io`; its task calls `ended` once the connection is over.
async fn start_h1<I>(
    io: I,
    addr: SocketAddr,
    ended: impl FnOnce() + Send + 'static,
) -> Result<http1::SendRequest<ClientBody>, hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // One `send` per message rather than `writev`, as on the client side (see
    // `server::Protocols`); the buffer that requests and their bodies are copied into is bounded
    // by the same limit as a response head.
    let (sender, conn) = http1::Builder::new()
        .writev(false)
        .max_buf_size(MAX_RESPONSE_HEAD)
        .handshake(TokioIo::new(io))
        .await?;
    // Upgrades (WebSocket) hand the connection over to a tunnel instead of closing it.
    let conn = conn.with_upgrades();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(backend.addr = %addr, error = %e, "upstream connection ended");
        }
        ended();
    });
    Ok(sender)
}

async fn handshake<I>(io: I, addr: SocketAddr, protocol: Protocol) -> Result<Sender, ConnectError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match protocol {
        Protocol::Http1 => Ok(Sender::H1(start_h1(io, addr, || {}).await?, None)),
        Protocol::H2 => {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(Duration::from_secs(20))
                .handshake(TokioIo::new(io))
                .await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(backend.addr = %addr, error = %e, "upstream h2 connection ended");
                }
            });
            Ok(Sender::H2(sender))
        }
    }
}

/// Gives an HTTP/1.1 connection back for reuse when its response is finished: dropped with the
/// response body (after its last byte, or when the client went away).
pub struct Release(Option<(Sender, Arc<crate::backend::Backend>)>);

impl Release {
    /// Returns `sender` to `backend`'s idle connections when dropped (HTTP/2 needs nothing).
    pub fn new(sender: Sender, backend: &Arc<crate::backend::Backend>) -> Self {
        match sender {
            Sender::H1(..) => Self(Some((sender, Arc::clone(backend)))),
            Sender::H2(_) => Self(None),
        }
    }

    /// Nothing to give back (e.g. an upgraded connection, which the tunnel owns).
    pub fn none() -> Self {
        Self(None)
    }
}

impl std::fmt::Debug for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Release")
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let Some((Sender::H1(mut sender, park), backend)) = self.0.take() else {
            return;
        };
        // Usually the connection is already idle by the time the body is dropped; only when it
        // is not (the client went away mid-body, or hyper has not seen the end yet) does the
        // wait need a task of its own. A connection that closes instead is simply dropped.
        if sender.is_ready() {
            backend.idle.put(sender, park);
        } else if !sender.is_closed() {
            tokio::spawn(async move {
                if sender.ready().await.is_ok() {
                    backend.idle.put(sender, park);
                }
            });
        }
    }
}

/// Whether a parked socket is still open with nothing unread: the backend has neither closed
/// it nor sent anything (which would be a stray response). Uses the readiness tokio already
/// has, so a quiet socket costs no system call.
fn quiet(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Shared by the pool and the task of one parkable connection.
#[derive(Default)]
pub struct Park(Mutex<ParkState>);

#[derive(Default)]
struct ParkState {
    /// Set when the pool asks for the socket back: the start of the idle period it parks.
    since: Option<Instant>,
    /// The socket, once hyper has let go of it.
    stream: Option<TcpStream>,
}

impl Park {
    fn request(&self, since: Instant) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).since = Some(since);
    }

    /// After the hyper connection ended: a socket handed over for parking goes back into the
    /// queue (closed instead if the queue is full or gone).
    fn put_back(&self, queue: &Weak<Queue>) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(stream), Some(since), Some(queue)) =
            (state.stream.take(), state.since, queue.upgrade())
        {
            let _ = queue.push(Idle::Parked {
                stream,
                since,
                released: true,
            });
        }
    }
}

/// A plain upstream socket under hyper that, once parking was requested, hands itself over
/// when hyper shuts the connection down instead of closing.
struct Parkable {
    io: Option<TcpStream>,
    park: Arc<Park>,
}

fn handed_over() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "socket handed over for parking",
    )
}

impl AsyncRead for Parkable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Some(io) => Pin::new(io).poll_read(cx, buf),
            None => Poll::Ready(Err(handed_over())),
        }
    }
}

impl AsyncWrite for Parkable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().io {
            Some(io) => Pin::new(io).poll_write(cx, buf),
            None => Poll::Ready(Err(handed_over())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        {
            let mut state = this.park.0.lock().unwrap_or_else(|e| e.into_inner());
            if state.since.is_some() {
                state.stream = this.io.take().or(state.stream.take());
                return Poll::Ready(Ok(()));
            }
        }
        match &mut this.io {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}
