//! tether's own HTTP/1.1 server for bodiless requests, in the client connection's task:
//! the session loop and the response head it writes. The request head is read by
//! [`crate::client::request_head`].

mod encode;
mod session;

pub use session::{serve, End, Session};
