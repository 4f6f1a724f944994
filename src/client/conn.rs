//! One client connection: connect and handshake, then calls one at a time — write the
//! request, read the whole reply, check it against the call.
//!
//! A connection is only ever reused after a reply that matched its call (a result, a
//! declared exception or an ordinary application exception). Anything else — a
//! timeout, a cancelled call, a protocol error, a reply for another seqid or method —
//! leaves bytes of unknown state on the wire, so the caller drops the connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use monoio::net::TcpStream;

use super::envelope;
use crate::deadline::Deadline;
use crate::protocol::with_codec;
use crate::protocol::{
    ApplicationExceptionKind, Codec, Decode, DecodeBudget, Encode, MessageType, Protocol,
    ProtocolError, ProtocolErrorKind, ProtocolReader, ProtocolWriter, DEFAULT_MAX_DECODED,
};
use crate::rpc::channel::check_reply;
use crate::rpc::refusal::is_shutting_down;
use crate::rpc::CallError;
use crate::tracking::{self, OutgoingHeader, ResponseMeta, UpgradeReply, DRAINING_META};
use crate::transport::conn::{Expect, MessageConn, ReadError, ReadTimeouts};
use crate::transport::header::{self, HeaderKind};
use crate::transport::spare::SpareBuffers;
use crate::transport::{Framing, DEFAULT_MAX_MESSAGE};

/// How to reach and talk to a service's nodes.
#[derive(Debug, Clone)]
pub struct ConnOptions {
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
    /// The service name put before every method name (`Service:method`), for a server
    /// that hosts several services on one port as Apache's `TMultiplexedProcessor`
    /// does (ringsoa's [`crate::rpc::Multiplexed`] too). `None`: plain names.
    pub multiplex: Option<String>,
    /// Sends every call in a header transport: TTHeader as Volo and Kitex clients
    /// do, or THeader as fbthrift's and Apache's. Connections are then framed and
    /// not tracked; the header carries the app id, the method, the remaining time
    /// and the context's meta, and the reply header's string pairs come back as
    /// reply meta.
    pub header: Option<HeaderKind>,
    /// With a header transport, puts each header frame inside a frame of its own, as
    /// Apache's `THeaderProtocol` over `TFramedTransport` sends it (a server set up
    /// that way reads nothing else; ringsoa's server and fbthrift's read either).
    pub header_in_frame: bool,
    /// With THeader, compresses every request with its zlib transform (fbthrift's
    /// and Apache's servers inflate it; ringsoa's server answers compressed too). A
    /// compressed reply is inflated whatever this says.
    pub header_zlib: bool,
    /// With THeader, pairs sent once per connection, in its first request, as
    /// persistent (PKEYVALUE) pairs, as fbthrift's `setPersistentHeader` does: a
    /// server that keeps them (fbthrift's, ringsoa's) counts them for that call and
    /// every later one on the connection. Servers that do not (Apache's) ignore them.
    pub header_persistent: Vec<(String, String)>,
    /// The largest reply read, in bytes (16 MiB, the server's default too); a larger
    /// one fails its call and closes its connection.
    pub max_message: usize,
    /// The most memory a reply's decoded containers may take beyond its bytes (64
    /// MiB, the server's default per request too): an empty struct is one byte on
    /// the wire and tens in memory. A reply over it fails its call with a protocol
    /// error; the connection goes on.
    pub max_decoded: usize,
}

impl ConnOptions {
    /// Tracked, buffered binary (thriftpy2's defaults), 1 s connect, 5 s calls.
    pub fn new(app_id: impl Into<String>) -> Self {
        ConnOptions {
            app_id: app_id.into(),
            ..ConnOptions::default()
        }
    }
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            app_id: String::new(),
            protocol: Protocol::Binary,
            framing: Framing::Buffered,
            connect_timeout: Duration::from_secs(1),
            call_timeout: Duration::from_secs(5),
            tracking: true,
            send_deadline: true,
            multiplex: None,
            header: None,
            header_in_frame: false,
            header_zlib: false,
            header_persistent: Vec::new(),
            max_message: DEFAULT_MAX_MESSAGE,
            max_decoded: DEFAULT_MAX_DECODED,
        }
    }
}

