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
    /// `token`, and a logout puts the session id on a denylist in Redis that every request
    /// checks: a token is revoked at once.
    #[serde(rename = "token-denylist")]
    #[value(name = "token-denylist")]
    TokenDenylist,
    /// `token` as a short-lived access token, renewed against a refresh record in Redis that
    /// a logout deletes: a token is revoked when its access lifetime ends.
    #[serde(rename = "token-refresh")]
    #[value(name = "token-refresh")]
    TokenRefresh,
}

impl SessionStore {
    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            SessionStore::Local => "local",
            SessionStore::Shared => "shared",
            SessionStore::Token => "token",
            SessionStore::TokenDenylist => "token-denylist",
            SessionStore::TokenRefresh => "token-refresh",
        }
    }

    /// Whether backends with this store need the lab's redis-server.
    pub fn uses_redis(self) -> bool {
        matches!(
            self,
            SessionStore::Shared | SessionStore::TokenDenylist | SessionStore::TokenRefresh
        )
    }
}
