//! One virtual user: its own cookie jar and source address, starting a session with the flow's
//! first step and running the other steps as one action, checking that the session and its
//! writes are still there, and recording what it saw.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use tokio::time::Instant;

use super::outcome::{LoadResult, Loss, Outcome, Sample};
use super::pacing::wait_until;
use super::progress::Progress;
use super::replay::{replay, Replay};
use super::spec::LoadSpec;
use crate::http::{self, Jar, Reply, Sender};
use crate::scenario::{fill, FlowStep};

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
    /// Steps sent so far, for unique nonces.
    nonces: u64,
    /// The current identity's session (its n-th login attempt) and how many it attempted.
    session: u32,
    attempts: u32,
    /// The pacing of the action about to send, for its first request's sample.
    pacing: Option<Option<Duration>>,
    /// The attackers replaying this user's logged-out sessions.
    attackers: Vec<tokio::task::JoinHandle<Replay>>,
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
        // Run 0 keeps the schedules of earlier versions; `--repeat` shifts the others.
        let seed = (0x7e7e_0000 + index as u64).wrapping_add(spec.seed.wrapping_mul(0x9e37_79b9));
        let rng = fastrand::Rng::with_seed(seed);
        User {
            conns: (0..spec.targets.len()).map(|_| None).collect(),
            spec,
            start,
            identities,
            hot,
            progress,
            rng,
            identity: 0,
            jar: Jar::default(),
            nonces: 0,
            session: 0,
            attempts: 0,
            pacing: None,
            attackers: Vec::new(),
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
        let mut session: Option<Session> = None;
        let mut lifetime = self.lifetime();
        // The first visitors are part-way through their visit, as in a shop already open.
        let mut actions = self.rng.u32(0..=lifetime / 2);
        while next < deadline {
            self.pacing = Some(wait_until(next).await);
            let target = actions as usize % self.spec.targets.len();
            session = match session {
                None => self.start_session(target, next).await,
                Some(s) => self.act(target, next, s).await,
            };
            let done =
                |s: &mut Session| self.spec.logout_after > 0 && s.actions >= self.spec.logout_after;
            if session.take_if(done).is_some() {
                self.logout(target).await;
            }
            // A one-step flow has nothing to run within a session: every action starts one.
            if self.spec.flow.len() == 1 {
                session = None;
            }
            actions += 1;
            if !self.hot && lifetime > 0 && actions >= lifetime {
                self.new_identity();
                session = None;
                actions = 0;
                lifetime = self.lifetime();
            }
            let jitter = 1.0 + self.spec.jitter * (2.0 * self.rng.f64() - 1.0);
            next += think.mul_f64(jitter.max(0.0));
        }
        // Each attacker is bounded by its probe's give-up time.
        for a in std::mem::take(&mut self.attackers) {
            if let Ok(r) = a.await {
                self.out.replays.push(r);
            }
        }
        self.out
    }

    /// Logs the session out right after its last action, and sets an attacker on the cookies
    /// it held just before.
    async fn logout(&mut self, target: usize) {
        let stolen = self.jar.header();
        let step = FlowStep {
            method: "POST".into(),
            path: "/logout".into(),
            body: String::new(),
            headers: Default::default(),
            expect_status: Vec::new(),
            write: false,
            expect_writes: false,
        };
        let at = Instant::now();
        let i = self.spec.flow.len();
        let (o, _) = self
            .exec(
                target,
                Method::POST,
                "/logout",
                Bytes::new(),
                &[],
                at,
                i,
                &step,
            )
            .await;
        if o == Outcome::Ok {
            let addr = self.spec.targets[target];
            let who = (self.identity, self.session);
            let (start, probe) = (self.start, self.spec.probe);
            self.attackers
                .push(tokio::spawn(replay(addr, stolen, start, probe, who)));
        }
    }

    /// How many actions the current visitor will do (0: stays for the whole run).
    fn lifetime(&mut self) -> u32 {
        let mean = self.spec.actions_per_user as f64;
        (mean * (0.5 + self.rng.f64())).round() as u32
    }

    /// Step 0 (a login): a new session when it succeeds.
    async fn start_session(&mut self, target: usize, intended: Instant) -> Option<Session> {
        self.session = self.attempts;
        self.attempts += 1;
        let (o, reply, _) = self.step(target, 0, intended, 0).await;
        if o != Outcome::Ok {
            return None;
        }
        Some(Session {
            writes: Vec::new(),
            actions: 0,
            on: reply.as_ref().and_then(backend_of),
        })
    }

    /// One action: steps 1.. in order, each sent as soon as the previous one answered. Returns
    /// the session, or `None` (and a recorded loss) when a step showed it lost.
    async fn act(&mut self, target: usize, intended: Instant, mut s: Session) -> Option<Session> {
        s.actions += 1;
        let mut previous = s.on.clone();
        for i in 1..self.spec.flow.len() {
            let at = if i == 1 { intended } else { Instant::now() };
            let (o, reply, nonce) = self.step(target, i, at, s.actions).await;
            let backend = reply.as_ref().and_then(backend_of);
            let loss = |reason| Lost {
                reason,
                status: reply.as_ref().map(|r| r.status),
                step: i,
                backend: backend.clone(),
                previous: previous.clone(),
            };
            match o {
                Outcome::Ok => {
                    let step = &self.spec.flow[i];
                    if step.expect_writes {
                        let body = reply.as_ref().map(|r| &r.body[..]).unwrap_or_default();
                        let body = String::from_utf8_lossy(body);
                        if !s.writes.iter().all(|w| body.contains(w.as_str())) {
                            return self.lost(loss("write missing"), &s);
                        }
                    }
                    if step.write {
                        s.writes.push(nonce);
                    }
                }
                Outcome::NoSession => return self.lost(loss("session not found"), &s),
                // An error says nothing about the session: keep it and try again next time.
                Outcome::Error(_) => return Some(s),
            }
            previous = backend;
        }
        Some(s)
    }

    fn lost(&mut self, l: Lost, s: &Session) -> Option<Session> {
        self.progress.lost.fetch_add(1, Ordering::Relaxed);
        // The loss belongs to the request that showed it, on the same (intended-time) clock
        // as every other count of the timeline.
        let mut at = self.start.elapsed();
        if let Some(x) = self.out.samples.last_mut() {
            x.lost = Some(l.reason);
            at = x.at;
        }
        self.out.losses.push(Loss {
            at,
            reason: l.reason,
            status: l.status,
            step: l.step,
            backend: l.backend,
            session_on: s.on.clone(),
            previous: l.previous,
        });
        None
    }

    /// Sends flow step `i` with its placeholders filled; returns the outcome, the reply and
    /// the nonce it carried.
    async fn step(
        &mut self,
        target: usize,
        i: usize,
        intended: Instant,
        n: u32,
    ) -> (Outcome, Option<Reply>, String) {
        self.nonces += 1;
        let nonce = format!("n{:x}x{:x}z", self.identity, self.nonces);
        let (user, step, n) = (self.identity.to_string(), i.to_string(), n.to_string());
        let values = [
            ("nonce", nonce.as_str()),
            ("user", user.as_str()),
            ("step", step.as_str()),
            ("n", n.as_str()),
        ];
        // A handle of its own, so the step can be read while `exec` borrows the user mutably.
        let all = Arc::clone(&self.spec);
        let spec = &all.flow[i];
        let method = Method::from_bytes(spec.method.as_bytes()).unwrap_or(Method::GET);
        let path = fill(&spec.path, &values);
        let body = Bytes::from(fill(&spec.body, &values));
        let headers: Vec<(String, String)> = spec
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), fill(v, &values)))
            .collect();
        let (o, reply) = self
            .exec(target, method, &path, body, &headers, intended, i, spec)
            .await;
        (o, reply, nonce)
    }

    /// A new visitor: fresh jar, fresh source address, fresh connections.
    fn new_identity(&mut self) {
        self.identity = self.identities.fetch_add(1, Ordering::Relaxed);
        self.jar.clear();
        self.attempts = 0;
        self.conns.iter_mut().for_each(|c| *c = None);
    }

    #[allow(clippy::too_many_arguments)]
    async fn exec(
        &mut self,
        target: usize,
        method: Method,
        path: &str,
        body: Bytes,
        headers: &[(String, String)],
        intended: Instant,
        step: usize,
        expect: &FlowStep,
    ) -> (Outcome, Option<Reply>) {
        let addr = self.spec.targets[target];
        let source = source_ip(self.identity);
        let cookie = self.jar.header();
        let Ok(uri) = path.parse::<hyper::Uri>() else {
            return (Outcome::Error(format!("bad path {path:?}")), None);
        };
        let mut req = http::request(method, addr, path, body, cookie.as_deref());
        *req.uri_mut() = uri;
        for (k, v) in headers {
            if let (Ok(k), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(k.as_bytes()),
                hyper::header::HeaderValue::from_str(v),
            ) {
                req.headers_mut().insert(k, v);
            }
        }
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
        let finished = Instant::now();
        let (outcome, reply) = match result {
            Ok(r) => {
                self.jar.absorb(&r.headers);
                let o = match r.status {
                    s if expect.status_ok(s) => Outcome::Ok,
                    // Step 0 has no session to lose: anything unexpected there is an error.
                    s if s < 500 && step > 0 => Outcome::NoSession,
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
        let since = |t: Instant| t.saturating_duration_since(self.start);
        let pacing = self.pacing.take();
        self.out.samples.push(Sample {
            step,
            session: self.session,
            outcome: outcome.clone(),
            status: reply.as_ref().map(|r| r.status),
            backend: reply.as_ref().and_then(backend_of),
            identity: self.identity,
            lag: pacing.flatten(),
            late: matches!(pacing, Some(None)),
            ..Sample::timed(since(intended), since(sent), since(finished))
        });
        (outcome, reply)
    }
}

/// Which backend answered: the app's own `x-backend-id`, else the backend tether names in its
/// explain header (`x-tether-affinity: <why>; backend=<id>`, on in app cells).
fn backend_of(r: &Reply) -> Option<Arc<str>> {
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

/// A session in progress: what it wrote, how many actions it did, where it started.
struct Session {
    writes: Vec<String>,
    actions: u32,
    on: Option<Arc<str>>,
}

/// A loss as `act` saw it, before the session's part is added.
struct Lost {
    reason: &'static str,
    status: Option<u16>,
    step: usize,
    backend: Option<Arc<str>>,
    previous: Option<Arc<str>>,
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
