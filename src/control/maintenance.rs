//! The maintenance pass over a snapshot, run every 200 ms: state transitions logged (drain
//! finished, health flips via passive ejection), idle upstream connections older than the
//! pool's `keepalive_timeout` closed (and those idle for its `idle_release` parked), and
//! backends that finished draining after removal noticed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::backend::State;
use crate::snapshot::Snapshot;

/// The interval between passes.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(200);

/// Backend states seen by the previous pass, to log transitions only.
#[derive(Debug, Default)]
pub struct Transitions {
    seen: HashMap<(String, Arc<str>, SocketAddr), State>,
}

impl Transitions {
    /// One pass over `snapshot`. True when a backend removed from the config finished
    /// draining, so the snapshot should be rebuilt without it.
    pub fn pass(&mut self, snapshot: &Snapshot) -> bool {
        let mut finished_removal = false;
        let mut live = HashMap::with_capacity(self.seen.len());
        for (name, pool) in &snapshot.pools {
            for b in &pool.backends {
                b.idle
                    .expire(pool.settings.keepalive_timeout, pool.settings.idle_release);
                let state = b.state(&pool.settings.drain);
                let key = (name.clone(), Arc::clone(&b.id), b.addr);
                match self.seen.get(&key) {
                    Some(&before) if before != state => {
                        tracing::info!(pool.name = %name, backend.id = %b.id, backend.addr = %b.addr, from = %before.as_str(), to = %state.as_str(), in_flight = b.in_flight(), "backend state changed");
                    }
                    _ => {}
                }
                if b.is_removing() && state == State::Drained {
                    finished_removal = true;
                }
                live.insert(key, state);
            }
        }
        self.seen = live;
        finished_removal
    }
}
