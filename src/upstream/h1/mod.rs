//! HTTP/1.1 to plain-TCP backends inside the client connection's task, for requests without a
//! body (most GETs): the request head is written and the response read here, and the response
//! body is read from the backend's socket as the client's side of hyper polls for it.
//!
//! hyper's client drives each connection from a task of its own, so a request crosses to that
//! task through a channel, its response head comes back through another, and every step wakes
//! the other task (bench/RESULTS.md has what that cost). Requests with a body, upgrades, TLS
//! and HTTP/2 backends still go through hyper. An idle connection is a bare socket in its
//! backend's idle stack: it holds no parser or buffer.

mod body;
pub mod chunked;
mod error;
mod exchange;
pub mod head;

pub use body::H1Body;
pub use error::Error;
pub use exchange::{eligible, exchange, Failed};
