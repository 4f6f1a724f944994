//! `load --idl`: load of any method of any `.thrift` file, raw or through ringsoa's
//! client (`--full-stack`). The request is encoded once from JSON arguments (dynamic
//! mode); one call made before the load learns the reply, which must be a normal
//! result, and every reply of the load is then compared byte for byte with it (so
//! the method must answer the same request the same way, as echo-like benchmark
//! methods do; through the client, the result after the message header).

use std::net::SocketAddr;
use std::path::PathBuf;

use std::time::Duration;

use bytes::Bytes;
use ringsoa::dynamic::{self, Reply};
use ringsoa::protocol::{
    BinaryReader, CompactReader, Protocol, ProtocolReader, DEFAULT_MAX_DECODED,
};
use ringsoa::transport::conn::{Expect, MessageConn, ReadTimeouts};
use ringsoa::transport::{Framing, DEFAULT_MAX_MESSAGE};

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

/// One call of a method, learnt before the load.
pub struct Exchange {
    /// The request as sent on the wire (framed if the transport is).
    pub request: Bytes,
    /// The reply message expected (without a frame header).
    pub reply: Bytes,
    /// The method's name.
    pub method: String,
    /// The arguments struct alone (after the message header), for the client.
    pub args: Bytes,
    /// The result struct alone, as every reply must end.
    pub result: Bytes,
}

/// What follows the message header of `msg`.
fn body(msg: &Bytes, protocol: Protocol) -> std::io::Result<Bytes> {
    let rest = match protocol {
        Protocol::Binary => {
            let mut r = BinaryReader::new(msg.clone());
            r.read_message_begin().map(|_| r.remaining())
        }
        Protocol::Compact => {
            let mut r = CompactReader::new(msg.clone());
            r.read_message_begin().map(|_| r.remaining())
        }
    }
    .map_err(other)?;
    Ok(msg.slice(msg.len() - rest..))
}

impl IdlCall<'_> {
    /// The request as sent, the reply expected, and their bodies for the client.
    pub async fn exchange(&self, addr: SocketAddr) -> std::io::Result<Exchange> {
        let program = ringsoa::idl::load(&[self.idl], self.include_dirs).map_err(other)?;
        let method = dynamic::method(&program, self.call).map_err(other)?;
        let json: serde_json::Value = serde_json::from_str(self.args)
            .map_err(|e| other(format!("--args is not JSON: {e}")))?;
        let msg = dynamic::encode_call(&method, &json, self.protocol, 1).map_err(other)?;
        if method.function.oneway {
            return Err(other("oneway methods have no reply to measure"));
        }
        let request = super::load::frame(self.framing, &msg);
        let reply = self.first_reply(addr, &request).await?;
        match dynamic::decode_reply(
            &method,
            reply.clone(),
            self.protocol,
            1,
            DEFAULT_MAX_DECODED,
        )
        .map_err(other)?
        {
            Reply::Success(_) => Ok(Exchange {
                args: body(&msg, self.protocol)?,
                result: body(&reply, self.protocol)?,
                method: method.function.name.clone(),
                request,
                reply,
            }),
            Reply::Declared { name, value } => Err(other(format!(
                "{} raised {name}: {value}; a benchmark needs a normal answer",
                self.call
            ))),
        }
    }

    /// Sends `request` once on a new connection and returns the reply message.
    async fn first_reply(&self, addr: SocketAddr, request: &Bytes) -> std::io::Result<Bytes> {
        let stream = super::load::connect(addr).await?;
        let mut io = MessageConn::new(stream, self.framing, self.protocol, DEFAULT_MAX_MESSAGE);
        io.out().extend_from_slice(request);
        io.flush().await.map_err(|e| e.error)?;
        let limit = Some(Duration::from_secs(5));
        let timeouts = ReadTimeouts {
            idle: limit,
            message: limit,
        };
        io.read_message(Expect::Message, timeouts)
            .await
            .map_err(|e| other(format!("the first call got no reply: {e}")))
    }
}
