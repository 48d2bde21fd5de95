//! What the users saw: every request as a sample, every lost session, and their totals.

use std::sync::Arc;
use std::time::Duration;

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
