//! Why a connection ended.

use crate::protocol::ProtocolError;
use crate::transport::conn::ReadError;

/// Why a connection ended (for the log).
#[derive(Debug)]
pub enum End {
    /// The peer closed, or the server closed after a reply while draining.
    Closed,
    /// No request within the idle timeout (or the drain's grace).
    Idle,
    /// A request did not arrive completely within the read timeout.
    Slow,
    /// The peer took none of its replies within the write timeout.
    Stalled,
    /// Closed to make room for a new connection.
    Evicted,
    /// Bytes that are not a request this server can read.
    Bad(String),
    /// A socket error.
    Io(std::io::Error),
}

impl From<ReadError> for End {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Closed => End::Closed,
            ReadError::Idle => End::Idle,
            ReadError::Slow => End::Slow,
            ReadError::Truncated => End::Bad("the peer closed inside a request".into()),
            ReadError::Bad(e) => e.into(),
            ReadError::Io(e) => End::Io(e),
        }
    }
}

impl From<ProtocolError> for End {
    fn from(e: ProtocolError) -> Self {
        End::Bad(e.message.into_owned())
    }
}
