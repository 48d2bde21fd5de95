//! One upstream server: identity, weight, state machine, live counters and idle connections
//! ([`model`]), and the passive health that ejects it after consecutive failures ([`passive`]).

mod model;
mod passive;

pub use model::*;