/// An open connection, its negotiated tracking version and its pool bookkeeping.
pub(crate) struct Conn {
    io: MessageConn,
    protocol: Protocol,
    /// The header transport of every call, with the app id it names.
    header: Option<(HeaderKind, std::rc::Rc<str>)>,
    /// Each header frame inside a frame of its own (never without a header).
    header_in_frame: bool,
    /// Every THeader request compressed with zlib (never without THeader).
    header_zlib: bool,
    /// THeader persistent pairs not sent yet: taken by the first request.
    persistent: Vec<(String, String)>,
    /// Tracking version: 0 native, 1 or 2.
    pub version: i32,
    /// The last seqid sent: the handshake 0, calls from 1 up (after `i32::MAX`, 1).
    seqid: i32,
    /// When the connection was opened.
    pub opened: Instant,
    /// When it last finished a call (or was opened).
    pub last_used: Instant,
    /// Calls made on it, the handshake and pings excluded.
    pub uses: u64,
    /// The pool generation it belongs to.
    pub generation: u64,
    /// The calls' deadline timer, reused by every call on the connection; `None`
    /// until the first call, or after one that was dropped midway.
    timer: Option<Deadline>,
}

/// A reply that matched its call: the message from its header on (the response
/// header removed), where its body starts, its seqid, the response header's meta
/// (when the call kept it), and whether the server closes the connection after it.
pub(crate) struct Reply {
    pub msg: Bytes,
    pub body: usize,
    pub seqid: i32,
    pub meta: Option<BTreeMap<String, String>>,
    pub draining: bool,
}

/// A call that failed on a connection, and whether its request may have left: after
/// that a failure cannot tell whether the server executed the call.
#[derive(Debug)]
pub(crate) struct Failed {
    pub error: CallError,
    pub sent: bool,
}

impl Failed {
    fn sent(error: impl Into<CallError>) -> Self {
        Failed {
            error: error.into(),
            sent: true,
        }
    }
}

impl Conn {
    /// Connects (within the connect timeout) and runs the tracking handshake when
    /// enabled: version 2 offered, native on `UNKNOWN_METHOD`. Every failure here is
    /// a [`CallError::Connect`]: no request has been sent.
    pub async fn open(
        addr: SocketAddr,
        opts: &ConnOptions,
        generation: u64,
        spares: &Rc<SpareBuffers>,
    ) -> Result<Box<Conn>, CallError> {
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
        let framing = match opts.header {
            Some(_) => Framing::Framed,
            None => opts.framing,
        };
        let mut io = MessageConn::new(stream, framing, opts.protocol, opts.max_message);
        io.set_spares(spares.clone());
        // Boxed from the start: pools and leases move the pointer, not the connection.
        let mut conn = Box::new(Conn {
            io,
            protocol: opts.protocol,
            header: opts.header.map(|k| (k, opts.app_id.as_str().into())),
            header_in_frame: opts.header_in_frame && opts.header.is_some(),
            header_zlib: opts.header_zlib && opts.header == Some(HeaderKind::THeader),
            persistent: match opts.header {
                Some(HeaderKind::THeader) => opts.header_persistent.clone(),
                _ => Vec::new(),
            },
            version: 0,
            seqid: 0,
            opened: now,
            last_used: now,
            uses: 0,
            generation,
            timer: None,
        });
        if opts.tracking && opts.header.is_none() {
            let handshake = conn.handshake(&opts.app_id);
            let outcome = monoio::time::timeout(opts.connect_timeout, handshake)
                .await
                .unwrap_or(Err(CallError::Timeout));
            conn.version = match outcome {
                Ok(v) => v,
                Err(e) => {
                    // The kind is kept, so that a caller can tell a server that
                    // closed the connection from one that answered wrong.
                    let kind = match &e {
                        CallError::Transport(io) => io.kind(),
                        CallError::Timeout => std::io::ErrorKind::TimedOut,
                        _ => std::io::ErrorKind::Other,
                    };
                    let why = std::io::Error::new(kind, format!("tracking handshake failed: {e}"));
                    return Err(connect_err(why));
                }
            };
        }
        Ok(conn)
    }

