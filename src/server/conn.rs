//! One connection: detect its framing and protocol, then serve its requests in
//! order — cut a request out of the read buffer, run it, write its reply.
//!
//! A request that cannot be cut out or parsed (a bad frame, a bad message header, a
//! bad tracking header) closes this connection and nothing else. Anything that goes
//! wrong inside a call (bad arguments, unknown method, a handler error, panic or
//! timeout) becomes a `TApplicationException` for that call only.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use super::core::CoreState;
use super::detect::{detect, Detected};
use crate::protocol::with_codec;
use crate::protocol::{
    ApplicationException, ApplicationExceptionKind, Codec, Decode, Encode, MessageType,
    ProtocolError, ProtocolReader, ProtocolWriter,
};
use crate::rpc::dispatch::write_exception;
use crate::rpc::{CallContext, Dispatch};
use crate::tracking::{self, RequestHeader, UpgradeArgs, UpgradeReply};
use crate::transport::io::read_append;
use crate::transport::{framed, scan::Scanner, Framing};

/// The message of the application exception sent to a request that arrives while the
/// server drains; clients read it as "not executed, retry elsewhere".
pub const SHUTTING_DOWN: &str = "ringsoa: server is shutting down";

/// Read-buffer growth step.
const READ_CHUNK: usize = 8 * 1024;

/// Why a connection ended (for the log).
#[derive(Debug)]
enum End {
    /// The peer closed, or the server closed after a reply while draining.
    Closed,
    /// No request within the idle timeout.
    Idle,
    /// A request did not arrive completely within the read timeout.
    Slow,
    /// Bytes that are not a request this server can read.
    Bad(String),
    /// A socket error.
    Io(std::io::Error),
}

/// What one request did.
enum Outcome {
    /// Keep serving this connection.
    Continue,
    /// Close after writing what is in the output buffer.
    Close,
}

/// Per-connection tracking state: set by the handshake, never shared.
struct Tracking {
    version: i32,
    caller: std::rc::Rc<str>,
}

/// Serves one accepted connection until it ends.
pub async fn serve<S: Dispatch>(core: Rc<CoreState<S>>, stream: TcpStream, peer: SocketAddr) {
    let end = Conn {
        core: core.clone(),
        stream,
        buf: BytesMut::with_capacity(READ_CHUNK),
        out: BytesMut::with_capacity(READ_CHUNK),
    }
    .run()
    .await;
    match &end {
        End::Closed => tracing::trace!(%peer, core = core.index, "connection closed"),
        End::Idle => tracing::debug!(%peer, core = core.index, "connection idle too long, closed"),
        End::Slow => {
            tracing::warn!(%peer, core = core.index, "request not complete within the read timeout, closed")
        }
        End::Bad(why) => tracing::warn!(%peer, core = core.index, "closing connection: {why}"),
        End::Io(e) => tracing::debug!(%peer, core = core.index, "connection error: {e}"),
    }
}

struct Conn<S> {
    core: Rc<CoreState<S>>,
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
    /// The replies to write.
    out: BytesMut,
}

