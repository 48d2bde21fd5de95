//! Sizes that bound what a backend can make tether buffer, and the buffer a response starts
//! with.

/// Largest response head accepted from an HTTP/1.1 backend (a larger one is answered 502), and
/// the most a backend connection buffers in either direction. HAProxy's whole buffer is 16 KiB
/// by default and nginx's `proxy_buffer_size` 4-8 KiB.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Most header fields accepted in a response head or trailer section (hyper's limit too).
pub const MAX_HEADERS: usize = 100;

/// Longest chunk-size line (size and extensions) accepted.
pub const MAX_CHUNK_LINE: usize = 4096;

/// The first read's buffer: most response heads (and small bodies) fit, and a small
/// allocation comes warm from the allocator's thread cache where a 16 KiB one does not.
pub const HEAD_CHUNK: usize = 4096;
