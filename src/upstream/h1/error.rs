//! Why an exchange with an HTTP/1.1 backend failed.

use std::io;

use crate::upstream::limits::MAX_RESPONSE_HEAD;

/// Why an exchange with a backend failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A read or write on the backend's socket failed.
    #[error("backend connection: {0}")]
    Io(#[from] io::Error),
    /// The backend closed the connection before a complete response head.
    #[error("backend closed the connection before a complete response head")]
    Closed,
    /// The response head is not valid HTTP/1.x.
    #[error("invalid response head: {0}")]
    Invalid(&'static str),
    /// The response head does not fit in [`MAX_RESPONSE_HEAD`].
    #[error("response head larger than {MAX_RESPONSE_HEAD} bytes")]
    TooLarge,
    /// The response body broke off or its chunked framing is invalid.
    #[error("response body: {0}")]
    Body(&'static str),
}
