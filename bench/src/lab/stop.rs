//! Why a cell did not finish: skipped (it cannot run here) or broken (it fails).

/// Why a cell did not finish.
pub enum Stop {
    /// It cannot run here (this tether rejects its config): reported, not failed.
    Skip(String),
    /// It broke (a process would not start, the load hung): the cell fails.
    Broken(String),
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Broken(format!("{e:#}"))
    }
}
