//! A virtual user holding a WebSocket through the proxy for the rest of the run: it sends a
//! message every think time and expects its echo, reads the server's pushes, and when the
//! connection drops, notes it (and every message still waiting for its echo as lost) and
//! connects again at once.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hyper::header::{HeaderValue, COOKIE};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::outcome::{Outcome, Sample};
use super::progress::Progress;
use super::send::source_ip;
use super::spec::LoadSpec;

/// What a WebSocket sample records: a connection attempt, a message and its echo, a drop.
pub const WS_KINDS: [&str; 3] = ["open", "echo", "drop"];

/// Pause between failed connection attempts.
const RETRY: Duration = Duration::from_millis(100);

/// Who holds the connection, where to, and until when.
pub struct Hold {
    /// The proxy.
    pub addr: SocketAddr,
    /// The user's source address.
    pub source: IpAddr,
    /// The WebSocket path.
    pub path: String,
    /// The user's cookies.
    pub cookie: Option<String>,
    /// The cell's load start (sample times count from it).
    pub start: Instant,
    /// The end of the run.
    pub deadline: Instant,
    /// Time between the user's messages.
    pub every: Duration,
    /// Limit for a connection attempt.
    pub timeout: Duration,
    /// Sample fields: identity, session, flow step.
    pub who: (u32, u32, usize),
    /// The live counters of the progress line.
    pub progress: Arc<Progress>,
}

type Ws = WebSocketStream<TcpStream>;

impl Hold {
    /// The hold of `who` = (identity, session, step) through proxy `target` of `spec`.
    pub fn new(
        spec: &LoadSpec,
        target: usize,
        who: (u32, u32, usize),
        cookie: Option<String>,
        start: Instant,
        progress: Arc<Progress>,
    ) -> Hold {
        Hold {
            addr: spec.targets[target],
            source: source_ip(who.0),
            path: spec.flow[who.2].path.clone(),
            cookie,
            start,
            deadline: start + spec.duration,
            every: spec.think,
            timeout: spec.timeout,
            who,
            progress,
        }
    }

    /// A sample of this user's connection, counted on the progress line.
    fn sample(&self, kind: &'static str, at: Instant, done: Instant, o: Outcome) -> Sample {
        self.progress.requests.fetch_add(1, Ordering::Relaxed);
        if matches!(o, Outcome::Error(_)) {
            self.progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        let since = |t: Instant| t.saturating_duration_since(self.start);
        let (identity, session, step) = self.who;
        Sample {
            identity,
            session,
            step,
            outcome: o,
            ws: Some(kind),
            ..Sample::timed(since(at), since(at), since(done))
        }
    }

    /// Connects (one attempt, bounded by the timeout); the socket and the backend that took it.
    async fn connect(&self) -> Result<(Ws, Option<Arc<str>>), String> {
        let attempt = async {
            let sock = TcpSocket::new_v4().map_err(|e| e.to_string())?;
            sock.bind(SocketAddr::new(self.source, 0))
                .map_err(|e| e.to_string())?;
            let tcp = sock
                .connect(self.addr)
                .await
                .map_err(|e| format!("connect: {}", e.kind()))?;
            let _ = tcp.set_nodelay(true);
            let url = format!("ws://{}{}", self.addr, self.path);
            let mut req = url.into_client_request().map_err(|e| e.to_string())?;
            if let Some(c) = self
                .cookie
                .as_deref()
                .and_then(|c| HeaderValue::from_str(c).ok())
            {
                req.headers_mut().insert(COOKIE, c);
            }
            let (ws, resp) = tokio_tungstenite::client_async(req, tcp)
                .await
                .map_err(|e| format!("ws: {e}"))?;
            let backend = resp
                .headers()
                .get("x-backend-id")
                .and_then(|v| v.to_str().ok())
                .map(Arc::from);
            Ok((ws, backend))
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or_else(|_| Err("timeout".into()))
    }

    /// Holds a connection until the deadline, reconnecting after each drop; every attempt,
    /// echo, lost message and drop as a sample.
    pub async fn run(self) -> Vec<Sample> {
        let mut out = Vec::new();
        // Bounded by the deadline: each pass is one connection's life or one failed attempt.
        while Instant::now() < self.deadline {
            let t = Instant::now();
            let (ws, backend) = match self.connect().await {
                Ok(c) => c,
                Err(e) => {
                    out.push(self.sample("open", t, Instant::now(), Outcome::Error(e)));
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            let mut s = self.sample("open", t, Instant::now(), Outcome::Ok);
            s.status = Some(101);
            s.backend = backend.clone();
            out.push(s);
            let first = out.len();
            self.talk(ws, &mut out).await;
            for x in &mut out[first..] {
                x.backend = backend.clone();
            }
        }
        out
    }

    /// One connection's life: a message every `every`, echoes matched in order, until the
    /// deadline (then a clean close) or a drop.
    async fn talk(&self, mut ws: Ws, out: &mut Vec<Sample>) {
        let mut tick = tokio::time::interval_at(Instant::now() + self.every, self.every);
        let mut waiting: VecDeque<(u64, Instant)> = VecDeque::new();
        let mut seq = 0u64;
        let dropped = loop {
            tokio::select! {
                _ = tokio::time::sleep_until(self.deadline) => {
                    let _ = ws.close(None).await;
                    return;
                }
                at = tick.tick() => {
                    seq += 1;
                    waiting.push_back((seq, at));
                    if ws.send(Message::text(format!("m{seq}"))).await.is_err() {
                        break Instant::now();
                    }
                }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        let echoed = t.strip_prefix("echo m").and_then(|n| n.parse::<u64>().ok());
                        if let Some(n) = echoed {
                            while let Some((k, at)) = waiting.pop_front() {
                                if k == n {
                                    out.push(self.sample("echo", at, Instant::now(), Outcome::Ok));
                                    break;
                                }
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break Instant::now(),
                },
            }
        };
        for (_, at) in waiting {
            out.push(self.sample(
                "echo",
                at,
                dropped,
                Outcome::Error("ws message lost".into()),
            ));
        }
        out.push(self.sample(
            "drop",
            dropped,
            dropped,
            Outcome::Error("ws dropped".into()),
        ));
    }
}
