//! The demo shop's per-user rate limit: at most L requests of a session in any sliding second,
//! counted in this process's memory (each backend keeps its own count) or in Redis (one count
//! all backends share, updated atomically by a Lua script). A sliding window rather than
//! per-calendar-second counters, so that "admitted in any one second" is a number a client can
//! measure without knowing where the servers' seconds begin.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::resp::{Redis, Value};

/// Where the per-user counts live.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RateStore {
    /// In this process: every backend counts only the requests it saw.
    #[default]
    Memory,
    /// In Redis: every backend counts every request of the user.
    Redis,
}

impl RateStore {
    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            RateStore::Memory => "memory",
            RateStore::Redis => "redis",
        }
    }
}

/// The window the limit applies to.
const WINDOW: Duration = Duration::from_secs(1);

/// Drops the requests older than a second from the user's sorted set, then admits the request
/// when fewer than ARGV[2] remain, all in one atomic step.
const SCRIPT: &str = "local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1000)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], 2000)
  return 1
end
return 0";

/// A rate limit of `per_s` requests per user per sliding second.
pub struct Limiter {
    per_s: u32,
    store: RateStore,
    /// Memory store: the admission times within the last second, per user.
    seen: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Limiter {
    /// A limiter of `per_s` requests per second, counted in `store`.
    pub fn new(per_s: u32, store: RateStore) -> Limiter {
        Limiter {
            per_s,
            store,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `user`'s request is admitted (and counted); `false`: answer 429.
    pub async fn admit(&self, redis: Option<&Redis>, user: &str) -> io::Result<bool> {
        match self.store {
            RateStore::Memory => Ok(self.admit_here(user)),
            RateStore::Redis => {
                let r =
                    redis.ok_or_else(|| io::Error::other("--rate-store redis needs --redis"))?;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let (key, now, limit) = (
                    format!("rate:{user}"),
                    now.to_string(),
                    self.per_s.to_string(),
                );
                let member = format!("{now}-{:x}", fastrand::u64(..));
                let reply = r
                    .command(&[
                        b"EVAL",
                        SCRIPT.as_bytes(),
                        b"1",
                        key.as_bytes(),
                        now.as_bytes(),
                        limit.as_bytes(),
                        member.as_bytes(),
                    ])
                    .await?;
                Ok(reply == Value::Int(1))
            }
        }
    }

    fn admit_here(&self, user: &str) -> bool {
        let now = Instant::now();
        let mut seen = self.seen.lock().expect("rate lock");
        let q = seen.entry(user.to_string()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        let admitted = q.len() < self.per_s as usize;
        if admitted {
            q.push_back(now);
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_admits_the_limit_per_second_per_user() {
        let l = Limiter::new(2, RateStore::Memory);
        assert!(l.admit_here("a") && l.admit_here("a"));
        assert!(!l.admit_here("a"));
        assert!(l.admit_here("b"));
    }
}
