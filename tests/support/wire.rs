//! Talking to a server over a blocking socket in tests: one buffered strict binary
//! call (native, or tracked after the handshake), one whole reply.

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use ringsoa::protocol::{BinaryWriter, Encode, MessageType, Protocol, ProtocolWriter};
use ringsoa::tracking::RequestHeader;
use ringsoa::transport::scan::Scanner;

/// Sends a CALL of `name` with `args` and returns the reply's bytes.
pub fn call_raw(
    s: &mut TcpStream,
    name: &str,
    seqid: i32,
    args: &impl Encode,
) -> std::io::Result<Bytes> {
    call(s, None::<&RequestHeader>, name, seqid, args)
}

/// [`call_raw`] on a tracked connection (after the handshake): `header` first.
pub fn call_tracked(
    s: &mut TcpStream,
    header: &RequestHeader,
    name: &str,
    seqid: i32,
    args: &impl Encode,
) -> std::io::Result<Bytes> {
    call(s, Some(header), name, seqid, args)
}

fn call(
    s: &mut TcpStream,
    header: Option<&impl Encode>,
    name: &str,
    seqid: i32,
    args: &impl Encode,
) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::new();
    let mut w = BinaryWriter::new(&mut buf);
    if let Some(h) = header {
        h.encode(&mut w);
    }
    w.write_message_begin(name, MessageType::Call, seqid);
    args.encode(&mut w);
    s.write_all(&buf)?;
    read_reply(s)
}

/// Reads one whole buffered binary reply (retrying interrupted reads).
pub fn read_reply(s: &mut TcpStream) -> std::io::Result<Bytes> {
    let mut scanner = Scanner::new(Protocol::Binary, 64 << 20);
    scanner.expect_message();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(n) = scanner.feed(&got).map_err(std::io::Error::other)? {
            return Ok(Bytes::from(got[..n].to_vec()));
        }
        let n = match s.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r?,
        };
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the server closed `s`: an end of stream or a reset. A read that times
/// out (the socket's read timeout) is not one.
pub fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}
