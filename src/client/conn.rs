//! One client connection: connect and handshake, then calls one at a time — write the
//! request, read the whole reply, check it against the call.
//!
//! A connection is only ever reused after a reply that matched its call (a result, a
//! declared exception or an ordinary application exception). Anything else — a
//! timeout, a cancelled call, a protocol error, a reply for another seqid or method —
//! leaves bytes of unknown state on the wire, so the caller drops the connection.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::protocol::with_codec;
use crate::protocol::{
    ApplicationExceptionKind, Codec, Decode, Encode, MessageType, Protocol, ProtocolReader,
    ProtocolWriter,
};
use crate::rpc::channel::{check_reply, write_call};
use crate::rpc::CallError;
use crate::server::SHUTTING_DOWN;
use crate::tracking::{self, RequestHeader, ResponseHeader, UpgradeArgs, UpgradeReply};
use crate::transport::io::read_append;
use crate::transport::{framed, scan::Scanner, Framing, DEFAULT_MAX_MESSAGE};

/// How to reach and talk to a service's nodes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The caller's app id sent in the handshake.
    pub app_id: String,
    /// Binary or compact.
    pub protocol: Protocol,
    /// Framed or buffered.
    pub framing: Framing,
    /// Connect timeout (the handshake included).
    pub connect_timeout: Duration,
    /// Per-call timeout: from the first attempt to the last reply byte, retries and
    /// waiting for a slot included; a caller's earlier deadline wins.
    pub call_timeout: Duration,
    /// Whether to offer the tracking handshake (version 2).
    pub tracking: bool,
    /// Whether tracked calls carry the remaining time budget in meta
    /// ([`crate::rpc::context::TIMEOUT_META`]).
    pub send_deadline: bool,
}

impl Options {
    /// Tracked, buffered binary (thriftpy2's defaults), 1 s connect, 5 s calls.
    pub fn new(app_id: impl Into<String>) -> Self {
        Options {
            app_id: app_id.into(),
            ..Options::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            app_id: String::new(),
            protocol: Protocol::Binary,
            framing: Framing::Buffered,
            connect_timeout: Duration::from_secs(1),
            call_timeout: Duration::from_secs(5),
            tracking: true,
            send_deadline: true,
        }
    }
}

/// Read-buffer growth step.
const READ_CHUNK: usize = 4096;

/// An open connection, its negotiated tracking version and its pool bookkeeping.
pub(crate) struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet consumed (empty between calls on a healthy connection).
    buf: BytesMut,
    /// The request being written, reused call after call.
    out: BytesMut,
    /// Finds where an unframed reply ends, reused call after call.
    scanner: Scanner,
    /// Tracking version: 0 native, 1 or 2.
    pub version: i32,
    /// The last seqid sent; seqids increase per connection.
    seqid: i32,
    /// When the connection was opened.
    pub opened: Instant,
    /// When it last finished a call (or was opened).
    pub last_used: Instant,
    /// Calls made on it, the handshake and pings excluded.
    pub uses: u64,
    /// The pool generation it belongs to.
    pub generation: u64,
}

/// A reply that matched its call: the message from its header on (the response
/// header removed), and that header's meta.
pub(crate) struct Reply {
    pub msg: Bytes,
    pub seqid: i32,
    pub meta: Option<BTreeMap<String, String>>,
}

