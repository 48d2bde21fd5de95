//! The hostile-input battery's harness: one attack per fresh raw connection, what tether
//! answered, whether it closed, how many requests the backend saw, and a probe that proves
//! tether (and its pooled backend connections) still serve normal traffic afterwards.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::backend::{Echo, TestBackend};
use super::client::{RawConn, RawResponse};

/// How long an attacked connection may stay open after tether's answer before it counts as
/// kept alive (hyper closes at once after a 400; a keep-alive connection never closes here).
const CLOSE_WAIT: Duration = Duration::from_millis(1500);

/// How long tether may take to answer an attack: every one of them is decided by the bytes
/// already sent, so an answer (or a close) that waits for `header_timeout` is a failure.
const ANSWER_WAIT: Duration = Duration::from_secs(3);

/// What one attack produced.
#[derive(Debug)]
pub struct Outcome {
    /// tether's response, or `None` if it closed (or reset) the connection without one.
    pub response: Option<RawResponse>,
    /// Whether tether answered or closed within [`ANSWER_WAIT`].
    pub prompt: bool,
    /// Whether tether closed the connection within [`CLOSE_WAIT`] after answering.
    pub closed_after: bool,
    /// Requests the backend received while the attack ran.
    pub backend_requests: u64,
}

impl Outcome {
    /// The status tether answered, if any.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status)
    }

    /// Refused: a prompt 4xx (or a prompt close without any response), no request reached
    /// the backend, and the connection did not stay open for more.
    pub fn refused(&self) -> bool {
        let status_ok = self.status().is_none_or(|s| (400..500).contains(&s));
        self.prompt && status_ok && self.backend_requests == 0 && self.closed_after
    }

    /// The backend's `/echo` dump, when tether answered with one.
    pub fn echo(&self) -> Option<Echo> {
        let r = self.response.as_ref()?;
        (r.status == 200 && r.body.starts_with(b"method ")).then(|| Echo::parse(&r.body))
    }

    /// One line for failure messages.
    pub fn describe(&self) -> String {
        let answer = match &self.response {
            Some(r) => format!(
                "status {} body {:?}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
            None if self.prompt => "closed without a response".to_string(),
            None => format!("neither answered nor closed within {ANSWER_WAIT:?}"),
        };
        format!(
            "{answer}; closed after: {}; backend requests: {}",
            self.closed_after, self.backend_requests
        )
    }
}

/// Sends `bytes` on a fresh connection to `addr`, reads one response (if any) and waits for
/// the connection to close; counts what `backend` received meanwhile.
pub async fn attack(addr: SocketAddr, backend: &TestBackend, bytes: &[u8]) -> Outcome {
    let before = backend.requests();
    let mut conn = RawConn::connect(addr).await;
    // tether may close before reading everything; the response (or its absence) tells.
    let _ = conn.send(bytes).await;
    let (prompt, response) = match tokio::time::timeout(ANSWER_WAIT, conn.read_response()).await {
        Ok(read) => (true, read.ok()),
        Err(_) => (false, None),
    };
    let closed_after = conn.closed_within(CLOSE_WAIT).await.is_some();
    Outcome {
        response,
        prompt,
        closed_after,
        backend_requests: backend.requests() - before,
    }
}

/// A normal `GET /echo` on a fresh connection, marked with `label`: it must be answered 200
/// by the backend as exactly one request carrying the marker, so neither tether nor a pooled
/// backend connection was left desynchronised by whatever came before.
pub async fn probe(addr: SocketAddr, backend: &TestBackend, label: &str) -> Result<Echo, String> {
    let before = backend.requests();
    let mut conn = RawConn::connect(addr).await;
    let head =
        format!("GET /echo?probe HTTP/1.1\r\nHost: probe.example\r\nx-probe: {label}\r\n\r\n");
    conn.send(head.as_bytes())
        .await
        .map_err(|e| format!("probe after {label:?}: send failed: {e}"))?;
    let response = conn
        .read_response()
        .await
        .map_err(|e| format!("probe after {label:?}: no response: {e}"))?;
    if response.status != 200 {
        return Err(format!(
            "probe after {label:?}: status {} body {:?}",
            response.status,
            String::from_utf8_lossy(&response.body)
        ));
    }
    let echo = Echo::parse(&response.body);
    let seen = backend.requests() - before;
    if echo.path != "/echo?probe" || echo.values("x-probe") != [label] || seen != 1 {
        return Err(format!(
            "probe after {label:?} desynchronised: backend saw {seen} requests, echo {echo:?}"
        ));
    }
    Ok(echo)
}

/// Framing problems in what the backend received: both Content-Length and Transfer-Encoding,
/// a coding other than a single `chunked`, or repeated Content-Length.
pub fn ambiguous_framing(echo: &Echo) -> Option<String> {
    let cl = echo.values("content-length");
    let te = echo.values("transfer-encoding");
    if !cl.is_empty() && !te.is_empty() {
        return Some(format!(
            "backend saw both Content-Length {cl:?} and Transfer-Encoding {te:?}"
        ));
    }
    if cl.len() > 1 {
        return Some(format!("backend saw Content-Length {cl:?}"));
    }
    if !(te.is_empty() || te == ["chunked"]) {
        return Some(format!("backend saw Transfer-Encoding {te:?}"));
    }
    None
}

/// Polls `check` every 20 ms until it returns true or `within` passes; true if it did.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resident memory of process `pid` now (`VmRSS`), in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// The soft limit on open files of this process, from /proc/self/limits.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
