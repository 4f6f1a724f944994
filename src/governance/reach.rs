//! The probe's TCP connection to a ZooKeeper host (plain or before TLS), and why
//! none could be made, said as a cause: what zookeeper-client reports only as
//! "no available hosts".

use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why no connection to a host could be made.
pub(crate) enum NoConnection {
    /// Closed as it was made: a server that closes new connections at once.
    Closed,
    /// Said as a cause: the name does not resolve, nothing listens, no answer.
    Unreached(String),
}

/// A connection to `host`:`port` within `timeout`.
pub(crate) fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, NoConnection> {
    use NoConnection::Unreached;
    let addr = match (host, port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        Ok(None) => return Err(Unreached(format!("{host} does not resolve (no address)"))),
        Err(e) => return Err(Unreached(format!("{host} does not resolve ({e})"))),
    };
    TcpStream::connect_timeout(&addr, timeout).map_err(|e| match e.kind() {
        _ if closed(&e) => NoConnection::Closed,
        ErrorKind::ConnectionRefused => Unreached(format!(
            "{host}:{port} refuses connections (nothing listens there)"
        )),
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Unreached(format!(
            "{host}:{port} does not answer a connect within {timeout:?}"
        )),
        _ => Unreached(format!("{host}:{port}: {e}")),
    })
}

/// Whether `e` says the other end closed the connection (over TLS, a close
/// without TLS's own closing message is an unexpected end of file).
pub(crate) fn closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
    )
}
