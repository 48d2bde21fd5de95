//! Why an admin change or a reload was refused.

/// Why an admin or reload request was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such pool.
    #[error("no pool named {0:?}")]
    UnknownPool(String),
    /// No such backend in the pool.
    #[error("pool {pool:?} has no backend {id:?}")]
    UnknownBackend {
        /// Pool name.
        pool: String,
        /// Backend id.
        id: String,
    },
    /// The request or the file is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The new config is valid but could not be applied (e.g. an address cannot be bound).
    #[error("{0}")]
    Apply(String),
}
