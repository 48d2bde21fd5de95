//! tether: an L7 load balancer and reverse proxy that makes affinity a measured choice.
//!
//! The binary (`src/main.rs`) wires these modules together; docs/architecture.md has the
//! module map and the lifetime of a request.

#![forbid(unsafe_code)]

pub mod accept;
pub mod access;
pub mod admin;
pub mod affinity;
pub mod backend;
pub mod balance;
pub mod client;
pub mod clock;
pub mod config;
pub mod conn;
pub mod control;
pub mod cross_site;
pub mod dashboard;
pub mod discovery;
pub mod h1;
pub mod headers;
pub mod health;
pub mod log_limit;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod proxy_protocol;
pub mod queue;
pub mod request_id;
pub mod routing;
pub mod server;
pub mod snapshot;
pub mod stats;
pub mod tls;
pub mod upstream;
pub mod workers;
