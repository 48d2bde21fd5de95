//! What the load generator runs: who the users are and how often they act.

use std::net::SocketAddr;
use std::time::Duration;

use crate::scenario::FlowStep;

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
    /// After this many actions in a session the user logs out (`POST /logout`) and an
    /// attacker replays the cookies it held just before; 0: users never log out.
    pub logout_after: u32,
    /// How the attacker replays.
    pub probe: super::replay::Probe,
    /// Seeds the users' schedules; `--repeat` gives each run of a cell its own.
    pub seed: u64,
    /// One session: step 0 starts it, each action then runs the other steps in order.
    pub flow: Vec<FlowStep>,
}
