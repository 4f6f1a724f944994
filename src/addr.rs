//! Socket addresses as people write them on command lines and in config.

use std::net::{SocketAddr, ToSocketAddrs};

/// `HOST:PORT`, the host an IP address or a name (resolved now; the first address
/// wins, so `localhost:9090` is whichever the resolver lists first).
pub fn resolve(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("{s:?} is not HOST:PORT with a host that resolves ({e})"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// The error of a failed bind of `addr`, naming the address: "cannot listen on
/// ADDR: why", of the same kind.
pub(crate) fn cannot_listen(addr: SocketAddr, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
}
