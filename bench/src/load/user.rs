//! One virtual user: its own cookie jar and source address, starting a session with the flow's
//! first step and running the other steps as one action, checking that the session and its
//! writes are still there, and recording what it saw.

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
use super::send::{backend_of, build, burst, judge, prepare, send, source_ip, Prepared};
use super::spec::LoadSpec;
use super::ws::Hold;
use crate::http::{Jar, Reply, Sender};
use crate::scenario::FlowStep;

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
            concurrent: 1,
            websocket: false,
        };
        let logout = Prepared {
            method: Method::POST,
            path: "/logout".into(),
            body: Bytes::new(),
            headers: Vec::new(),
            nonce: String::new(),
        };
        let (at, i) = (Instant::now(), self.spec.flow.len());
        let (o, _) = self.exec(target, &logout, at, i, &step).await;
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
            if self.spec.flow[i].websocket {
                self.pacing = None;
                let who = (self.identity, self.session, i);
                let progress = Arc::clone(&self.progress);
                let jar = self.jar.header();
                let hold = Hold::new(&self.spec, target, who, jar, self.start, progress);
                self.out.samples.extend(hold.run().await);
                return Some(s);
            }
            let at = if i == 1 { intended } else { Instant::now() };
            let (o, reply, nonces) = self.step(target, i, at, s.actions).await;
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
                        let missing = s.writes.iter().filter(|w| !body.contains(w.as_str()));
                        let missing = missing.count() as u32;
                        if missing > 0 {
                            if let Some(x) = self.out.samples.last_mut() {
                                x.missing = missing;
                            }
                            return self.lost(loss("write missing"), &s);
                        }
                    }
                    if step.write {
                        s.writes.extend(nonces);
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

    /// Flow step `i` with its placeholders filled and a fresh nonce.
    fn prepare(&mut self, i: usize, n: u32) -> Prepared {
        self.nonces += 1;
        prepare(&self.spec.flow[i], i, n, self.identity, self.nonces)
    }

    /// Sends flow step `i` (`concurrent` copies of it at once, each on a connection of its
    /// own, when the step asks for that); returns the outcome (a lost session if any copy
    /// showed one, else success if any copy succeeded), a reply, and the nonces that were
    /// accepted.
    async fn step(
        &mut self,
        target: usize,
        i: usize,
        intended: Instant,
        n: u32,
    ) -> (Outcome, Option<Reply>, Vec<String>) {
        // A handle of its own, so the step can be read while `exec` borrows the user mutably.
        let all = Arc::clone(&self.spec);
        let spec = &all.flow[i];
        if spec.concurrent <= 1 {
            let p = self.prepare(i, n);
            let (o, reply) = self.exec(target, &p, intended, i, spec).await;
            return (o, reply, vec![p.nonce]);
        }
        let (addr, source, timeout) = (
            self.spec.targets[target],
            source_ip(self.identity),
            self.spec.timeout,
        );
        let cookie = self.jar.header();
        let mut reqs = Vec::new();
        let mut nonces = Vec::new();
        for _ in 0..spec.concurrent {
            let p = self.prepare(i, n);
            reqs.push(build(&p, addr, cookie.as_deref()));
            nonces.push(p.nonce);
        }
        let done = burst(reqs, addr, source, timeout).await;
        let (mut outcome, mut last, mut ok) = (Outcome::Error("no reply".into()), None, Vec::new());
        for ((r, sent, finished), nonce) in done.into_iter().zip(nonces) {
            let (o, reply) = self.record(r, intended, sent, finished, i, spec);
            if o == Outcome::Ok {
                ok.push(nonce);
            }
            // A copy that lost the session decides; else one that succeeded does.
            outcome = match (outcome, o) {
                (Outcome::NoSession, _) | (_, Outcome::NoSession) => Outcome::NoSession,
                (Outcome::Ok, _) | (_, Outcome::Ok) => Outcome::Ok,
                (_, e) => e,
            };
            last = reply.or(last);
        }
        (outcome, last, ok)
    }

    /// A new visitor: fresh jar, fresh source address, fresh connections.
    fn new_identity(&mut self) {
        self.identity = self.identities.fetch_add(1, Ordering::Relaxed);
        self.jar.clear();
        self.attempts = 0;
        self.conns.iter_mut().for_each(|c| *c = None);
    }

    /// Sends one request on the user's connection to `target` and records it.
    async fn exec(
        &mut self,
        target: usize,
        p: &Prepared,
        intended: Instant,
        step: usize,
        expect: &FlowStep,
    ) -> (Outcome, Option<Reply>) {
        let addr = self.spec.targets[target];
        let sent = Instant::now();
        let result = match build(p, addr, self.jar.header().as_deref()) {
            Ok(req) => {
                let (source, timeout) = (source_ip(self.identity), self.spec.timeout);
                send(&mut self.conns[target], addr, source, req, timeout).await
            }
            Err(e) => Err(e),
        };
        self.record(result, intended, sent, Instant::now(), step, expect)
    }

    /// Takes a request's result into the jar, the live counters and the samples.
    fn record(
        &mut self,
        result: Result<Reply, String>,
        intended: Instant,
        sent: Instant,
        finished: Instant,
        step: usize,
        expect: &FlowStep,
    ) -> (Outcome, Option<Reply>) {
        let (outcome, reply) = match result {
            Ok(r) => {
                self.jar.absorb(&r.headers);
                (judge(r.status, step, expect), Some(r))
            }
            Err(e) => (Outcome::Error(e), None),
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
            write: expect.write,
            ..Sample::timed(since(intended), since(sent), since(finished))
        });
        (outcome, reply)
    }
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
