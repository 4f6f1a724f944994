//! One connection: detect its framing and protocol, answer the tracking handshake
//! if that is its first message, then serve its requests in order. Every complete
//! request already buffered is answered before the replies go out in one write.
//!
//! A request that cannot be cut out or parsed (a bad frame, a bad message header, a
//! bad tracking header) closes this connection and nothing else. Anything that goes
//! wrong inside a call becomes a `TApplicationException` for that call only
//! ([`super::call`]).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use monoio::net::TcpStream;

use super::call::CallSite;
use super::conns::Slot;
use super::detect::{detect, Detected};
use super::end::End;
use super::envelope;
use super::state::CoreState;
use crate::deadline::Deadline;
use crate::logs::throttle::warn_throttled;
use crate::protocol::{
    with_codec, Codec, MessageType, NonStrictBinaryCodec, Protocol, ProtocolError,
    ProtocolErrorKind, ProtocolReader,
};
use crate::rpc::{CallContext, Dispatch};
use crate::tracking::{self, server::Handshake};
use crate::transport::conn::{
    Expect, MessageConn, ReadError, ReadTimeouts, WriteError, KEEP_CAPACITY,
};
use crate::transport::header::{self, HeaderKind};
use crate::transport::{framed, Framing};

/// A request over the maximum message size is read to its end (and answered) only
/// while it is within this many times the maximum.
const DISCARD_FACTOR: usize = 4;

/// The most of a refused request's first bytes searched for its message header.
const HEAD_MAX: usize = 64 * 1024;

/// How long a connection the core closed while it waited for a request still
/// takes a request that was on its way ([`Session::last_look`]): its client sent it
/// before it could see the close, and it reached the socket only after the core
/// chose the connection (on loopback too, when the kernel's network work runs
/// late on a loaded machine).
const LAST_LOOK: Duration = Duration::from_millis(50);

/// Serves one accepted connection until it ends, then takes it off the core's
/// list (`id`, `slot`: its place there) and calls the `on_closed` hook.
pub async fn serve<S: Dispatch>(
    core: Rc<CoreState<S>>,
    stream: TcpStream,
    peer: SocketAddr,
    (id, slot): (u64, Rc<Slot>),
) {
    let mut conn = MessageConn::new(
        stream,
        Framing::Buffered,
        Protocol::Binary,
        core.config.max_message,
    );
    conn.set_budget(core.memory.buffer_budget.clone());
    conn.set_spares(core.memory.spare_buffers.clone());
    let mut session = Session {
        core: core.clone(),
        conn,
        slot,
        peer,
        tracking: Handshake {
            version: 0,
            caller: "".into(),
        },
        timer: None,
        cx: CallContext::default(),
        persistent: Vec::new(),
    };
    // The codec's loop is awaited here, not in a function of its own: one future
    // less to enter on every poll.
    let served = match session.detect().await {
        Ok(None) => session.serve::<NonStrictBinaryCodec>().await,
        Ok(Some(protocol)) => with_codec!(protocol, C => session.serve::<C>().await),
        Err(end) => Err(end),
    };
    drop(session);
    if let Err(end) = served {
        log_end(&core, peer, end);
    }
    core.conns.remove(id);
    if let Some(h) = &core.hooks.on_closed {
        h(core.index, peer);
    }
}

/// Logs why the connection with `peer` ended.
fn log_end<S>(core: &CoreState<S>, peer: SocketAddr, end: End) {
    let i = core.index;
    match end {
        End::Closed => tracing::trace!(%peer, core = i, "connection closed"),
        End::Idle => tracing::debug!(%peer, core = i, "connection idle too long, closed"),
        End::Evicted => {
            warn_throttled!(core.warnings.evicted, "core {i}: connection limit {} reached: closed the longest-idle connection ({peer}) to admit a new one", core.config.max_connections)
        }
        End::Slow => {
            warn_throttled!(
                core.warnings.slow,
                "core {i}: {peer}: request not complete within the read timeout of {:?}, closed",
                core.config.read_timeout
            )
        }
        End::Stalled => {
            warn_throttled!(
                core.warnings.stalled,
                "core {i}: {peer}: replies not taken within the write timeout of {:?}, closed",
                core.config.write_timeout
            )
        }
        End::Bad(why) => {
            warn_throttled!(
                core.warnings.bad,
                "core {i}: {peer}: closing connection: {why}"
            )
        }
        End::Io(e) => tracing::debug!(%peer, core = i, "connection error: {e}"),
    }
}

