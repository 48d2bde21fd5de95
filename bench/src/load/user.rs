//! One virtual user: its own cookie jar and source address, logging in, adding to its cart and
//! reading the cart back after every write, and recording what it saw.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hyper::Method;
use tokio::time::Instant;

use super::outcome::{Kind, LoadResult, Loss, Outcome, Sample};
use super::pacing::wait_until;
use super::progress::Progress;
use super::spec::LoadSpec;
use crate::http::{self, Jar, Reply, Sender};

/// The source address of identity `n`: 127.1.0.1, 127.1.0.2, ... (x.y.0 and .255 skipped).
pub fn source_ip(n: u32) -> IpAddr {
    let a = 1 + n / (256 * 254);
    let b = (n / 254) % 256;
    let c = n % 254 + 1;
    IpAddr::V4(Ipv4Addr::new(127, a.min(255) as u8, b as u8, c as u8))
}

/// A virtual user: while the run lasts, a sequence of visitors (identities), each with a
/// fresh jar, address and connections.
pub struct User {
    spec: Arc<LoadSpec>,
    start: Instant,
    identities: Arc<AtomicU32>,
    hot: bool,
    progress: Arc<Progress>,
    rng: fastrand::Rng,
    identity: u32,
    jar: Jar,
    conns: Vec<Option<Sender>>,
    out: LoadResult,
}

impl User {
    /// User number `index` of the run; the first `hot` ones stay and act more often.
    pub fn new(
        spec: Arc<LoadSpec>,
        start: Instant,
        identities: Arc<AtomicU32>,
        hot: bool,
        progress: Arc<Progress>,
        index: usize,
    ) -> User {
        User {
            conns: (0..spec.targets.len()).map(|_| None).collect(),
            spec,
            start,
            identities,
            hot,
            progress,
            rng: fastrand::Rng::with_seed(0x7e7e_0000 + index as u64),
            identity: 0,
            jar: Jar::default(),
            out: LoadResult::default(),
        }
    }

    /// Acts until the run's end and returns what this user saw.
    pub async fn run(mut self) -> LoadResult {
        let think = if self.hot {
            self.spec.think.div_f64(self.spec.hot_factor.max(1.0))
        } else {
            self.spec.think
        };
        let deadline = self.start + self.spec.duration;
        let mut next = self.start + think.mul_f64(self.rng.f64());
        self.new_identity();
        let mut cart: Option<Vec<String>> = None;
        let mut lifetime = self.lifetime();
        // The first visitors are part-way through their visit, as in a shop already open.
        let mut actions = self.rng.u32(0..=lifetime / 2);
        let mut item = 0u64;
        while next < deadline {
            match wait_until(next).await {
                Some(lag) => self.out.send_lag.push(lag),
                None => self.out.late_sends += 1,
            }
            let target = actions as usize % self.spec.targets.len();
            cart = match cart {
                None => {
                    let (o, _) = self
                        .exec(target, Method::POST, "/login", next, Kind::Login)
                        .await;
                    if o == Outcome::Ok {
                        self.out.logins += 1;
                        Some(Vec::new())
                    } else {
                        None
                    }
                }
                Some(mut items) => {
                    item += 1;
                    let name = format!("i{item}");
                    let path = format!("/cart/add?item={name}");
                    let (o, _) = self
                        .exec(target, Method::POST, &path, next, Kind::Add)
                        .await;
                    match o {
                        Outcome::Ok => {
                            items.push(name);
                            self.verify(target, items).await
                        }
                        Outcome::NoSession => self.lost("no session"),
                        Outcome::Error(_) => Some(items),
                    }
                }
            };
            actions += 1;
            if !self.hot && lifetime > 0 && actions >= lifetime {
                self.new_identity();
                cart = None;
                actions = 0;
                lifetime = self.lifetime();
            }
            let jitter = 1.0 + self.spec.jitter * (2.0 * self.rng.f64() - 1.0);
            next += think.mul_f64(jitter.max(0.0));
        }
        self.out
    }

    /// How many actions the current visitor will do (0: stays for the whole run).
    fn lifetime(&mut self) -> u32 {
        let mean = self.spec.actions_per_user as f64;
        (mean * (0.5 + self.rng.f64())).round() as u32
    }

    /// Reads the cart back; `None` (and a recorded loss) when items went missing.
    async fn verify(&mut self, target: usize, items: Vec<String>) -> Option<Vec<String>> {
        let now = Instant::now();
        let (o, reply) = self
            .exec(target, Method::GET, "/cart", now, Kind::Verify)
            .await;
        match o {
            Outcome::Ok => {
                let seen: Vec<String> = reply
                    .as_ref()
                    .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
                    .and_then(|v| serde_json::from_value(v["items"].clone()).ok())
                    .unwrap_or_default();
                if items.iter().all(|i| seen.contains(i)) {
                    Some(items)
                } else {
                    self.lost("missing items")
                }
            }
            Outcome::NoSession => self.lost("no session"),
            // An error says nothing about the session: keep it and look again next time.
            Outcome::Error(_) => Some(items),
        }
    }

    fn lost(&mut self, reason: &'static str) -> Option<Vec<String>> {
        self.progress.lost.fetch_add(1, Ordering::Relaxed);
        self.out.losses.push(Loss {
            at: self.start.elapsed(),
            identity: self.identity,
            reason,
        });
        None
    }

    /// A new visitor: fresh jar, fresh source address, fresh connections.
    fn new_identity(&mut self) {
        self.identity = self.identities.fetch_add(1, Ordering::Relaxed);
        self.jar.clear();
        self.conns.iter_mut().for_each(|c| *c = None);
    }

    async fn exec(
        &mut self,
        target: usize,
        method: Method,
        path: &str,
        intended: Instant,
        kind: Kind,
    ) -> (Outcome, Option<Reply>) {
        let addr = self.spec.targets[target];
        let source = source_ip(self.identity);
        let cookie = self.jar.header();
        let req = http::request(method, addr, path, Bytes::new(), cookie.as_deref());
        let slot = &mut self.conns[target];
        let sent = Instant::now();
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
        let result = match tokio::time::timeout(self.spec.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err("timeout".to_string()),
        };
        let latency = intended.elapsed();
        let service = sent.elapsed();
        let (outcome, reply) = match result {
            Ok(r) => {
                self.jar.absorb(&r.headers);
                let o = match r.status {
                    200..=299 => Outcome::Ok,
                    401 => Outcome::NoSession,
                    s => Outcome::Error(s.to_string()),
                };
                (o, Some(r))
            }
            Err(e) => {
                // The connection state is unknown after a failure: never reuse it.
                self.conns[target] = None;
                (Outcome::Error(e), None)
            }
        };
        self.progress.requests.fetch_add(1, Ordering::Relaxed);
        if matches!(outcome, Outcome::Error(_)) {
            self.progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.out.samples.push(Sample {
            at: intended.saturating_duration_since(self.start),
            latency,
            service,
            kind,
            outcome: outcome.clone(),
            backend: reply.as_ref().and_then(backend_of),
            identity: self.identity,
        });
        (outcome, reply)
    }
}

fn backend_of(r: &Reply) -> Option<Arc<str>> {
    r.headers
        .get("x-backend-id")
        .and_then(|v| v.to_str().ok())
        .map(Arc::from)
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
