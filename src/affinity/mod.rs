//! Stickiness without shared state: the sealed affinity cookie, the client address that
//! ip_hash keys on, and the per-request decision (`sticky`) that combines them with backend
//! state. All are pure functions of the config and the request, so every tether instance
//! routes a client the same way.

pub mod client_ip;
pub mod cookie;
pub mod sticky;
