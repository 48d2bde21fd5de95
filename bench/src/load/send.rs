//! One request of a virtual user on the wire: built from a flow step, sent on a keep-alive
//! connection (opened from the user's own source address when needed) within the timeout, and
//! judged against what the step expects.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request};
use tokio::time::Instant;

use super::outcome::Outcome;
use crate::http::{self, Reply, Sender};
use crate::scenario::{fill, FlowStep};

/// One result of a burst: the reply or why there was none, when it was sent, when it ended.
pub type Sent = (Result<Reply, String>, Instant, Instant);

/// The source address of identity `n`: 127.1.0.1, 127.1.0.2, ... (x.y.0 and .255 skipped).
pub fn source_ip(n: u32) -> IpAddr {
    let a = 1 + n / (256 * 254);
    let b = (n / 254) % 256;
    let c = n % 254 + 1;
    IpAddr::V4(Ipv4Addr::new(127, a.min(255) as u8, b as u8, c as u8))
}

/// A step's request with its placeholders filled in, before it is sent.
pub struct Prepared {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Body.
    pub body: Bytes,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The unique value it carries (`{nonce}`).
    pub nonce: String,
}

/// Flow step `i` of action `n` with its placeholders filled, carrying nonce number `k` of
/// identity `user`.
pub fn prepare(spec: &FlowStep, i: usize, n: u32, user: u32, k: u64) -> Prepared {
    let nonce = format!("n{user:x}x{k:x}z");
    let (user, step, n) = (user.to_string(), i.to_string(), n.to_string());
    let values = [
        ("nonce", nonce.as_str()),
        ("user", user.as_str()),
        ("step", step.as_str()),
        ("n", n.as_str()),
    ];
    Prepared {
        method: Method::from_bytes(spec.method.as_bytes()).unwrap_or(Method::GET),
        path: fill(&spec.path, &values),
        body: Bytes::from(fill(&spec.body, &values)),
        headers: spec
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), fill(v, &values)))
            .collect(),
        nonce,
    }
}

/// The request of `p` to `addr`, with the jar's cookie header.
pub fn build(
    p: &Prepared,
    addr: SocketAddr,
    cookie: Option<&str>,
) -> Result<Request<Full<Bytes>>, String> {
    let uri = p
        .path
        .parse::<hyper::Uri>()
        .map_err(|_| format!("bad path {:?}", p.path))?;
    let mut req = http::request(p.method.clone(), addr, &p.path, p.body.clone(), cookie);
    *req.uri_mut() = uri;
    for (k, v) in &p.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            req.headers_mut().insert(k, v);
        }
    }
    Ok(req)
}

/// Sends `req` on the connection in `slot`, opening one from `source` when it is empty;
/// after a failure the slot is emptied (the connection's state is unknown).
pub async fn send(
    slot: &mut Option<Sender>,
    addr: SocketAddr,
    source: IpAddr,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Reply, String> {
    let attempt = async {
        if slot.is_none() {
            *slot = Some(
                http::connect(addr, Some(source))
                    .await
                    .map_err(|e| format!("connect: {}", e.kind()))?,
            );
        }
        let sender = slot.as_mut().expect("just connected");
        http::send(sender, req).await.map_err(|e| {
            if e.is_incomplete_message() {
                "connection closed".to_string()
            } else {
                format!("http: {e}")
            }
        })
    };
    let result = match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err("timeout".to_string()),
    };
    if result.is_err() {
        *slot = None;
    }
    result
}

/// Sends `reqs` at once, each on a new connection from `source`; the results in their order.
pub async fn burst(
    reqs: Vec<Result<Request<Full<Bytes>>, String>>,
    addr: SocketAddr,
    source: IpAddr,
    timeout: Duration,
) -> Vec<Sent> {
    let mut set = tokio::task::JoinSet::new();
    for (k, req) in reqs.into_iter().enumerate() {
        // Each copy is bounded by the request timeout.
        set.spawn(async move {
            let sent = Instant::now();
            let r = match req {
                Ok(req) => send(&mut None, addr, source, req, timeout).await,
                Err(e) => Err(e),
            };
            (k, (r, sent, Instant::now()))
        });
    }
    let mut done = set.join_all().await;
    done.sort_by_key(|d| d.0);
    done.into_iter().map(|d| d.1).collect()
}

/// How a response to flow step `step` ends for the user.
pub fn judge(status: u16, step: usize, expect: &FlowStep) -> Outcome {
    match status {
        s if expect.status_ok(s) => Outcome::Ok,
        // Step 0 has no session to lose: anything unexpected there is an error.
        s if s < 500 && step > 0 => Outcome::NoSession,
        s => Outcome::Error(s.to_string()),
    }
}

/// Which backend answered: the app's own `x-backend-id`, else the backend tether names in its
/// explain header (`x-tether-affinity: <why>; backend=<id>`, on in app cells).
pub fn backend_of(r: &Reply) -> Option<Arc<str>> {
    let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(id) = header("x-backend-id") {
        return Some(Arc::from(id));
    }
    let explain = header("x-tether-affinity")?;
    let id = explain
        .split(';')
        .find_map(|p| p.trim().strip_prefix("backend="))?;
    Some(Arc::from(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_are_distinct_loopback() {
        let ips: std::collections::HashSet<_> = (0..2000).map(source_ip).collect();
        assert_eq!(ips.len(), 2000);
        assert_eq!(source_ip(0), IpAddr::V4(Ipv4Addr::new(127, 1, 0, 1)));
        assert!(ips.iter().all(|ip| ip.is_loopback()));
    }
}
