//! `load --idl`: raw load of any method of any `.thrift` file. The request is
//! encoded once from JSON arguments (dynamic mode); one call made before the load
//! learns the reply, which must be a normal result, and every reply of the load is
//! then compared byte for byte with it (so the method must answer the same request
//! the same way, as echo-like benchmark methods do).

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::{BufMut, Bytes, BytesMut};
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use ringsoa::dynamic::{self, Reply};
use ringsoa::protocol::Protocol;
use ringsoa::transport::io::read_append;
use ringsoa::transport::{framed, scan::Scanner, Framing, DEFAULT_MAX_MESSAGE};

/// What to call.
pub struct IdlCall<'a> {
    pub idl: &'a PathBuf,
    pub include_dirs: &'a [PathBuf],
    /// `Service.method`.
    pub call: &'a str,
    /// The arguments as a JSON object keyed by argument name.
    pub args: &'a str,
    pub protocol: Protocol,
    pub framing: Framing,
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl IdlCall<'_> {
    /// The request as sent and the reply expected, both as on the wire.
    pub async fn exchange(&self, addr: SocketAddr) -> std::io::Result<(Bytes, Bytes)> {
        let program = ringsoa::idl::load(&[self.idl], self.include_dirs).map_err(other)?;
        let method = dynamic::method(&program, self.call).map_err(other)?;
        let json: serde_json::Value = serde_json::from_str(self.args)
            .map_err(|e| other(format!("--args is not JSON: {e}")))?;
        let msg = dynamic::encode_call(&method, &json, self.protocol, 1).map_err(other)?;
        if method.function.oneway {
            return Err(other("oneway methods have no reply to measure"));
        }
        let mut request = BytesMut::new();
        if self.framing == Framing::Framed {
            request.put_u32(msg.len() as u32);
        }
        request.extend_from_slice(&msg);
        let request = request.freeze();
        let wire = self.first_reply(addr, &request).await?;
        let msg = match self.framing {
            Framing::Framed => wire.slice(framed::HEADER_LEN..),
            Framing::Buffered => wire.clone(),
        };
        match dynamic::decode_reply(&method, msg, self.protocol, 1).map_err(other)? {
            Reply::Success(_) => Ok((request, wire)),
            Reply::Declared { name, value } => Err(other(format!(
                "{} raised {name}: {value}; a benchmark needs a normal answer",
                self.call
            ))),
        }
    }

    /// Sends `request` once on a new connection and returns the whole reply.
    async fn first_reply(&self, addr: SocketAddr, request: &Bytes) -> std::io::Result<Bytes> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (res, _) = stream.write_all(request.clone()).await;
        res?;
        let mut scanner = Scanner::new(self.protocol, DEFAULT_MAX_MESSAGE);
        scanner.expect_message();
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            let whole = match self.framing {
                Framing::Framed => framed::frame_len(&buf, DEFAULT_MAX_MESSAGE)
                    .map_err(other)?
                    .map(|n| framed::HEADER_LEN + n)
                    .filter(|&n| buf.len() >= n),
                Framing::Buffered if buf.is_empty() => None,
                Framing::Buffered => scanner.feed(&buf).map_err(other)?,
            };
            if let Some(n) = whole {
                return Ok(buf.split_to(n).freeze());
            }
            let (res, b) = read_append(&mut stream, buf, 4096).await;
            buf = b;
            if res? == 0 {
                return Err(other("the server closed the connection without a reply"));
            }
        }
    }
}
