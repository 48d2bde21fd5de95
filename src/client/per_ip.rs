//! `max_connections_per_ip`: open client connections counted per address at accept time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per client address, when a listener limits them.
pub struct PerIpLimit {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; released on drop.
pub struct IpSlot(Arc<PerIpLimit>, IpAddr);

/// Whether a new connection from an address may be served.
pub enum Admission {
    /// The listener has no per-address limit: nothing is counted.
    Unlimited,
    /// Served, and counted until the slot drops.
    Counted(IpSlot),
    /// The address is at its limit: close the connection.
    Refused,
}

impl PerIpLimit {
    /// At most `max` open connections per address (0: no limit).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Mutex::default(),
        }
    }

    /// Admits a connection from `ip`. Accept path only, never per request.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Admission {
        if self.max == 0 {
            return Admission::Unlimited;
        }
        let mut open = self.open.lock().expect("per-ip lock");
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return Admission::Refused;
        }
        *n += 1;
        Admission::Counted(IpSlot(Arc::clone(self), ip))
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.0.open.lock().expect("per-ip lock");
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}
