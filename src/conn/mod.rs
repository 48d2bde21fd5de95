//! Connections to backends held between requests: each backend's idle stacks, the parking of
//! idle HTTP/1.1 connections as bare sockets, and how a pool reaches its backends.
//!
//! This is the data a [`crate::backend::Backend`] owns; opening connections and sending on
//! them is [`crate::upstream`]'s job. HTTP/1.1 connections wait in bounded stacks, one per
//! worker thread (see `workers`), behind a mutex held for a push or a pop (most recently used
//! first): a connection is only ever reused on the thread whose reactor registered it. An
//! HTTP/2 connection is shared by all requests of one worker to its backend.
//!
//! A plain HTTP/1.1 connection idle for the pool's `idle_release` is parked: its hyper
//! connection (parser, read and write buffers, task) ends and hands the socket back, and the
//! stack keeps the bare socket. Taking a parked socket starts a new hyper connection on it,
//! after checking that the backend has not closed or written to it.

mod idle;
mod park;
mod proto;
mod sender;

pub use idle::{IdleConns, Reuse};
pub use park::{Park, Parkable};
pub use proto::UpstreamProto;
pub use sender::Sender;
