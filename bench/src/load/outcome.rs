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

/// One request as the client saw it.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Intended send time since the run started.
    pub at: Duration,
    /// From the intended send time to the end of the response body.
    pub latency: Duration,
    /// From the actual send to the end of the body: what a closed-loop tool would report.
    pub service: Duration,
    /// Which step of the flow (0: the one that starts a session).
    pub step: usize,
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