/// One connection's state.
struct Session<S> {
    core: Rc<CoreState<S>>,
    conn: MessageConn,
    slot: Rc<Slot>,
    peer: SocketAddr,
    /// Set by the handshake; per connection, never shared.
    tracking: Handshake,
    /// The calls' timeout timer, made by the first call that has a timeout.
    timer: Option<Deadline>,
    /// The context of the call being served, reset for each call: its maps and
    /// strings are made once per connection, not once per call.
    cx: CallContext,
    /// THeader's persistent pairs this connection's client has sent.
    persistent: Vec<(String, String)>,
}

impl<S: Dispatch> Session<S> {
    /// Reads until the first bytes tell the framing and protocol, and sets the
    /// connection to them: the protocol, or `None` for non-strict binary.
    async fn detect(&mut self) -> Result<Option<Protocol>, End> {
        let non_strict = self.core.config.accept_non_strict_binary;
        let (framing, protocol, strict) = loop {
            match detect(self.conn.buffered(), non_strict) {
                Detected::Speaks(f, p) => break (f, p, true),
                Detected::NonStrict(f) => break (f, Protocol::Binary, false),
                Detected::Unsupported(why) => return Err(End::Bad(why.into())),
                Detected::NeedMore => self.fill().await?,
            }
        };
        self.conn.set_form(framing, protocol);
        if !strict {
            self.conn.accept_non_strict();
            return Ok(None);
        }
        Ok(Some(protocol))
    }

