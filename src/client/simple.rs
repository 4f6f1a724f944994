//! A single-connection tracked client: one call at a time over one connection,
//! reconnecting (and handshaking again) after any failure. The pooled, balanced
//! client builds on the same pieces.
//!
//! It never repeats the seed's hazards: seqids increase, every reply's seqid and
//! method name are checked, and a connection that saw a timeout, a protocol error or
//! a mismatch is discarded, never reused.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use crate::protocol::{
    ApplicationExceptionKind, BinaryCodec, BinaryWriter, Codec, CompactCodec, CompactWriter,
    Decode, Encode, MessageType, Protocol, ProtocolError, ProtocolErrorKind, ProtocolReader,
};
use crate::rpc::channel::{check_reply, write_call};
use crate::rpc::{CallContext, CallError, Channel};
use crate::tracking::{self, RequestHeader, ResponseHeader, UpgradeArgs, UpgradeReply};
use crate::transport::io::read_append;
use crate::transport::{framed, scan::Scanner, Framing, DEFAULT_MAX_MESSAGE};

/// How to reach and talk to a service.
#[derive(Debug, Clone)]
pub struct Options {
    /// The caller's app id sent in the handshake.
    pub app_id: String,
    /// Binary or compact.
    pub protocol: Protocol,
    /// Framed or buffered.
    pub framing: Framing,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Per-call timeout (write and whole reply).
    pub call_timeout: Duration,
    /// Whether to offer the tracking handshake (version 2).
    pub tracking: bool,
}

impl Options {
    /// Tracked, buffered binary (thriftpy2's defaults), 1 s connect, 5 s calls.
    pub fn new(app_id: impl Into<String>) -> Self {
        Options {
            app_id: app_id.into(),
            protocol: Protocol::Binary,
            framing: Framing::Buffered,
            connect_timeout: Duration::from_secs(1),
            call_timeout: Duration::from_secs(5),
            tracking: true,
        }
    }
}

/// An open connection and its negotiated tracking version.
struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
    /// The request being written, reused call after call.
    out: BytesMut,
    /// Finds where an unframed reply ends, reused call after call.
    scanner: Scanner,
    version: i32,
}

struct State {
    conn: Option<Conn>,
    seqid: i32,
    /// Calls made with no incoming context: their rpc ids are "1", "2", …
    root_calls: u64,
    response_meta: BTreeMap<String, String>,
}

/// A tracked client over one connection (see the module docs).
pub struct SimpleClient {
    addr: SocketAddr,
    opts: Options,
    state: RefCell<State>,
}

impl SimpleClient {
    /// A client for `addr`; it connects on the first call.
    pub fn new(addr: SocketAddr, opts: Options) -> Self {
        SimpleClient {
            addr,
            opts,
            state: RefCell::new(State {
                conn: None,
                seqid: 0,
                root_calls: 0,
                response_meta: BTreeMap::new(),
            }),
        }
    }

    /// The meta of the last reply's response header (empty without one).
    pub fn last_response_meta(&self) -> BTreeMap<String, String> {
        self.state.borrow().response_meta.clone()
    }

    /// The tracking version negotiated on the open connection (0 native), if open.
    pub fn version(&self) -> Option<i32> {
        self.state.borrow().conn.as_ref().map(|c| c.version)
    }

