//! The session-store choice: where a demo backend keeps its sessions, the second axis of every
//! scenario's matrix.

/// Where a backend keeps its sessions.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SessionStore {
    /// A map in this process's memory: lost when the process dies, invisible to its peers.
    Local,
    /// Redis: every backend sees every session, at the cost of a network hop.
    Shared,
    /// The cart in an HMAC-sealed cookie: the client carries the state.
    Token,
}

impl SessionStore {
    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            SessionStore::Local => "local",
            SessionStore::Shared => "shared",
            SessionStore::Token => "token",
        }
    }
}