    async fn serve<C: Codec>(&mut self) -> Result<(), End> {
        // Every complete request already here is answered before the replies go
        // out with one write (bytes that are not a request are reported when no
        // request is left, after these replies). `served`: a request was, so
        // replies may wait to go; `first`: the connection's first message, the
        // tracking handshake if it comes, is still to come.
        let (mut first, mut close, mut served) = (true, false, false);
        loop {
            let ready = match served && !close {
                true => self.conn.try_cut(self.expect()).ok().flatten(),
                false => None,
            };
            let request = match ready {
                Some(r) => r,
                None => {
                    if served {
                        // As `flush` does, awaited here: one future less a poll.
                        self.slot.set_writing(Some(self.core.conns.now()));
                        loop {
                            let result = self.conn.send_some().await;
                            if self.sent(result)? {
                                break;
                            }
                        }
                        // Closed after these replies: at the drain, or when the core
                        // closed the connection as its requests came in (evicted,
                        // idle too long, or past the drain's grace).
                        let by_core = self.slot.closed_by_core();
                        if close || by_core.is_some() {
                            return Err(by_core.unwrap_or(End::Closed));
                        }
                    }
                    // The next whole request, read here rather than in a function
                    // of its own: one future less to enter on every poll. One over
                    // the maximum message size is refused, and the next one looked
                    // for when the connection can go on.
                    let expect = self.expect();
                    loop {
                        match self.conn.try_cut(expect) {
                            Ok(Some(r)) => break r,
                            Ok(None) => {
                                let (idle, timeouts) = self.before_read();
                                let result = self.conn.fill(timeouts).await;
                                match self.after_read(idle, result) {
                                    Ok(()) => {}
                                    // Boxed: rare, and its timer would enlarge
                                    // every connection's task.
                                    Err(end) if self.closed_waiting() => {
                                        Box::pin(self.last_look(timeouts)).await.ok_or(end)?
                                    }
                                    Err(end) => return Err(end),
                                }
                            }
                            // Boxed: rare, and its timers would enlarge every
                            // connection's task.
                            Err(e) if e.kind == ProtocolErrorKind::SizeLimit => {
                                let why = e.message.into_owned();
                                Box::pin(self.refuse_too_large::<C>(expect, why)).await?
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            };
            if std::mem::take(&mut first)
                && HeaderKind::of(&request).is_none()
                && self.handshake::<C>(&request)?
            {
                served = true;
                continue;
            }
            // A plain message is served here, not in a function of its own: one
            // future less to enter on every poll.
            close = if self.conn.framing() == Framing::Framed && HeaderKind::of(&request).is_some()
            {
                self.enveloped(request).await?
            } else {
                // A large request's buffer goes to the spare buffers after its call.
                let large = (request.len() > KEEP_CAPACITY).then(|| request.clone());
                // Pinned where it is made: a call's future is kilobytes, and awaiting
                // it as a value copied all of it on every call.
                let close = {
                    let (mut site, cx) = self.site();
                    let call = std::pin::pin!(site.request::<C>(cx, request));
                    call.await?
                };
                if let Some(frame) = large {
                    self.conn.recycle(frame);
                }
                close
            };
            served = true;
        }
    }

    /// Serves a request in a TTHeader or THeader frame: unwrapped (its payload in
    /// the protocol the header names) and answered in the same header. Returns
    /// whether the connection closes after the reply.
    async fn enveloped(&mut self, frame: Bytes) -> Result<bool, End> {
        let limits = envelope::limits(&self.core.config.tracking_limits);
        let (mut h, mut payload) = header::decode(&frame, &limits)?;
        if !(h.persistent.is_empty() && self.persistent.is_empty()) {
            envelope::persist(&mut self.persistent, &mut h, limits.entries)?;
        }
        if h.zlib {
            payload = match header::inflate(&payload, self.conn.max_message()) {
                Ok(p) => p,
                // Answered as a request over the maximum size is; nothing of it
                // is held past the limit, so the connection goes on.
                Err(e) if e.kind == ProtocolErrorKind::SizeLimit => {
                    let why = e.message.into_owned();
                    let told = self
                        .refuse_in_header(&h, payload, &why)
                        .map_err(|_| End::Bad(why.clone()))?;
                    self.refused(&why, told);
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            };
        }
        let (mut site, cx) = self.site();
        site.envelope = Some(&h);
        with_codec!(h.protocol, P => {
            let call = std::pin::pin!(site.request::<P>(cx, payload));
            call.await
        })
    }

    /// Where the next call runs: this connection's parts, and its call context.
    fn site(&mut self) -> (CallSite<'_, S>, &mut CallContext) {
        let site = CallSite {
            core: &self.core,
            conn: &mut self.conn,
            slot: &self.slot,
            tracking: &self.tracking,
            timer: &mut self.timer,
            envelope: None,
        };
        (site, &mut self.cx)
    }

    fn expect(&self) -> Expect {
        if self.tracking.version >= 1 {
            Expect::StructThenMessage
        } else {
            Expect::Message
        }
    }

    /// Answers `first` if it is the tracking handshake.
    fn handshake<C: Codec>(&mut self, first: &Bytes) -> Result<bool, End> {
        let mut r = C::reader(first.clone());
        let msg = r.read_message_begin()?;
        if msg.kind != MessageType::Call || &msg.name[..] != tracking::HANDSHAKE_METHOD.as_bytes() {
            return Ok(false);
        }
        let limits = self.core.config.tracking_limits;
        let mark = self.conn.begin_message();
        let mut w = C::writer(self.conn.out());
        let answered = tracking::server::answer_handshake(&mut r, &mut w, msg.seqid, &limits);
        drop(w);
        self.tracking = answered?;
        self.conn.finish_message(mark);
        tracing::debug!(
            core = self.core.index,
            caller = &*self.tracking.caller,
            version = self.tracking.version,
            "tracking handshake"
        );
        Ok(true)
    }

    /// Answers a request over the maximum message size (`expect`ed as such), once
    /// its message header has arrived, with a PROTOCOL_ERROR that names both sizes
    /// (a oneway call gets nothing), and drops the rest of it as it comes
    /// ([`MessageConn::discard`]), so that a client still writing it reads the
    /// answer instead of a reset, and the connection goes on; in a header
    /// transport's frame, the answer comes in the same header. One that claims or
    /// runs to more than [`DISCARD_FACTOR`] times the maximum closes the connection
    /// (a frame unanswered).
    async fn refuse_too_large<C: Codec>(&mut self, expect: Expect, why: String) -> Result<(), End> {
        let framed = self.conn.framing() == Framing::Framed;
        let skip = if framed { framed::HEADER_LEN } else { 0 };
        let limit = DISCARD_FACTOR * self.core.config.max_message;
        if framed && framed::declared_len(self.conn.buffered()).unwrap_or(0) + skip > limit {
            return Err(End::Bad(why));
        }
        let told = loop {
            let body = &self.conn.buffered()[skip..];
            let head = Bytes::copy_from_slice(&body[..body.len().min(HEAD_MAX)]);
            let more = body.len() < HEAD_MAX;
            let answered = if framed && HeaderKind::of(&head).is_some() {
                // Answered in the same header, its payload in the protocol it names.
                let limits = envelope::limits(&self.core.config.tracking_limits);
                header::decode(&head, &limits)
                    .and_then(|(h, payload)| self.refuse_in_header(&h, payload, &why))
            } else {
                let (mut site, cx) = self.site();
                site.refuse_too_large::<C>(cx, head, &why)
            };
            match answered {
                Ok(told) => break told,
                Err(_) if more => self.fill().await?,
                Err(_) => return Err(End::Bad(why)),
            }
        };
        self.flush().await?;
        let timeout = self.core.config.read_timeout;
        if !self.conn.discard(expect, limit, timeout).await {
            return Err(End::Bad(format!("{why} ({})", told_text(told))));
        }
        self.refused(&why, told);
        Ok(())
    }

    /// Answers a request in header `h` (whose payload starts with `payload`, still
    /// compressed under the zlib transform) refused as too large (`why`), in the
    /// same header ([`CallSite::refuse_too_large`]); true if the caller was told.
    fn refuse_in_header(
        &mut self,
        h: &header::Header,
        payload: Bytes,
        why: &str,
    ) -> Result<bool, ProtocolError> {
        let payload = if h.zlib {
            header::inflate_head(&payload, HEAD_MAX)
        } else {
            payload
        };
        let (mut site, cx) = self.site();
        site.envelope = Some(h);
        with_codec!(h.protocol, P => site.refuse_too_large::<P>(cx, payload, why))
    }

    /// Logs a refused request whose connection goes on (`told`: its caller was
    /// answered, not a oneway call).
    fn refused(&self, why: &str, told: bool) {
        let (i, peer, told) = (self.core.index, self.peer, told_text(told));
        warn_throttled!(
            self.core.warnings.bad,
            "core {i}: {peer}: refused a request: {why} ({told}; the connection goes on)"
        );
    }

    /// Reads more, a started request within the read timeout. While the connection
    /// waits for a request the core may close it (to make room, past the idle
    /// timeout, or at the drain's grace) by shutting its socket's read side
    /// ([`Slot::closed_by_core`] then says why the read ended).
    async fn fill(&mut self) -> Result<(), End> {
        let (idle, timeouts) = self.before_read();
        let result = self.conn.fill(timeouts).await;
        match self.after_read(idle, result) {
            Err(end) if self.closed_waiting() => {
                Box::pin(self.last_look(timeouts)).await.ok_or(end)
            }
            done => done,
        }
    }

    /// Whether the core closed the connection (to make room, past the idle timeout,
    /// or at the drain's grace) while it waited for a request: a read that then
    /// ends gets a [`Self::last_look`].
    fn closed_waiting(&self) -> bool {
        self.slot.closed_by_core().is_some() && self.conn.buffered().is_empty()
    }

    /// One more read [`LAST_LOOK`] after the core closed a waiting connection, so
    /// that a request its client sent before the close but that reached the
    /// socket just after the core's choice is answered (the connection then
    /// closes after the reply) rather than met by a reset. `None` when nothing
    /// came.
    async fn last_look(&mut self, timeouts: ReadTimeouts) -> Option<()> {
        monoio::time::sleep(LAST_LOOK).await;
        // The socket's read side is shut: this read returns at once, with what
        // came in since, or as at a close.
        self.conn.fill(timeouts).await.ok()
    }

    /// [`Self::fill`]'s part before the read: whether the connection waits for a
    /// request (marked idle for the core), and the read's timeouts. Apart so that
    /// the connection's loop ([`Self::serve`]) awaits the read itself: one future
    /// less to enter per poll.
    #[inline(always)]
    fn before_read(&mut self) -> (bool, ReadTimeouts) {
        let core = &self.core;
        let idle = self.conn.buffered().is_empty();
        if idle {
            self.slot.set_idle(Some(core.conns.tick()));
        }
        // No timer on a wait for a request: the core ends it (`IdleSweep`).
        let timeouts = ReadTimeouts {
            idle: None,
            message: Some(core.config.read_timeout),
        };
        (idle, timeouts)
    }

    /// [`Self::fill`]'s part after the read: the idle mark cleared, and a read the
    /// core ended told apart by why.
    #[inline(always)]
    fn after_read(&self, idle: bool, result: Result<(), ReadError>) -> Result<(), End> {
        let slot = &self.slot;
        if idle {
            slot.set_idle(None);
        }
        result.map_err(|e| slot.closed_by_core().unwrap_or_else(|| e.into()))
    }

    /// Sends the replies, marking the connection as writing while they go out, so
    /// that the core closes it if its peer stops taking them (the write timeout).
    async fn flush(&mut self) -> Result<(), End> {
        self.slot.set_writing(Some(self.core.conns.now()));
        loop {
            let result = self.conn.send_some().await;
            if self.sent(result)? {
                break;
            }
        }
        Ok(())
    }

    /// [`Self::flush`]'s step after each send: whether all went out (the writing
    /// mark cleared, or renewed while the peer takes some). Apart so that the
    /// connection's loop ([`Self::serve`]) awaits the sends itself: one future
    /// less to enter per poll.
    #[inline(always)]
    fn sent(&self, result: Result<bool, WriteError>) -> Result<bool, End> {
        match result {
            Ok(all) => {
                self.slot.set_writing((!all).then(|| self.core.conns.now()));
                Ok(all)
            }
            Err(_) if self.slot.stalled() => Err(End::Stalled),
            // The peer gone from a connection the core had closed: told as the
            // core's close.
            Err(e) => Err(self.slot.closed_by_core().unwrap_or(End::Io(e.error))),
        }
    }
}

/// How a refused request's log line says whether its caller was answered.
fn told_text(told: bool) -> &'static str {
    if told {
        "the caller was told"
    } else {
        "a oneway call"
    }
}