    async fn connect(&self) -> Result<Conn, CallError> {
        let stream =
            monoio::time::timeout(self.opts.connect_timeout, TcpStream::connect(self.addr))
                .await
                .map_err(|_| CallError::Timeout)??;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            buf: BytesMut::with_capacity(4096),
            out: BytesMut::with_capacity(256),
            scanner: Scanner::new(self.opts.protocol, DEFAULT_MAX_MESSAGE),
            version: 0,
        };
        if self.opts.tracking {
            let args = UpgradeArgs {
                app_id: Some(self.opts.app_id.clone()),
                version: Some(tracking::CURRENT_VERSION),
            };
            let reply = self
                .exchange(
                    &mut conn,
                    None,
                    tracking::HANDSHAKE_METHOD,
                    MessageType::Call,
                    0,
                    &args,
                )
                .await?;
            match self.read_body::<UpgradeReply>(reply, tracking::HANDSHAKE_METHOD, 0) {
                Ok(r) => {
                    conn.version = r
                        .version
                        .map_or(1, |v| v.clamp(1, tracking::CURRENT_VERSION))
                }
                Err(CallError::Application(e))
                    if e.kind == ApplicationExceptionKind::UnknownMethod =>
                {
                    conn.version = 0
                }
                Err(e) => return Err(e),
            }
        }
        Ok(conn)
    }

    /// Writes one request and reads one whole reply (for CALLs), both framed as
    /// configured; returns the reply's bytes.
    async fn exchange<A: Encode>(
        &self,
        conn: &mut Conn,
        header: Option<&RequestHeader>,
        method: &str,
        kind: MessageType,
        seqid: i32,
        args: &A,
    ) -> Result<Bytes, CallError> {
        let mut out = std::mem::take(&mut conn.out);
        out.clear();
        if self.opts.framing == Framing::Framed {
            out.put_u32(0);
        }
        match self.opts.protocol {
            Protocol::Binary => write_call(
                &mut BinaryWriter::new(&mut out),
                header,
                method,
                kind,
                seqid,
                args,
            ),
            Protocol::Compact => write_call(
                &mut CompactWriter::new(&mut out),
                header,
                method,
                kind,
                seqid,
                args,
            ),
        }
        if self.opts.framing == Framing::Framed {
            let len = (out.len() - framed::HEADER_LEN) as u32;
            out[..framed::HEADER_LEN].copy_from_slice(&len.to_be_bytes());
        }
        let (res, out) = conn.stream.write_all(out).await;
        conn.out = out;
        res?;
        if kind == MessageType::Oneway {
            return Ok(Bytes::new());
        }
        let response_header = conn.version >= 2;
        let scanner = &mut conn.scanner;
        loop {
            let found = match self.opts.framing {
                Framing::Framed => framed::frame_len(&conn.buf, DEFAULT_MAX_MESSAGE)?
                    .filter(|n| conn.buf.len() >= framed::HEADER_LEN + n)
                    .map(|n| {
                        let mut f = conn.buf.split_to(framed::HEADER_LEN + n);
                        bytes::Buf::advance(&mut f, framed::HEADER_LEN);
                        f.freeze()
                    }),
                Framing::Buffered => {
                    if !scanner.in_progress() && !conn.buf.is_empty() {
                        if response_header && !tracking::starts_with_message(conn.buf[0]) {
                            scanner.expect_struct_then_message();
                        } else {
                            scanner.expect_message();
                        }
                    }
                    match conn.buf.is_empty() {
                        true => None,
                        false => scanner
                            .feed(&conn.buf)?
                            .map(|n| conn.buf.split_to(n).freeze()),
                    }
                }
            };
            if let Some(reply) = found {
                return Ok(reply);
            }
            let buf = std::mem::take(&mut conn.buf);
            let (res, buf) = read_append(&mut conn.stream, buf, 4096).await;
            conn.buf = buf;
            if res? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                )
                .into());
            }
        }
    }

    /// Removes the version-2 response header from a reply (recording its meta), if
    /// the reply has one: thriftpy2 servers omit it before EXCEPTION replies.
    fn strip_header(&self, reply: Bytes, headers: bool) -> Result<Bytes, CallError> {
        if !headers
            || reply
                .first()
                .is_some_and(|b| tracking::starts_with_message(*b))
        {
            return Ok(reply);
        }
        fn header<C: Codec>(reply: &Bytes) -> Result<(ResponseHeader, usize), CallError> {
            let mut r = C::reader(reply.clone());
            let h = ResponseHeader::decode(&mut r)?;
            Ok((h, reply.len() - r.remaining()))
        }
        let (h, used) = match self.opts.protocol {
            Protocol::Binary => header::<BinaryCodec>(&reply)?,
            Protocol::Compact => header::<CompactCodec>(&reply)?,
        };
        self.state.borrow_mut().response_meta = h.meta.unwrap_or_default();
        Ok(reply.slice(used..))
    }

    /// Decodes a message: its header (checked against the call), then the body `T`.
    fn read_body<T: Decode>(&self, msg: Bytes, method: &str, seqid: i32) -> Result<T, CallError> {
        fn read<C: Codec, T: Decode>(msg: Bytes, method: &str, seqid: i32) -> Result<T, CallError> {
            let mut r = C::reader(msg);
            check_reply(&mut r, method, seqid)?;
            Ok(T::decode(&mut r)?)
        }
        match self.opts.protocol {
            Protocol::Binary => read::<BinaryCodec, T>(msg, method, seqid),
            Protocol::Compact => read::<CompactCodec, T>(msg, method, seqid),
        }
    }

    /// Makes a call whose arguments and result the caller encodes and decodes itself
    /// (dynamic mode): returns the reply from its message header on, the response
    /// header removed, with the call's seqid; `None` for oneway calls. The reply's
    /// name, seqid and type have been checked (an EXCEPTION reply is returned as
    /// [`CallError::Application`]).
    pub async fn call_raw<A: Encode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &str,
        oneway: bool,
        args: &A,
    ) -> Result<Option<(Bytes, i32)>, CallError> {
        let kind = if oneway {
            MessageType::Oneway
        } else {
            MessageType::Call
        };
        let (conn, seqid) = {
            let mut st = self.state.try_borrow_mut().map_err(|_| busy())?;
            st.seqid = st.seqid.wrapping_add(1).max(1);
            (st.conn.take(), st.seqid)
        };
        let mut conn = match conn {
            Some(c) => c,
            None => self.connect().await?,
        };
        let header = (conn.version >= 1).then(|| self.header_for(cx));
        let call = self.exchange(&mut conn, header.as_ref(), method, kind, seqid, args);
        let reply = monoio::time::timeout(self.opts.call_timeout, call)
            .await
            .map_err(|_| CallError::Timeout)??;
        if oneway {
            self.state.borrow_mut().conn = Some(conn);
            return Ok(None);
        }
        // Only a connection whose reply matched its call goes back.
        let msg = self
            .strip_header(reply, conn.version >= 2)
            .and_then(|m| self.read_body::<Skip>(m.clone(), method, seqid).map(|_| m));
        if matches!(msg, Ok(_) | Err(CallError::Application(_))) {
            self.state.borrow_mut().conn = Some(conn);
        }
        msg.map(|m| Some((m, seqid)))
    }

    fn header_for(&self, cx: Option<&mut CallContext>) -> RequestHeader {
        match cx {
            Some(cx) if !cx.request_id.is_empty() || !cx.seq.is_empty() => RequestHeader {
                seq: Some(cx.next_child_seq()),
                request_id: Some(cx.request_id.clone()),
                meta: Some(cx.meta.clone()),
            },
            // A top-level call: a new request id and the next root rpc id, with the
            // meta of the context if one was given.
            other => {
                let mut st = self.state.borrow_mut();
                st.root_calls += 1;
                RequestHeader {
                    request_id: Some(uuid::Uuid::new_v4().to_string()),
                    seq: Some(st.root_calls.to_string()),
                    meta: Some(other.map(|cx| cx.meta.clone()).unwrap_or_default()),
                }
            }
        }
    }
}

fn busy() -> CallError {
    CallError::Protocol(ProtocolError::new(
        ProtocolErrorKind::Unknown,
        "SimpleClient carries one call at a time",
    ))
}

impl Channel for SimpleClient {
    async fn call<A: Encode, T: Decode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<T, CallError> {
        let (msg, seqid) = self
            .call_raw(cx, method, false, args)
            .await?
            .ok_or_else(|| ProtocolError::new(ProtocolErrorKind::Unknown, "no reply"))?;
        self.read_body(msg, method, seqid)
    }

    async fn oneway<A: Encode>(
        &self,
        cx: Option<&mut CallContext>,
        method: &'static str,
        args: &A,
    ) -> Result<(), CallError> {
        self.call_raw(cx, method, true, args).await.map(|_| ())
    }
}

/// Decodes nothing: used to check a reply's message header alone.
struct Skip;

impl Decode for Skip {
    fn decode<R: ProtocolReader>(_: &mut R) -> Result<Self, ProtocolError> {
        Ok(Skip)
    }
}
