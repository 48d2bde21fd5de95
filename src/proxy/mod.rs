//! The request path: one client request is planned (affinity), rewritten, forwarded with
//! retries, and its response relayed with the state that must live as long as the body.
//!
//! The request path reads one snapshot ([`crate::snapshot`]) and touches only atomics and its
//! worker's idle stack of the backend (a mutex held for a push or a pop).

mod attempt;
mod body;
mod error;
mod forward;
mod listener;
mod request;
mod rewrite;
mod target;
mod upgrade;

pub use body::{local_response, BoxError, ProxyBody, UpstreamBody};
pub use error::ProxyError;
pub use listener::ListenerCtx;
pub use request::handle;
