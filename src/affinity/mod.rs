//! Stickiness without shared state: the sealed affinity cookie and the client address that
//! ip_hash keys on. Both are pure functions of the config and the request, so every tether
//! instance routes a client the same way; [`crate::pool::sticky`] combines them with backend
//! state into a decision.

pub mod client_ip;
pub mod cookie;
pub mod cookie_header;
