//! Tests that must not overlap. Every integration test runs in this one process, as many at a
//! time as libtest has threads (two on a 2-core machine), and most spawn tether and backends.
//! A few load the machine (thousands of connections, hundreds of MiB streamed): they take
//! [`alone`]. Tests that assert on latency or on a deadline of a few seconds take [`timed`]:
//! they may overlap each other, as they did inside one file before, but never a heavy test.
//! Everything else runs freely. Hold the guard for the whole test: `let _guard = ...;`.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static LOCK: RwLock<()> = RwLock::const_new(());

/// For a test that loads the machine: waits until no other `alone` or `timed` test runs.
pub async fn alone() -> RwLockWriteGuard<'static, ()> {
    LOCK.write().await
}

/// For a test that asserts on timing: waits until no `alone` test runs.
pub async fn timed() -> RwLockReadGuard<'static, ()> {
    LOCK.read().await
}
