//! The control plane: starting and reloading listeners and pools, admin changes to backends,
//! and the maintenance tick that finishes drains and runs health checkers.
//!
//! Every change goes through one async mutex (control plane only, never the request path):
//! it computes a new config, builds a new snapshot from it and the current one, and stores it.
//! A change that does not validate is refused whole and nothing is touched.

pub mod diff;
mod discovered;
mod edits;
mod error;
mod listeners;
mod maintenance;
mod plane;

pub use error::ControlError;
pub use plane::Control;
