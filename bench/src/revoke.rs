//! Token lifetimes and revocation in the demo shop: when a sealed cart is admitted (its expiry,
//! the Redis denylist of `token-denylist`, the refresh record of `token-refresh`) and what a
//! logout does to each store.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::resp::Redis;
use crate::sessions::SessionStore;
use crate::token::Cart;

/// A refresh record or a denylist entry outlives any token of a lab run.
const RECORD_TTL_SECS: u64 = 3600;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The expiry to seal into a token issued now (0: none, when `ttl_ms` is 0).
pub fn expiry(ttl_ms: u64) -> u64 {
    if ttl_ms == 0 {
        0
    } else {
        now_ms() + ttl_ms
    }
}

fn deny_key(sid: &str) -> String {
    format!("deny:{sid}")
}

fn refresh_key(sid: &str) -> String {
    format!("refresh:{sid}")
}

/// Whether a cart whose seal verified is still a live session: not on the denylist, and not
/// expired (for `token-refresh`, an expired access token is renewed while its refresh record
/// lives).
pub async fn admit(store: SessionStore, redis: Option<&Redis>, cart: &Cart) -> io::Result<bool> {
    let needs = || redis.ok_or_else(|| io::Error::other("this store needs --redis"));
    if store == SessionStore::TokenDenylist && needs()?.get(&deny_key(&cart.sid)).await?.is_some() {
        return Ok(false);
    }
    if cart.exp_ms == 0 || now_ms() <= cart.exp_ms {
        return Ok(true);
    }
    Ok(store == SessionStore::TokenRefresh
        && needs()?.get(&refresh_key(&cart.sid)).await?.is_some())
}

/// At login: `token-refresh` records the session's refresh right in Redis.
pub async fn on_login(store: SessionStore, redis: Option<&Redis>, sid: &str) -> io::Result<()> {
    if store == SessionStore::TokenRefresh {
        let r = redis.ok_or_else(|| io::Error::other("token-refresh needs --redis"))?;
        r.set_ex(&refresh_key(sid), b"1", RECORD_TTL_SECS).await?;
    }
    Ok(())
}

/// At logout: a plain token cannot be revoked (the client is only asked to drop it); the
/// denylist names the session; the refresh record is deleted.
pub async fn on_logout(store: SessionStore, redis: Option<&Redis>, sid: &str) -> io::Result<()> {
    let needs = || redis.ok_or_else(|| io::Error::other("this store needs --redis"));
    match store {
        SessionStore::TokenDenylist => needs()?.set_ex(&deny_key(sid), b"1", RECORD_TTL_SECS).await,
        SessionStore::TokenRefresh => needs()?.del(&refresh_key(sid)).await,
        _ => Ok(()),
    }
}