impl Conn {
    /// Connects (within the connect timeout) and runs the tracking handshake when
    /// enabled: version 2 offered, native on `UNKNOWN_METHOD`. Every failure here is
    /// a [`CallError::Connect`]: no request has been sent.
    pub async fn open(
        addr: SocketAddr,
        opts: &Options,
        generation: u64,
    ) -> Result<Conn, CallError> {
        let connect_err = |source| CallError::Connect { addr, source };
        let stream = monoio::time::timeout(opts.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                connect_err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {:?}", opts.connect_timeout),
                ))
            })?
            .map_err(connect_err)?;
        stream.set_nodelay(true).map_err(connect_err)?;
        let now = Instant::now();
        let mut conn = Conn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            out: BytesMut::with_capacity(256),
            scanner: Scanner::new(opts.protocol, DEFAULT_MAX_MESSAGE),
            version: 0,
            seqid: 0,
            opened: now,
            last_used: now,
            uses: 0,
            generation,
        };
        if opts.tracking {
            let args = UpgradeArgs {
                app_id: Some(opts.app_id.clone()),
                version: Some(tracking::CURRENT_VERSION),
            };
            let handshake = conn.handshake(opts, &args);
            let outcome = monoio::time::timeout(opts.connect_timeout, handshake)
                .await
                .unwrap_or(Err(CallError::Timeout));
            conn.version = match outcome {
                Ok(v) => v,
                Err(e) => {
                    let why = std::io::Error::other(format!("tracking handshake failed: {e}"));
                    return Err(connect_err(why));
                }
            };
        }
        Ok(conn)
    }

    async fn handshake(&mut self, opts: &Options, args: &UpgradeArgs) -> Result<i32, CallError> {
        let sent = Cell::new(false);
        let method = tracking::HANDSHAKE_METHOD;
        let reply = match self.call(opts, None, method, false, args, &sent).await {
            Ok(Some(reply)) => reply,
            Ok(None) => unreachable!("the handshake is a CALL"),
            // A server without the tracking extension: speak native Thrift.
            Err(CallError::Application(e)) if e.kind == ApplicationExceptionKind::UnknownMethod => {
                return Ok(0)
            }
            Err(e) => return Err(e),
        };
        let r = read_body::<UpgradeReply>(opts.protocol, reply.msg)?;
        Ok(r.version
            .map_or(1, |v| v.clamp(1, tracking::CURRENT_VERSION)))
    }

    /// Makes one call: writes the request (the tracking `header` first when the
    /// connection is tracked) and, unless `oneway`, reads and checks the whole reply.
    /// `sent` becomes true once any byte of the request may have left: after that a
    /// failure cannot tell whether the server executed the call.
    pub async fn call<A: Encode>(
        &mut self,
        opts: &Options,
        header: Option<&RequestHeader>,
        method: &str,
        oneway: bool,
        args: &A,
        sent: &Cell<bool>,
    ) -> Result<Option<Reply>, CallError> {
        let kind = if oneway {
            MessageType::Oneway
        } else {
            MessageType::Call
        };
        self.seqid = self.seqid.wrapping_add(1).max(1);
        let seqid = self.seqid;
        let header = header.filter(|_| self.version >= 1);
        self.encode(opts, header, method, kind, seqid, args);
        self.write(sent).await?;
        if oneway {
            return Ok(None);
        }
        let msg = self.read_reply(opts.framing).await?;
        let (msg, meta) = strip_header(opts.protocol, msg, self.version >= 2)?;
        check(opts.protocol, msg.clone(), method, seqid)?;
        Ok(Some(Reply { msg, seqid, meta }))
    }

    fn encode<A: Encode>(
        &mut self,
        opts: &Options,
        header: Option<&RequestHeader>,
        method: &str,
        kind: MessageType,
        seqid: i32,
        args: &A,
    ) {
        let out = &mut self.out;
        out.clear();
        if opts.framing == Framing::Framed {
            out.put_u32(0);
        }
        with_codec!(opts.protocol, C => {
            write_call(&mut C::writer(out), header, method, kind, seqid, args)
        });
        if opts.framing == Framing::Framed {
            let len = (out.len() - framed::HEADER_LEN) as u32;
            out[..framed::HEADER_LEN].copy_from_slice(&len.to_be_bytes());
        }
    }

    /// Writes the encoded request. A first write that fails sent nothing (the
    /// connection was dead); only then does `sent` stay false.
    async fn write(&mut self, sent: &Cell<bool>) -> Result<(), CallError> {
        let out = std::mem::take(&mut self.out);
        let (res, mut out) = self.stream.write(out).await;
        let n = res?;
        sent.set(true);
        if n < out.len() {
            let rest = out.split_off(n);
            let (res, rest) = self.stream.write_all(rest).await;
            out.unsplit(rest);
            res?;
        }
        self.out = out;
        Ok(())
    }

    /// Reads until one whole reply (with its response header, if any) is buffered.
    async fn read_reply(&mut self, framing: Framing) -> Result<Bytes, CallError> {
        let response_header = self.version >= 2;
        loop {
            let found = match framing {
                Framing::Framed => framed::frame_len(&self.buf, DEFAULT_MAX_MESSAGE)?
                    .filter(|n| self.buf.len() >= framed::HEADER_LEN + n)
                    .map(|n| {
                        let mut f = self.buf.split_to(framed::HEADER_LEN + n);
                        bytes::Buf::advance(&mut f, framed::HEADER_LEN);
                        f.freeze()
                    }),
                Framing::Buffered if self.buf.is_empty() => None,
                Framing::Buffered => {
                    if !self.scanner.in_progress() {
                        // thriftpy2 servers omit the response header before an
                        // EXCEPTION reply: a message header can start a reply too.
                        if response_header && !tracking::starts_with_message(self.buf[0]) {
                            self.scanner.expect_struct_then_message();
                        } else {
                            self.scanner.expect_message();
                        }
                    }
                    self.scanner
                        .feed(&self.buf)?
                        .map(|n| self.buf.split_to(n).freeze())
                }
            };
            if let Some(reply) = found {
                return Ok(reply);
            }
            let buf = std::mem::take(&mut self.buf);
            let (res, buf) = read_append(&mut self.stream, buf, READ_CHUNK).await;
            self.buf = buf;
            if res? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "server closed the connection before replying",
                )
                .into());
            }
        }
    }

    /// Whether the connection is still usable, asked of the kernel without a round
    /// trip: a non-blocking peek finds the peer's FIN or RST, or stray bytes that no
    /// call asked for (either way the connection must go).
    pub fn is_alive(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut byte = 0u8;
        // SAFETY: a one-byte peek into a local buffer on a socket this value owns.
        let n = unsafe {
            libc::recv(
                self.stream.as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n < 0 && {
            let e = std::io::Error::last_os_error().raw_os_error();
            e == Some(libc::EAGAIN) || e == Some(libc::EWOULDBLOCK) || e == Some(libc::EINTR)
        }
    }

    /// How long since the connection last finished a call.
    pub fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_used)
    }
}

