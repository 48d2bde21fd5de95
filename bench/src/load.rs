//! The load generator: virtual users with their own cookie jar and source address, paced on an
//! open-loop schedule, each checking its cart after every write.
//!
//! Latency is measured from the *intended* send time, so a stalled backend that delays a user's
//! next action is charged to that action (no coordinated omission). Pacing sleeps until just
//! before the intended time and then yields until it arrives, because tokio's timer wakes up to
//! a millisecond late; the lag that remains is measured and reported.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use tokio::time::Instant;

use crate::http::{self, Jar, Reply, Sender};

/// What to run: who the users are and how often they act.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Proxy listeners; a user alternates between them action by action.
    pub targets: Vec<SocketAddr>,
    /// Concurrent virtual users.
    pub users: usize,
    /// Mean time between a user's actions.
    pub think: Duration,
    /// Think time varies uniformly by this fraction either way.
    pub jitter: f64,
    /// A user leaves after this many actions on average (uniformly 50%..150%, so arrivals do
    /// not move in lockstep) and a new one (new jar, new address) takes its place; 0 keeps
    /// every user for the whole run.
    pub actions_per_user: u32,
    /// Fraction of users that are hot: long-lived and `hot_factor` times as active.
    pub hot_users: f64,
    /// How much more often a hot user acts.
    pub hot_factor: f64,
    /// How long users keep acting.
    pub duration: Duration,
    /// Per-request limit (connect + response).
    pub timeout: Duration,
}

/// Which request of an action a sample is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `POST /login`.
    Login,
    /// `POST /cart/add`.
    Add,
    /// `GET /cart`, right after a successful add.
    Verify,
}

/// How a request ended, from the client's point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Ok,
    /// 401: the backend that answered does not know the session.
    NoSession,
    /// Anything else: a 5xx or other status, a transport failure or a timeout.
    Error(String),
}

/// One request as the client saw it.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Intended send time since the run started.
    pub at: Duration,
    /// From the intended send time to the end of the response body.
    pub latency: Duration,
    /// From the actual send to the end of the body: what a closed-loop tool would report.
    pub service: Duration,
    /// Which request.
    pub kind: Kind,
    /// How it ended.
    pub outcome: Outcome,
    /// `x-backend-id` of the response, if one came back.
    pub backend: Option<Arc<str>>,
    /// The virtual user's identity (one jar + one address).
    pub identity: u32,
}

/// A lost session, detected by the user itself.
#[derive(Clone, Debug)]
pub struct Loss {
    /// When the user found out, since the run started.
    pub at: Duration,
    /// Who lost it.
    pub identity: u32,
    /// "no session" (401) or "missing items" (the cart came back short).
    pub reason: &'static str,
}

/// Everything the users saw.
#[derive(Default, Debug)]
pub struct LoadResult {
    /// Every request.
    pub samples: Vec<Sample>,
    /// Every lost session.
    pub losses: Vec<Loss>,
    /// Successful logins (sessions started).
    pub logins: u64,
    /// Identities that acted (users, counting replacements).
    pub identities: u32,
    /// Timer lag of sends whose user was idle and waiting (pacing precision).
    pub send_lag: Vec<Duration>,
    /// Sends that started after their intended time because the user's previous request was
    /// still running; their latency includes that wait.
    pub late_sends: u64,
}

/// Live counters for the progress line.
#[derive(Default, Debug)]
pub struct Progress {
    /// Requests finished.
    pub requests: AtomicU64,
    /// Of which errors.
    pub errors: AtomicU64,
    /// Sessions lost so far.
    pub lost: AtomicU64,
}

/// The part of the wait spent yielding instead of sleeping, to beat the timer's granularity.
const SPIN: Duration = Duration::from_micros(1500);

/// Runs `spec` to its end and returns what the users saw.
/// Users start acting at `start` (so the caller can time events against the same clock).
pub async fn run(spec: LoadSpec, start: Instant, progress: Arc<Progress>) -> LoadResult {
    let spec = Arc::new(spec);
    let next_identity = Arc::new(AtomicU32::new(0));
    let hot = (spec.users as f64 * spec.hot_users).round() as usize;
    let mut tasks = Vec::with_capacity(spec.users);
    for i in 0..spec.users {
        let user = User {
            spec: Arc::clone(&spec),
            start,
            identities: Arc::clone(&next_identity),
            hot: i < hot,
            progress: Arc::clone(&progress),
            rng: fastrand::Rng::with_seed(0x7e7e_0000 + i as u64),
            identity: 0,
            jar: Jar::default(),
            conns: (0..spec.targets.len()).map(|_| None).collect(),
            out: LoadResult::default(),
        };
        tasks.push(tokio::spawn(user.run()));
    }
    let mut all = LoadResult::default();
    for t in tasks {
        if let Ok(r) = t.await {
            all.samples.extend(r.samples);
            all.losses.extend(r.losses);
            all.logins += r.logins;
            all.send_lag.extend(r.send_lag);
            all.late_sends += r.late_sends;
        }
    }
    all.identities = next_identity.load(Ordering::Relaxed);
    all.samples.sort_by_key(|s| s.at);
    all.losses.sort_by_key(|l| l.at);
    all
}

/// The source address of identity `n`: 127.1.0.1, 127.1.0.2, ... (x.y.0 and .255 skipped).
pub fn source_ip(n: u32) -> IpAddr {
    let a = 1 + n / (256 * 254);
    let b = (n / 254) % 256;
    let c = n % 254 + 1;
    IpAddr::V4(Ipv4Addr::new(127, a.min(255) as u8, b as u8, c as u8))
}

struct User {
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
    async fn run(mut self) -> LoadResult {
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

/// Waits until `t`. Returns the lag past `t` when the wait started early enough to be on time,
/// `None` when `t` had already passed (the user was busy).
async fn wait_until(t: Instant) -> Option<Duration> {
    let now = Instant::now();
    if now >= t {
        return None;
    }
    if t - now > SPIN {
        tokio::time::sleep_until(t - SPIN).await;
    }
    while Instant::now() < t {
        tokio::task::yield_now().await;
    }
    Some(Instant::now() - t)
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
