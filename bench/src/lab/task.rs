//! A spawned task tied to the cell's lifetime.

/// A task that must not outlive the cell (the load if it overruns, the progress line).
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