/// Removes the version-2 response header from a reply, returning its meta, if the
/// reply has one: thriftpy2 servers omit it before EXCEPTION replies.
fn strip_header(
    protocol: Protocol,
    reply: Bytes,
    headers: bool,
) -> Result<(Bytes, Option<BTreeMap<String, String>>), CallError> {
    if !headers
        || reply
            .first()
            .is_some_and(|b| tracking::starts_with_message(*b))
    {
        return Ok((reply, None));
    }
    let (h, used) = with_codec!(protocol, C => {
        let mut r = C::reader(reply.clone());
        (ResponseHeader::decode(&mut r)?, reply.len() - r.remaining())
    });
    Ok((reply.slice(used..), h.meta))
}

/// Checks a reply's message header against the call; an EXCEPTION reply becomes its
/// application exception, or [`CallError::ShuttingDown`] for a draining ringsoa server.
fn check(protocol: Protocol, msg: Bytes, method: &str, seqid: i32) -> Result<(), CallError> {
    match with_codec!(protocol, C => check_reply(&mut C::reader(msg), method, seqid)) {
        Err(CallError::Application(e))
            if e.kind == ApplicationExceptionKind::InternalError
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with(SHUTTING_DOWN)) =>
        {
            Err(CallError::ShuttingDown)
        }
        other => other,
    }
}

/// Decodes the body `T` of a reply that [`Conn::call`] has already checked: its
/// message header is skipped, not checked again.
pub(crate) fn read_body<T: Decode>(protocol: Protocol, msg: Bytes) -> Result<T, CallError> {
    with_codec!(protocol, C => {
        let mut r = C::reader(msg);
        r.read_message_begin()?;
        Ok(T::decode(&mut r)?)
    })
}

/// The arguments of a health-check ping: an empty struct. Any reply that matches
/// the call — a result or an application exception such as `UNKNOWN_METHOD` — proves
/// the server and the connection work, so the service need not have a `ping`.
pub(crate) struct NoArgs;

impl Encode for NoArgs {
    fn encode<W: ProtocolWriter>(&self, w: &mut W) {
        let mark = w.write_struct_begin();
        w.write_struct_end(mark);
    }
}