    async fn handshake(&mut self, app_id: &str) -> Result<i32, CallError> {
        let args = tracking::client::upgrade_args(app_id);
        // Seqid 0, as thriftpy2's tracked client sends it; the calls count from 1.
        self.seqid = -1;
        let call = Call {
            method: tracking::HANDSHAKE_METHOD,
            oneway: false,
            header: &OutgoingHeader::default(),
            keep_meta: false,
        };
        let reply = match self.call(&call, &args).await {
            Ok(Some(reply)) => reply,
            Ok(None) => unreachable!("the handshake is a CALL"),
            // A server without the tracking extension: speak native Thrift.
            Err(Failed {
                error: CallError::Application(e),
                ..
            }) if e.kind == ApplicationExceptionKind::UnknownMethod => return Ok(0),
            Err(f) => return Err(f.error),
        };
        // No containers: any budget does.
        let r = read_body::<UpgradeReply>(self.protocol, DEFAULT_MAX_DECODED, reply)?;
        Ok(tracking::client::accepted_version(&r))
    }

    /// [`Conn::call`] that fails with [`CallError::Timeout`] at `deadline`, on the
    /// connection's one [`Deadline`]. (The timer left behind fires once, a call
    /// timeout after the last call, and wakes no task: the call let go of its waker.)
    pub async fn call_until<A: Encode>(
        &mut self,
        call: &Call<'_>,
        args: &A,
        deadline: Instant,
    ) -> Result<Option<Reply>, Failed> {
        let mut timer = self.timer.take();
        let result = {
            // Pinned where it is made: passed by value, the call's future was
            // copied into the race and again where the race pins it.
            let call = std::pin::pin!(self.call(call, args));
            Deadline::run(&mut timer, deadline, call).await
        };
        self.timer = timer;
        result.unwrap_or(Err(Failed::sent(CallError::Timeout)))
    }

    /// Makes one call: writes the request (the tracking header first when the
    /// connection is tracked) and, unless oneway, reads and checks the whole reply.
    pub async fn call<A: Encode>(
        &mut self,
        call: &Call<'_>,
        args: &A,
    ) -> Result<Option<Reply>, Failed> {
        with_codec!(self.protocol, C => self.call_with::<C, A>(call, args).await)
    }

