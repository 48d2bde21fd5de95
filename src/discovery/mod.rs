//! Backends from DNS: a backend `addr` of `name:port` and a pool's `discover` are looked up at
//! start and again while running; each change is handed to the control plane as an edit of
//! the config, so added addresses start like added backends and removed ones drain.

pub mod answer;
mod resolve;
mod task;

pub use resolve::Resolver;
pub use task::{resolve_now, run, write_metrics, DiscoveryStats, Tracker, Update};
