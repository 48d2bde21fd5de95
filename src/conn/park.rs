//! Parking: an idle plain HTTP/1.1 connection gives its hyper connection up and leaves a bare
//! socket in its stack, which a later request resumes.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Whether a parked socket is still open with nothing unread: the backend has neither closed
/// it nor sent anything (which would be a stray response). Uses the readiness tokio already
/// has, so a quiet socket costs no system call.
pub(super) fn quiet(stream: &TcpStream) -> bool {
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
    pub(super) fn request(&self, since: Instant) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).since = Some(since);
    }

    /// After the hyper connection ended: the socket, if it was handed over for parking, and
    /// the start of the idle period it parks.
    pub(super) fn take_parked(&self) -> Option<(TcpStream, Instant)> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let stream = state.stream.take()?;
        Some((stream, state.since?))
    }
}

/// A plain upstream socket under hyper that, once parking was requested, hands itself over
/// when hyper shuts the connection down instead of closing.
pub struct Parkable {
    io: Option<TcpStream>,
    park: Arc<Park>,
}

impl Parkable {
    pub(super) fn new(stream: TcpStream, park: Arc<Park>) -> Self {
        Self {
            io: Some(stream),
            park,
        }
    }
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
