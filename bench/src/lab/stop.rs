//! Why a cell did not finish: skipped (it cannot run here), broken (it fails), or bad input
//! (the run stops).

/// Why a cell did not finish.
pub enum Stop {
    /// It cannot run here (this tether rejects its config): reported, not failed.
    Skip(String),
    /// It broke (a process would not start, the load hung): the cell fails.
    Broken(String),
    /// The user's input cannot run (their app does not start or never gets ready): the whole
    /// run stops with exit status 2, since no cell of it could say anything.
    Input(String),
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Broken(format!("{e:#}"))
    }
}
