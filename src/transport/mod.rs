//! Message boundaries on a byte stream.
//!
//! - [`framed`]: a 4-byte big-endian length before each message.
//! - [`scan`]: buffered (unframed) transport, where the only way to find where a
//!   message ends is to walk its values; the [`scan::Scanner`] does that incrementally,
//!   resuming where it stopped when more bytes arrive.
//! - [`io`]: appending socket reads on monoio.
//! - [`conn`]: [`conn::MessageConn`], one socket and its buffers: read one whole
//!   message, write messages, for the server, the client and the perf harness.
//! - [`gather`]: large shared byte strings linked into a write, not copied.
//! - [`header`]: TTHeader and THeader, the header transports inside a frame.
//! - [`budget`]: what a core's connections may hold together of requests still
//!   arriving.
//! - [`spare`]: a core's large buffers, kept between large messages.
//!
//! Both check the configured maximum message size before anything is allocated.

pub mod budget;
pub mod conn;
pub mod framed;
pub mod gather;
pub mod header;
pub mod io;
pub mod scan;
pub mod spare;

/// Default maximum size of one message (frame body or unframed message): 16 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// How messages are delimited on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// TFramedTransport: a 4-byte big-endian length before each message.
    Framed,
    /// TBufferedTransport: messages back to back with no length (thriftpy2's default).
    Buffered,
}