impl<S: Dispatch> Conn<S> {
    async fn run(mut self) -> End {
        let (framing, protocol) = loop {
            match detect(&self.buf) {
                Detected::Speaks(f, p) => break (f, p),
                Detected::Unsupported(why) => return End::Bad(why.into()),
                Detected::NeedMore => {
                    if let Err(e) = self.read_more(self.buf.is_empty()).await {
                        return e;
                    }
                }
            }
        };
        let max = self.core.config.max_message;
        let mut scanner = Scanner::new(protocol, max);
        let mut tracking = Tracking {
            version: 0,
            caller: "".into(),
        };
        loop {
            // Cut out one whole request.
            let frame = loop {
                match self.next_request(framing, &mut scanner, tracking.version) {
                    Ok(Some(frame)) => break frame,
                    Ok(None) => {}
                    Err(e) => return End::Bad(e.message.into_owned()),
                }
                if let Err(e) = self.read_more(self.buf.is_empty()).await {
                    return e;
                }
            };
            let start = self.out.len();
            if framing == Framing::Framed {
                self.out.put_u32(0);
            }
            let body = self.out.len();
            let outcome = with_codec!(protocol, C => {
                self.request::<C>(frame, &mut tracking, body).await
            });
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => return End::Bad(e.message.into_owned()),
            };
            if framing == Framing::Framed {
                let len = self.out.len() - start - framed::HEADER_LEN;
                if len == 0 {
                    self.out.truncate(start); // oneway: nothing to send
                } else {
                    self.out[start..start + framed::HEADER_LEN]
                        .copy_from_slice(&(len as u32).to_be_bytes());
                }
            }
            if !self.out.is_empty() {
                let out = std::mem::take(&mut self.out);
                let (res, mut out) = self.stream.write_all(out).await;
                if let Err(e) = res {
                    return End::Io(e);
                }
                out.clear();
                self.out = out;
            }
            if let Outcome::Close = outcome {
                return End::Closed;
            }
        }
    }

    /// Reads more bytes into the buffer; `idle` selects the idle timeout (between
    /// requests) instead of the read timeout (inside one).
    async fn read_more(&mut self, idle: bool) -> Result<(), End> {
        let cfg = &self.core.config;
        let timeout = if idle {
            cfg.idle_timeout
        } else {
            Some(cfg.read_timeout)
        };
        let buf = std::mem::take(&mut self.buf);
        let read = read_append(&mut self.stream, buf, READ_CHUNK);
        let (res, buf) = match timeout {
            Some(t) => match monoio::time::timeout(t, read).await {
                Ok(r) => r,
                Err(_) => return Err(if idle { End::Idle } else { End::Slow }),
            },
            None => read.await,
        };
        self.buf = buf;
        match res {
            Ok(0) => Err(End::Closed),
            Ok(_) => Ok(()),
            Err(e) => Err(End::Io(e)),
        }
    }

    /// One whole request (tracking header and message) cut from the buffer, if it has
    /// arrived. Sizes are checked before anything waits for them.
    fn next_request(
        &mut self,
        framing: Framing,
        scanner: &mut Scanner,
        version: i32,
    ) -> Result<Option<Bytes>, ProtocolError> {
        match framing {
            Framing::Framed => {
                let Some(len) = framed::frame_len(&self.buf, self.core.config.max_message)? else {
                    return Ok(None);
                };
                if self.buf.len() < framed::HEADER_LEN + len {
                    return Ok(None);
                }
                let mut frame = self.buf.split_to(framed::HEADER_LEN + len);
                bytes::Buf::advance(&mut frame, framed::HEADER_LEN);
                Ok(Some(frame.freeze()))
            }
            Framing::Buffered => {
                if !scanner.in_progress() {
                    if version >= 1 {
                        scanner.expect_struct_then_message();
                    } else {
                        scanner.expect_message();
                    }
                }
                match scanner.feed(&self.buf)? {
                    Some(n) => Ok(Some(self.buf.split_to(n).freeze())),
                    None => Ok(None),
                }
            }
        }
    }

    /// Serves the request in `frame`, writing its reply from `body` on in the output
    /// buffer. An error means the request could not be parsed: close the connection.
    async fn request<C: Codec>(
        &mut self,
        frame: Bytes,
        tracking: &mut Tracking,
        body: usize,
    ) -> Result<Outcome, ProtocolError> {
        let r = &mut C::reader(frame);
        let core = self.core.clone();
        let mut cx = CallContext {
            caller: tracking.caller.clone(),
            version: tracking.version,
            core: core.index,
            ..CallContext::default()
        };
        if tracking.version >= 1 {
            let h = RequestHeader::decode(r)?;
            cx.request_id = h.request_id.unwrap_or_default();
            cx.seq = h.seq.unwrap_or_default();
            cx.meta = h.meta.unwrap_or_default();
        }
        // The call's timeout: the server's own, shortened to the budget the caller
        // sent; the handler sees it as the context's deadline.
        let timeout = match (core.config.call_timeout, cx.sent_budget()) {
            (Some(own), Some(sent)) => Some(own.min(sent)),
            (own, sent) => own.or(sent),
        };
        cx.deadline = timeout.map(|t| std::time::Instant::now() + t);
        let msg = r.read_message_begin()?;
        if !matches!(msg.kind, MessageType::Call | MessageType::Oneway) {
            return Err(ProtocolError::new(
                crate::protocol::ProtocolErrorKind::InvalidData,
                format!("a client sent a message of type {:?}", msg.kind),
            ));
        }
        let out = &mut self.out;
        if tracking.version == 0 && &msg.name[..] == tracking::HANDSHAKE_METHOD.as_bytes() {
            let args = UpgradeArgs::decode(r)?;
            let (version, reply) = tracking::negotiate(args.version);
            tracking.version = version;
            tracking.caller = args.app_id.unwrap_or_default().into();
            let mut w = C::writer(out);
            w.write_message_begin(tracking::HANDSHAKE_METHOD, MessageType::Reply, msg.seqid);
            UpgradeReply { version: reply }.encode(&mut w);
            tracing::debug!(core = core.index, caller = %tracking.caller, version, "tracking handshake");
            return Ok(Outcome::Continue);
        }
        if core.shutdown.draining() {
            if msg.kind == MessageType::Call {
                let exc = ApplicationException::internal(SHUTTING_DOWN);
                write_exception(&cx, &mut C::writer(out), &msg, &exc);
            }
            return Ok(Outcome::Close);
        }
        let hooks = &core.hooks;
        let method = || std::str::from_utf8(&msg.name).unwrap_or("<non-UTF-8 name>");
        if let Some(h) = &hooks.before_call {
            h(&cx, method());
        }
        let started = hooks.after_call.is_some().then(std::time::Instant::now);
        core.in_flight.set(core.in_flight.get() + 1);
        let beat = core.beats.core(core.index);
        beat.enter(&msg.name);
        let result = {
            let mut w = C::writer(out);
            // Pinned where it is made: a handler's future can be kilobytes (it holds
            // its downstream calls), and each move would copy all of it.
            let call = std::pin::pin!(core.service.dispatch(&mut cx, &msg, r, &mut w));
            match timeout {
                // The caller has already given up: do not start the call.
                Some(t) if t.is_zero() => None,
                t => with_timeout(t, catch_panic(call)).await,
            }
        };
        beat.leave();
        core.in_flight.set(core.in_flight.get() - 1);
        let failure = match result {
            Some(Ok(Ok(_))) => None,
            Some(Ok(Err(e))) => return Err(e),
            Some(Err(panic)) => {
                let what = panic_message(&panic);
                tracing::error!(core = core.index, method = %String::from_utf8_lossy(&msg.name), "handler panicked: {what}");
                Some(format!("handler panicked: {what}"))
            }
            None => {
                let ms = timeout.map_or(0, |t| t.as_millis());
                tracing::warn!(core = core.index, method = %String::from_utf8_lossy(&msg.name), "call timed out after {ms} ms");
                Some(format!("ringsoa: call timed out after {ms} ms"))
            }
        };
        if let (Some(h), Some(t)) = (&hooks.after_call, started) {
            h(&cx, method(), t.elapsed(), failure.is_none());
        }
        if let Some(message) = failure {
            // Whatever the call wrote is discarded; the frame header stays.
            out.truncate(body);
            if msg.kind == MessageType::Call {
                let exc =
                    ApplicationException::new(ApplicationExceptionKind::InternalError, message);
                write_exception(&cx, &mut C::writer(out), &msg, &exc);
            }
        }
        if core.shutdown.draining() {
            return Ok(Outcome::Close);
        }
        Ok(Outcome::Continue)
    }
}

/// Runs `f`, giving up after `timeout` (`None` when it ran out).
async fn with_timeout<F: Future>(timeout: Option<Duration>, f: F) -> Option<F::Output> {
    match timeout {
        Some(t) => monoio::time::timeout(t, f).await.ok(),
        None => Some(f.await),
    }
}

/// Runs `f`, turning a panic inside it into an error.
async fn catch_panic<F: Future>(f: F) -> Result<F::Output, Box<dyn Any + Send>> {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(
        move |cx| match catch_unwind(AssertUnwindSafe(|| f.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        },
    )
    .await
}

fn panic_message(p: &Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}
