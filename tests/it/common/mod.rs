//! Shared harness for tether's integration tests: real test backends, the tether process, clients.

pub mod admin;
pub mod affinity;
pub mod backend;
pub mod body;
pub mod browser;
pub mod client;
pub mod config;
pub mod dns;
pub mod dnsmasq;
pub mod hostile;
pub mod killswitch;
pub mod pki;
pub mod reset;
pub mod serial;
pub mod source;
pub mod tether;

pub use admin::Admin;
pub use backend::{dead_addr, BackendOptions, Echo, TestBackend};
pub use client::{H2c, Http1, RawConn, Reply};
pub use killswitch::KillSwitch;
pub use reset::ResetBackend;
pub use tether::Tether;
