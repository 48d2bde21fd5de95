//! The timeline: what an event does to a backend, and when.

use serde::Deserialize;

use super::duration::Dur;

/// What an event does.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// SIGKILL the backend process.
    Kill,
    /// SIGSTOP: the process stops answering but its sockets stay open.
    Freeze,
    /// SIGCONT after a freeze.
    Resume,
    /// Start the backend process (again), at its old address if it had one.
    Start,
    /// SIGTERM the backend process and wait for it to exit.
    Stop,
    /// SIGTERM, then start a new process at the same address (a new version, empty memory).
    Restart,
    /// Start the process if needed, then `PUT` it into every proxy's pool.
    Add,
    /// Admin API: `POST .../drain`.
    Drain,
    /// Admin API: `POST .../enable`.
    Enable,
    /// Admin API: `POST .../disable`.
    Disable,
    /// Admin API: `DELETE` the backend from the pool.
    Remove,
    /// `POST /fault` on the backend itself (delay_ms, error_rate, hang).
    Fault,
    /// Start the process if needed, then put its address into the DNS answer the pool
    /// discovers its backends from (`topology.discover`).
    #[serde(rename = "dns-add")]
    DnsAdd,
    /// Take the backend's address out of the DNS answer: tether drains it.
    #[serde(rename = "dns-remove")]
    DnsRemove,
}

impl Action {
    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Freeze => "freeze",
            Action::Resume => "resume",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Add => "add",
            Action::Drain => "drain",
            Action::Enable => "enable",
            Action::Disable => "disable",
            Action::Remove => "remove",
            Action::Fault => "fault",
            Action::DnsAdd => "dns-add",
            Action::DnsRemove => "dns-remove",
        }
    }
}

/// One timeline entry.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// When, from the start of the load.
    pub at: Dur,
    /// What it does.
    pub action: Action,
    /// The backend id it acts on.
    pub backend: String,
    /// `fault`: delay in ms.
    pub delay_ms: Option<u64>,
    /// `fault`: error rate 0..1.
    pub error_rate: Option<f64>,
    /// `fault`: never answer.
    pub hang: Option<bool>,
    /// `add`: weight in the pool (not `dns-add`: every discovered backend weighs the same).
    pub weight: Option<u32>,
}
