//! Talking to backends: open a connection (optionally TLS) with a deadline, speak HTTP/1.1 or
//! HTTP/2 on it, and give HTTP/1.1 connections back to their backend's idle stack afterwards.
//!
//! tether manages upstream connections itself instead of using a pooled client so that the
//! proxy can tell the two failures apart that matter for retries: "could not connect" (the
//! request was never sent: safe to retry on another backend for any method) and "sent, then
//! failed" (not retried). Bodiless requests to plain HTTP/1.1 backends do not use hyper's
//! client at all: [`h1`] drives a bare socket in the request's own task. Where idle
//! connections wait, and how they are parked, is [`crate::conn`].

mod connect;
pub mod h1;
pub mod limits;
mod release;

pub use connect::{connect, connect_plain, resume, ConnectError};
pub use release::Release;