    async fn call_with<C: Codec, A: Encode>(
        &mut self,
        call: &Call<'_>,
        args: &A,
    ) -> Result<Option<Reply>, Failed> {
        let kind = if call.oneway {
            MessageType::Oneway
        } else {
            MessageType::Call
        };
        self.seqid = self.seqid.checked_add(1).unwrap_or(1);
        let seqid = self.seqid;
        let mark = self.io.begin_message();
        let inner = self.io.out().len();
        if let Some((kind, app_id)) = &self.header {
            let mut h = envelope::request(*kind, seqid, self.protocol, app_id, call);
            h.nested = self.header_in_frame;
            h.zlib = self.header_zlib;
            h.persistent = std::mem::take(&mut self.persistent);
            if h.nested {
                self.io.out().put_u32(0);
            }
            header::encode(self.io.out(), &h);
        }
        let payload = self.io.out().len();
        {
            // A header transport's payload may be rewritten (compressed, its
            // length filled in) after it is written: nothing is linked into it.
            let mut w = C::writer(self.io.out_linked(self.header.is_none()));
            if self.version >= 1 {
                tracking::write_request_header(&mut w, call.header);
            }
            w.write_message_begin(call.method, kind, seqid);
            args.encode(&mut w);
        }
        if self.header_zlib {
            header::deflate_tail(self.io.out(), payload);
        }
        if self.header_in_frame {
            header::finish_nested(self.io.out(), inner);
        }
        self.io.finish_message(mark);
        self.io.flush().await.map_err(|e| Failed {
            error: e.error.into(),
            sent: e.sent,
        })?;
        if call.oneway {
            return Ok(None);
        }
        let expect = if self.version >= 2 {
            Expect::OptionalStructThenMessage
        } else {
            Expect::Message
        };
        let mut msg = match self.io.read_message(expect, ReadTimeouts::default()).await {
            Ok(m) => m,
            Err(ReadError::Bad(_)) if self.io.buffered().starts_with(b"HTTP/") => {
                let why =
                    "the peer is speaking HTTP, not Thrift (is this the service's Thrift port?)";
                return Err(Failed::sent(ProtocolError::new(
                    ProtocolErrorKind::InvalidData,
                    why,
                )));
            }
            Err(ReadError::Bad(e)) if e.kind == ProtocolErrorKind::SizeLimit => {
                let why = format!(
                    "the reply is too large: {} (the client's limit: ConnOptions::max_message, `ringsoa call --max-message`)",
                    e.message
                );
                return Err(Failed::sent(ProtocolError::new(e.kind, why)));
            }
            Err(ReadError::Bad(e)) => return Err(Failed::sent(e)),
            Err(ReadError::Io(e)) => return Err(Failed::sent(e)),
            Err(e) => {
                let eof = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("server closed the connection before replying ({e})"),
                );
                return Err(Failed::sent(eof));
            }
        };
        let mut head = ResponseMeta::default();
        if self.header.is_some() && HeaderKind::of(&msg).is_some() {
            let (h, mut payload) =
                header::decode(&msg, &envelope::REPLY_LIMITS).map_err(Failed::sent)?;
            if h.zlib {
                payload = header::inflate(&payload, self.io.max_message()).map_err(Failed::sent)?;
            }
            if h.protocol != self.protocol {
                let why = format!(
                    "the reply header says {:?}, the call was {:?}",
                    h.protocol, self.protocol
                );
                return Err(Failed::sent(ProtocolError::new(
                    ProtocolErrorKind::InvalidData,
                    why,
                )));
            }
            // A reply's persistent pairs count for this reply only; its own win.
            let pairs = h.persistent.into_iter().chain(h.strings);
            head.meta = Some(pairs.collect()).filter(|m: &BTreeMap<_, _>| !m.is_empty());
            head.draining = head
                .meta
                .as_ref()
                .is_some_and(|m| m.contains_key(DRAINING_META));
            msg = payload;
        } else if self.version >= 2 && !matches!(msg.first(), Some(0x80 | 0x82)) {
            let mut r = C::reader(msg.clone());
            head = tracking::read_response_header(&mut r, call.keep_meta).map_err(Failed::sent)?;
            let used = msg.len() - r.remaining();
            bytes::Buf::advance(&mut msg, used);
        }
        let mut r = C::reader(msg.clone());
        match check_reply(&mut r, call.method, seqid) {
            Ok(()) => Ok(Some(Reply {
                body: msg.len() - r.remaining(),
                msg,
                seqid,
                meta: head.meta,
                draining: head.draining,
            })),
            Err(CallError::Application(e)) if is_shutting_down(&e) => {
                Err(Failed::sent(CallError::ShuttingDown))
            }
            Err(e) => Err(Failed::sent(e)),
        }
    }

    /// Whether calls on it go in a header transport (which carries the call's
    /// fields as tracking would).
    pub fn has_header(&self) -> bool {
        self.header.is_some()
    }

    /// Whether the connection is still usable, asked of the kernel without a round
    /// trip: a non-blocking peek finds the peer's FIN or RST, or stray bytes that no
    /// call asked for (either way the connection must go).
    pub fn is_alive(&self) -> bool {
        if !self.io.buffered().is_empty() {
            return false;
        }
        let mut byte = 0u8;
        // SAFETY: a one-byte peek into a local buffer on a socket this value owns.
        let n = unsafe {
            libc::recv(
                self.io.stream().as_raw_fd(),
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

/// What to send: the method, whether it is oneway, and the tracking header's fields
/// (written only on tracked connections); and whether the reply's tracking meta is
/// kept (its caller has a context to put it in).
pub(crate) struct Call<'a> {
    pub method: &'a str,
    pub oneway: bool,
    pub header: &'a OutgoingHeader<'a>,
    pub keep_meta: bool,
}

/// Decodes the body `T` of a reply that [`Conn::call`] has already checked (its
/// message header is not parsed again), within `max_decoded` bytes of decoded
/// memory.
pub(crate) fn read_body<T: Decode>(
    protocol: Protocol,
    max_decoded: usize,
    reply: Reply,
) -> Result<T, CallError> {
    let mut body = reply.msg;
    bytes::Buf::advance(&mut body, reply.body);
    with_codec!(protocol, C => Ok(T::decode(&mut reply_reader::<C>(body, max_decoded))?))
}

/// A reader of a reply's bytes `msg`, its decoded containers held to `max_decoded`
/// bytes ([`ConnOptions::max_decoded`]).
pub fn reply_reader<C: Codec>(msg: Bytes, max_decoded: usize) -> C::Reader {
    let mut r = C::reader(msg);
    *r.budget() = DecodeBudget::named(max_decoded, REPLY_BUDGET);
    r
}

/// What a reply over its decode budget is over, as its error names it.
const REPLY_BUDGET: &str =
    "the client's decode budget for a reply (ConnOptions::max_decoded, `ringsoa call --max-decoded`)";

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
