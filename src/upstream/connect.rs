//! Opening connections to backends: TCP with a deadline, then TLS and the HTTP handshake.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::limits::MAX_RESPONSE_HEAD;
use crate::client::ClientBody;
use crate::config::Protocol;
use crate::conn::{IdleConns, Sender, UpstreamProto};

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

/// Opens a new connection to `addr` within `timeout`. Over TLS the server name is the pool's
/// `tls_sni`, else `name` (the DNS name the backend is reached by), else the IP address. An
/// HTTP/2 connection is also shared through `idle` for the requests that follow.
pub async fn connect(
    addr: SocketAddr,
    name: Option<&str>,
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
            Some((connector, sni)) => {
                let by_name = || {
                    let n = name?;
                    ServerName::try_from(n.to_string()).ok()
                };
                let server = sni
                    .clone()
                    .or_else(by_name)
                    .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
                let tls = connector.connect(server, stream).await?;
                handshake(tls, addr, proto.protocol).await
            }
        }
    };
    // One deadline for the TCP connect and the handshakes together.
    let sender = tokio::time::timeout_at(started + timeout, connecting)
        .await
        .map_err(|_| ConnectError::Timeout(timeout))??;
    if let Sender::H2(h2) = &sender {
        idle.share_h2(h2.clone());
    }
    Ok(sender)
}

/// Opens a plain TCP connection to `addr` within `timeout`, for [`super::h1`].
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
    let (io, park, put_back) = idle.parkable(stream);
    let sender = start_h1(io, addr, put_back).await?;
    Ok(Sender::H1(sender, Some(park)))
}

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
