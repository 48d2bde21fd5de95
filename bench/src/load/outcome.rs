//! What the users saw: every request as a sample, every lost session, and their totals.

use std::sync::Arc;
use std::time::Duration;

/// How a request ended, from the client's point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Ok,
    /// A status below 500 the step does not expect (a 401 "no session", a 404): the backend
    /// that answered does not know the session.
    NoSession,
    /// A 5xx (or, for the session's first step, any unexpected status), a transport failure or
    /// a timeout.
    Error(String),
}

/// One request as the client saw it. Times are offsets from the run's start, whole
/// microseconds, so the raw record (`record`) round-trips every figure exactly.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Intended send time since the run started.
    pub at: Duration,
    /// When it was actually sent.
    pub sent: Duration,
    /// When the response body ended (or the request failed).
    pub finished: Duration,
    /// From the intended send time to the end of the response body.
    pub latency: Duration,
    /// From the actual send to the end of the body: what a closed-loop tool would report.
    pub service: Duration,
    /// Which step of the flow (0: the one that starts a session).
    pub step: usize,
    /// The identity's session this request belongs to (its n-th login attempt, from 0).
    pub session: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status, if a response came back.
    pub status: Option<u16>,
    /// `x-backend-id` of the response, if one came back.
    pub backend: Option<Arc<str>>,
    /// The virtual user's identity (one jar + one address).
    pub identity: u32,
    /// Set on the request that showed its session lost: "session not found" or "write missing".
    pub lost: Option<&'static str>,
    /// On an action's first request: how late the generator's timer fired when the user was
    /// idle and waiting (`None`: not an action's first request, or sent late behind a slow one).
    pub lag: Option<Duration>,
    /// On a WebSocket step: `open` (a connection attempt), `echo` (a message and its echo) or
    /// `drop` (the connection ended under the user).
    pub ws: Option<&'static str>,
    /// A request of a step that writes (`write = true`).
    pub write: bool,
    /// On a read that checks the session's writes: how many of them it came back without.
    pub missing: u32,
    /// On an action's first request: it went out late because the user's previous request
    /// was still running; its latency includes that wait.
    pub late: bool,
}

impl Sample {
    /// A sample from its three instants (offsets from the run's start), truncated to whole
    /// microseconds; latency and service time follow from them.
    pub fn timed(at: Duration, sent: Duration, finished: Duration) -> Sample {
        let us = |d: Duration| Duration::from_micros(d.as_micros() as u64);
        let (at, sent, finished) = (us(at), us(sent).max(us(at)), us(finished).max(us(sent)));
        Sample {
            at,
            sent,
            finished,
            latency: finished - at,
            service: finished - sent,
            step: 0,
            session: 0,
            outcome: Outcome::Ok,
            status: None,
            backend: None,
            identity: 0,
            lost: None,
            lag: None,
            late: false,
            ws: None,
            write: false,
            missing: 0,
        }
    }
}

/// A lost session, detected by the user itself.
#[derive(Clone, Debug)]
pub struct Loss {
    /// When the user found out, since the run started.
    pub at: Duration,
    /// "session not found" (an unexpected status) or "write missing" (a read came back
    /// without a nonce the session wrote).
    pub reason: &'static str,
    /// The HTTP status of the step that found out.
    pub status: Option<u16>,
    /// The flow step that found out.
    pub step: usize,
    /// The backend that answered that step.
    pub backend: Option<Arc<str>>,
    /// The backend that started the session (answered step 0).
    pub session_on: Option<Arc<str>>,
    /// The backend that answered the step before (for a missing write, usually the writer).
    pub previous: Option<Arc<str>>,
}

/// Everything the users saw. Every figure of a cell derives from `samples` alone (see
/// `stats::compute`), so the raw record re-derives the report.
#[derive(Default, Debug)]
pub struct LoadResult {
    /// Every request, in intended-time order.
    pub samples: Vec<Sample>,
    /// Every lost session, with the backends involved (for `verify`'s wording).
    pub losses: Vec<Loss>,
    /// Every logout's replay by the attacker (revocation scenarios only).
    pub replays: Vec<super::replay::Replay>,
}
