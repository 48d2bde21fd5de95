//! Admin API changes to the backend set, as edits of a config: checked, applied to a copy, and
//! refused whole when anything is wrong.

use std::net::SocketAddr;

use super::error::ControlError;
use crate::config::{BackendConfig, Config, PoolConfig, MAX_WEIGHT};

/// Adds backend `id` to `pool` or updates its address and weight. True if it was added.
pub fn upsert_backend(
    config: &mut Config,
    pool: &str,
    id: &str,
    addr: &str,
    weight: Option<i64>,
) -> Result<bool, ControlError> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| ControlError::Invalid(format!("invalid socket address {addr:?}")))?;
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_graphic()) || id.len() > 128 {
        return Err(ControlError::Invalid(
            "backend id must be 1-128 printable ASCII characters without spaces".into(),
        ));
    }
    let weight = match weight {
        None => None,
        Some(w) if (1..=i64::from(MAX_WEIGHT)).contains(&w) => Some(w as u32),
        Some(w) => {
            return Err(ControlError::Invalid(format!(
                "weight {w} out of range 1..={MAX_WEIGHT}"
            )))
        }
    };
    let pc = config
        .pools
        .get_mut(pool)
        .ok_or_else(|| ControlError::UnknownPool(pool.into()))?;
    refuse_resolved(pc, id)?;
    Ok(match pc.backends.iter_mut().find(|b| b.id == id) {
        Some(b) => {
            b.addr = addr;
            b.weight = weight.unwrap_or(b.weight);
            false
        }
        None => {
            pc.backends.push(BackendConfig {
                id: id.into(),
                addr,
                weight: weight.unwrap_or(1),
                name: None,
            });
            true
        }
    })
}

/// Removes backend `id` from `pool`; a pool keeps at least one backend.
pub fn remove_backend(config: &mut Config, pool: &str, id: &str) -> Result<(), ControlError> {
    let pc = config
        .pools
        .get_mut(pool)
        .ok_or_else(|| ControlError::UnknownPool(pool.into()))?;
    refuse_resolved(pc, id)?;
    let before = pc.backends.len();
    pc.backends.retain(|b| b.id != id);
    if pc.backends.len() == before {
        return Err(ControlError::UnknownBackend {
            pool: pool.into(),
            id: id.into(),
        });
    }
    // A pool whose backends come from DNS may have no literal one left.
    if pc.backends.is_empty() && pc.named.is_empty() && pc.discover.is_none() {
        return Err(ControlError::Invalid(format!(
            "{id:?} is the last backend of pool {pool:?}; a pool needs at least one"
        )));
    }
    Ok(())
}

/// A backend that DNS names (an `addr` of `name:port`, or `discover`) follows its answer: an
/// admin edit would be undone by the next lookup, so it is refused and the reason given.
fn refuse_resolved(pc: &PoolConfig, id: &str) -> Result<(), ControlError> {
    let named = pc.named.iter().any(|n| n.id == id);
    let discovered = pc.resolved.iter().any(|r| r.id == id);
    if named || discovered {
        return Err(ControlError::Invalid(format!(
            "backend {id:?} comes from DNS; change the DNS answer or the config file \
             (drain, enable and disable still apply)"
        )));
    }
    Ok(())
}
