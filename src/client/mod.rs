//! The client side of a connection below the request path: its deadlines and request-head
//! hygiene, whether a request is in progress on it, and the request body read from it.

mod activity;
mod body;
pub mod head_scan;
pub mod per_ip;
pub mod request_head;
mod timed_io;

pub use activity::{Activity, Busy};
pub use body::{ClientBody, TooSlow};
pub use timed_io::TimedIo;
