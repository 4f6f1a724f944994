//! [`MessageConn`]: one socket with its read and write buffers, used by both sides
//! (the server's connection loop, the client's connection, the perf harness).
//!
//! Reading cuts one whole message out of the read buffer — framed or buffered, any
//! protocol, resumable, size-checked before anything waits for it — and reads more
//! only when none is there. A started message must arrive whole within the message
//! timeout, however its bytes trickle in; the wait for a message's first byte has
//! the idle timeout. Writing appends messages to the write buffer (the frame length
//! filled in) until [`MessageConn::flush`] sends them all with one write; a reply
//! written through [`MessageConn::out_linked`] links its large shared byte strings
//! rather than copying them ([`super::gather`]), and goes out with one gathering
//! write.
//!
//! A connection keeps no large buffer: one that grew past [`KEEP_CAPACITY`] is given
//! back once it is empty (to the core's [`SpareBuffers`], when it has them, for the
//! next large message to take), and a connection whose read buffer holds nothing
//! waits for readability without any buffer before it allocates one, so silent
//! connections cost no buffer memory at all.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;

use super::budget::{BufferBudget, Charge};
use super::gather::{self, Gather, WriteBuf, LINK_MIN};
use super::io::{read_append, spare};
use super::scan::Scanner;
use super::spare::SpareBuffers;
use super::{framed, Framing};
use crate::protocol::{Protocol, ProtocolError};

/// Read-buffer growth step.
pub const READ_CHUNK: usize = 8 * 1024;

/// A buffer that grew beyond this is given back once it is empty.
pub const KEEP_CAPACITY: usize = 64 * 1024;

/// The largest single growth of the read buffer while a message's length is known:
/// a peer that claims a large frame must send it to make the buffer grow.
const MAX_STEP: usize = 1024 * 1024;

/// What the next unit on the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// One message.
    Message,
    /// A bare struct (a tracking request header), then a message.
    StructThenMessage,
    /// A bare struct then a message, unless the bytes start with a message header
    /// (a tracking response header, which thriftpy2 servers omit before EXCEPTION
    /// replies: a strict binary message starts `0x80`, a compact one `0x82`, a
    /// struct never does).
    OptionalStructThenMessage,
}

impl Expect {
    /// Sets `scanner` to walk this unit, whose first byte is `first`.
    fn start(self, scanner: &mut Scanner, first: u8) {
        let header = match self {
            Expect::Message => false,
            Expect::StructThenMessage => true,
            Expect::OptionalStructThenMessage => !matches!(first, 0x80 | 0x82),
        };
        if header {
            scanner.expect_struct_then_message();
        } else {
            scanner.expect_message();
        }
    }
}

/// Timeouts of a read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadTimeouts {
    /// For the first byte of a message (`None`: wait forever).
    pub idle: Option<Duration>,
    /// For a started message to arrive whole (`None`: wait forever).
    pub message: Option<Duration>,
}

/// Why no message could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the connection between messages.
    #[error("the peer closed the connection")]
    Closed,
    /// The peer closed the connection inside a message.
    #[error("the peer closed the connection inside a message")]
    Truncated,
    /// No message started within the idle timeout.
    #[error("no message within the idle timeout")]
    Idle,
    /// A started message did not arrive whole within the message timeout.
    #[error("a message did not arrive whole within the read timeout")]
    Slow,
    /// Bytes that are not a message this side can read (or one over the size limit).
    #[error(transparent)]
    Bad(#[from] ProtocolError),
    /// A socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A write that failed, and whether any byte of it may have left.
#[derive(Debug)]
pub struct WriteError {
    /// The socket error.
    pub error: std::io::Error,
    /// False only when nothing of the buffer was sent.
    pub sent: bool,
}

/// One socket and its buffers; see the module docs.
pub struct MessageConn {
    stream: TcpStream,
    framing: Framing,
    max: usize,
    scanner: Scanner,
    /// Bytes read and not yet cut out.
    rbuf: BytesMut,
    /// Messages written and not yet sent, and the large byte strings sent in
    /// place between their bytes.
    out: WriteBuf,
    /// The pieces of the last gathering write, kept for their capacity.
    pieces: Vec<libc::iovec>,
    /// The bytes of a linked batch that earlier writes sent (its buffer is not
    /// advanced, so that the links keep their places).
    wskip: usize,
    /// Large requests the links point into, recycled once those are sent.
    recycle_after: Vec<Bytes>,
    /// Whether the flush under way has sent part of them.
    wsent: bool,
    /// When the message partly in `rbuf` must be whole.
    deadline: Option<Instant>,
    /// Bytes the next read should make room for.
    want: usize,
    /// Whether the read buffer was allocated (false when new or given back); a
    /// buffer merely used up to its capacity still counts, so a busy connection
    /// never pays the readiness wait.
    holds_buffer: bool,
    /// What the read buffer took, past [`KEEP_CAPACITY`], from the core's budget.
    charge: Charge,
    /// Where large buffers go when done, and come from.
    spares: Option<Rc<SpareBuffers>>,
    /// The length of the last unit cut, and of the last bytes sent, when over
    /// [`KEEP_CAPACITY`] (else 0): the room a reply is likely to need.
    large_in: usize,
    /// See `large_in`.
    large_out: usize,
}

impl MessageConn {
    /// A connection speaking `framing` and `protocol` that refuses messages over
    /// `max` bytes. No buffer is allocated until one is needed.
    pub fn new(stream: TcpStream, framing: Framing, protocol: Protocol, max: usize) -> Self {
        MessageConn {
            stream,
            framing,
            max,
            scanner: Scanner::new(protocol, max),
            rbuf: BytesMut::new(),
            out: WriteBuf::new(),
            pieces: Vec::new(),
            wskip: 0,
            recycle_after: Vec::new(),
            wsent: false,
            deadline: None,
            want: READ_CHUNK,
            holds_buffer: false,
            charge: Charge::default(),
            spares: None,
            large_in: 0,
            large_out: 0,
        }
    }

    /// Grows the read buffer past [`KEEP_CAPACITY`] only with bytes taken from
    /// `budget`, given back once the message is whole; a read that needs more than
    /// the budget has left takes its overdraft if no other connection has it, and
    /// otherwise waits, within the read's timeout.
    pub fn set_budget(&mut self, budget: Rc<BufferBudget>) {
        self.charge = Charge::new(budget);
    }

    /// Gives large buffers to `spares` when done with them, and takes them from
    /// there: for a read that must grow past [`KEEP_CAPACITY`], and for the replies
    /// after a large message (see [`Self::recycle`] for the requests' own).
    pub fn set_spares(&mut self, spares: Rc<SpareBuffers>) {
        self.spares = Some(spares);
    }

    /// Hands a large unit this connection cut, once its reader is done with it, to
    /// the spare buffers (when nothing else holds a part of it: a handler may keep
    /// one). A small one is simply dropped.
    /// One that a reply waiting to go links into is recycled once it has gone.
    pub fn recycle(&mut self, unit: Bytes) {
        match &self.spares {
            Some(_) if !self.out.links.is_empty() => self.recycle_after.push(unit),
            Some(spares) => spares.recycle(unit),
            None => {}
        }
    }

    /// Changes the framing and protocol (once detected from the first bytes).
    pub fn set_form(&mut self, framing: Framing, protocol: Protocol) {
        self.framing = framing;
        self.scanner = Scanner::new(protocol, self.max);
    }

    /// Also reads non-strict binary messages (see [`Scanner::accept_non_strict`]).
    pub fn accept_non_strict(&mut self) {
        self.scanner.accept_non_strict();
    }

    /// The framing in use.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The largest message this connection reads.
    pub fn max_message(&self) -> usize {
        self.max
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The bytes read and not yet cut out.
    pub fn buffered(&self) -> &[u8] {
        &self.rbuf
    }

    /// Bytes of memory the buffers hold now.
    pub fn buffer_capacity(&self) -> usize {
        self.rbuf.capacity() + self.out.buf.capacity()
    }

    /// Cuts one whole unit (per `expect`) from the read buffer if it has all
    /// arrived: for framed transport the frame's body, for buffered the unit's bytes.
    /// An error leaves the buffer as it was: asked again, it is the same error.
    pub fn try_cut(&mut self, expect: Expect) -> Result<Option<Bytes>, ProtocolError> {
        let whole = match self.framing {
            Framing::Framed => {
                let Some(len) = framed::frame_len(&self.rbuf, self.max)? else {
                    self.want = READ_CHUNK;
                    return Ok(None);
                };
                let total = framed::HEADER_LEN + len;
                if self.rbuf.len() < total {
                    self.want = total - self.rbuf.len();
                    return Ok(None);
                }
                total
            }
            Framing::Buffered => {
                self.want = READ_CHUNK;
                if self.rbuf.is_empty() {
                    return Ok(None);
                }
                if !self.scanner.in_progress() {
                    expect.start(&mut self.scanner, self.rbuf[0]);
                }
                match self.scanner.feed(&self.rbuf) {
                    Ok(Some(n)) => n,
                    Ok(None) => return Ok(None),
                    Err(e) => {
                        self.scanner.forget();
                        return Err(e);
                    }
                }
            }
        };
        let mut unit = self.rbuf.split_to(whole);
        self.large_in = large(whole);
        if self.framing == Framing::Framed {
            bytes::Buf::advance(&mut unit, framed::HEADER_LEN);
        }
        // The next message, if it has started, gets its deadline at its next read.
        self.deadline = None;
        if self.charge.holds() {
            self.charge.release();
        }
        if self.rbuf.is_empty() && whole + self.rbuf.capacity() > KEEP_CAPACITY {
            self.rbuf = BytesMut::new();
            self.holds_buffer = false;
        }
        Ok(Some(unit.freeze()))
    }

    /// Reads until one whole unit has arrived and cuts it out.
    pub async fn read_message(
        &mut self,
        expect: Expect,
        timeouts: ReadTimeouts,
    ) -> Result<Bytes, ReadError> {
        loop {
            if let Some(unit) = self.try_cut(expect)? {
                return Ok(unit);
            }
            self.fill(timeouts).await?;
        }
    }

    /// Reads more bytes into the read buffer: within the idle timeout when it is
    /// empty, else by the started message's deadline.
    pub async fn fill(&mut self, timeouts: ReadTimeouts) -> Result<(), ReadError> {
        let started = !self.rbuf.is_empty();
        if started && self.deadline.is_none() {
            self.deadline = timeouts.message.map(|t| Instant::now() + t);
        }
        let limit = if started {
            self.deadline
                .map(|d| d.saturating_duration_since(Instant::now()))
        } else {
            timeouts.idle
        };
        let expired = || {
            if started {
                ReadError::Slow
            } else {
                ReadError::Idle
            }
        };
        if !self.holds_buffer {
            // Hold no buffer while nothing has arrived.
            let ready = self.stream.readable(false);
            with_limit(limit, ready).await.ok_or_else(expired)??;
        }
        // Grow toward a known length by at most doubling (and at most MAX_STEP) per
        // read, so a peer must send what it claims before the buffer grows.
        let room = self
            .want
            .min(self.rbuf.len().max(READ_CHUNK))
            .clamp(READ_CHUNK, MAX_STEP);
        // A frame's whole length at once: a connection either holds all its message
        // needs or waits holding nothing. An unframed message's length is known
        // only at its end, so it takes the budget step by step; the budget's
        // overdraft keeps such connections from all waiting on each other.
        let held = (self.rbuf.len() + self.want.max(room)).saturating_sub(KEEP_CAPACITY);
        if !self.charge.covers(held) {
            with_limit(limit, self.charge.hold(held))
                .await
                .ok_or_else(expired)?;
        }
        if self.rbuf.len() + room > self.rbuf.capacity().max(KEEP_CAPACITY) {
            self.take_spare_read(room);
        }
        // The read is awaited where it is made, not passed through a helper: each
        // move of its future is a copy on every request.
        let spare = spare(std::mem::take(&mut self.rbuf), room);
        let (res, buf) = match limit {
            None => self.stream.read(spare).await,
            Some(t) => Box::pin(monoio::time::timeout(t, self.stream.read(spare)))
                .await
                .map_err(|_| expired())?,
        };
        self.rbuf = buf.into_inner();
        self.holds_buffer = true;
        // A message that is still incomplete gets its deadline when the next read
        // starts (moments from now): no clock read for one that came whole.
        match res? {
            0 if started => Err(ReadError::Truncated),
            0 => Err(ReadError::Closed),
            _ => Ok(()),
        }
    }

    /// Moves what the read buffer holds into a spare buffer with room for the whole
    /// message (a frame's length is known), or at least for `room` more bytes, if
    /// one is kept: no step-by-step growth, no pages to fault in.
    #[cold]
    fn take_spare_read(&mut self, room: usize) {
        let Some(spares) = &self.spares else {
            return;
        };
        let len = self.rbuf.len();
        let whole = len + self.want.max(room);
        let Some(mut buf) = spares.take(whole).or_else(|| spares.take(len + room)) else {
            return;
        };
        buf.extend_from_slice(&self.rbuf);
        spares.give(std::mem::replace(&mut self.rbuf, buf));
    }

    /// Drops the unit (per `expect`) at the start of the read buffer, which this side
    /// refused, reading the rest of it as it comes: a peer still writing it goes on
    /// to read the answer rather than a reset, and the stream stays in step. A
    /// frame's end is its declared length; an unframed message's is found by walking
    /// it without keeping it (only its headers need to arrive whole). Gives up past
    /// `limit` bytes, after `timeout`, or when the peer closes or sends bytes that are
    /// not a message. Returns whether it got to the end; bytes after it stay buffered.
    pub async fn discard(&mut self, expect: Expect, limit: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut skipper = Scanner::skipping(self.scanner.protocol(), limit);
        if !self.scanner.strict() {
            skipper.accept_non_strict();
        }
        self.scanner.forget();
        let mut buf = std::mem::take(&mut self.rbuf);
        let whole = match self.framing {
            Framing::Framed => match framed::declared_len(&buf) {
                Some(n) if n + framed::HEADER_LEN <= limit => Some(n + framed::HEADER_LEN),
                _ => {
                    self.rbuf = buf;
                    return false;
                }
            },
            Framing::Buffered if !buf.is_empty() => {
                expect.start(&mut skipper, buf[0]);
                None
            }
            Framing::Buffered => {
                self.rbuf = buf;
                return false;
            }
        };
        let mut dropped = 0;
        let done = loop {
            // Where the unit ends in `buf`, once it is there.
            let end = match whole {
                Some(n) => Ok((n - dropped <= buf.len()).then_some(n - dropped)),
                None => skipper.feed(&buf),
            };
            let walked = match end {
                Err(_) => break false,
                Ok(Some(n)) => {
                    bytes::Buf::advance(&mut buf, n);
                    break true;
                }
                Ok(None) if whole.is_some() => buf.len(),
                Ok(None) => skipper.release(buf.len()),
            };
            dropped += walked;
            bytes::Buf::advance(&mut buf, walked);
            let Some(wait) = deadline.checked_duration_since(Instant::now()) else {
                break false;
            };
            if dropped > limit {
                break false;
            }
            let read = read_append(&mut self.stream, buf, KEEP_CAPACITY);
            match monoio::time::timeout(wait, read).await {
                Ok((Ok(n), b)) if n > 0 => buf = b,
                Ok((_, b)) => {
                    buf = b;
                    break false;
                }
                // The buffer went with the read.
                Err(_) => {
                    buf = BytesMut::new();
                    break false;
                }
            }
        };
        if buf.is_empty() && buf.capacity() > KEEP_CAPACITY {
            buf = BytesMut::new();
        }
        self.holds_buffer = buf.capacity() > 0;
        self.rbuf = buf;
        self.deadline = None;
        self.charge.release();
        done
    }

    /// The write buffer, for a protocol writer.
    pub fn out(&mut self) -> &mut BytesMut {
        &mut self.out.buf
    }

    /// The write buffer as a protocol writer's sink that, when `link` is true,
    /// links shared byte strings of [`LINK_MIN`] bytes or more instead of copying
    /// them (not for a message that is changed after it is written, as a header
    /// transport's is).
    pub fn out_linked(&mut self, link: bool) -> &mut WriteBuf {
        self.out.link_from(if link { LINK_MIN } else { usize::MAX });
        &mut self.out
    }

    /// Starts a message in the write buffer; returns the mark for
    /// [`finish_message`](Self::finish_message) and
    /// [`discard_message`](Self::discard_message).
    pub fn begin_message(&mut self) -> usize {
        if self.large_in.max(self.large_out) > self.out.buf.capacity() {
            self.take_spare_write();
        }
        match self.framing {
            Framing::Framed => framed::begin_frame(&mut self.out.buf),
            Framing::Buffered => self.out.buf.len(),
        }
    }

    /// Takes a spare buffer with room for a reply as large as the last message, if
    /// nothing waits in the write buffer and one is kept.
    #[cold]
    fn take_spare_write(&mut self) {
        let likely = self.large_in.max(self.large_out);
        if self.out.buf.is_empty() {
            if let Some(buf) = self.spares.as_ref().and_then(|s| s.take(likely)) {
                self.out.buf = buf;
            }
        }
    }

    /// Ends the message begun at `mark` (the frame length filled in; an empty
    /// message leaves nothing). Returns its length without the frame header.
    pub fn finish_message(&mut self, mark: usize) -> usize {
        let linked = gather::linked_after(&self.out.links, mark);
        match self.framing {
            Framing::Framed => framed::finish_frame(&mut self.out.buf, mark, linked),
            Framing::Buffered => self.out.buf.len() - mark + linked,
        }
    }

    /// Drops the message begun at `mark`, frame header and all.
    pub fn truncate(&mut self, mark: usize) {
        self.out.buf.truncate(mark);
        gather::unlink_after(&mut self.out.links, mark);
    }

    /// Drops what was written of the message begun at `mark`, keeping the frame
    /// header so that another message can be written in its place.
    pub fn discard_message(&mut self, mark: usize) {
        let body = match self.framing {
            Framing::Framed => mark + framed::HEADER_LEN,
            Framing::Buffered => mark,
        };
        self.out.buf.truncate(body);
        gather::unlink_after(&mut self.out.links, mark);
    }

    /// Whether messages wait in the write buffer.
    pub fn has_output(&self) -> bool {
        !self.out.buf.is_empty()
    }

    /// Sends everything in the write buffer.
    pub async fn flush(&mut self) -> Result<(), WriteError> {
        while !self.send_some().await? {}
        Ok(())
    }

    /// Sends what is left of the write buffer in one send, which waits only while
    /// the socket has no room at all; returns whether all of it has gone out (else
    /// call again). Lets a caller see a slow peer take its replies part by part.
    pub async fn send_some(&mut self) -> Result<bool, WriteError> {
        if self.out.buf.is_empty() {
            return Ok(true);
        }
        if !self.out.links.is_empty() {
            // Boxed: only replies with large strings come here, and inline its
            // future would enlarge every connection's task.
            return Box::pin(self.send_gathered()).await;
        }
        // Taken: a send dropped midway leaves an empty buffer and nothing sent.
        let sent = std::mem::take(&mut self.wsent);
        let out = std::mem::take(&mut self.out.buf);
        if !sent {
            self.large_out = large(out.len());
        }
        let (res, mut out) = self.stream.write(out).await;
        let done = match res {
            Ok(n) if n > 0 && n < out.len() => {
                // The rest stays where it is (the buffer's front is reclaimed when
                // the next message is written).
                bytes::Buf::advance(&mut out, n);
                self.out.buf = out;
                self.wsent = true;
                return Ok(false);
            }
            Ok(0) => Err(std::io::ErrorKind::WriteZero.into()),
            Ok(_) => Ok(true),
            Err(error) => Err(error),
        };
        emptied(&mut out, sent);
        if out.capacity() > KEEP_CAPACITY {
            out = self.let_go(out);
        }
        self.out.buf = out;
        if !self.recycle_after.is_empty() {
            self.recycle_deferred();
        }
        done.map_err(|error| WriteError { error, sent })
    }

    /// [`Self::send_some`] for a batch with links: one gathering write of the
    /// buffer's bytes and the linked strings in their places, from where the
    /// batch's earlier writes stopped.
    async fn send_gathered(&mut self) -> Result<bool, WriteError> {
        let sent = std::mem::take(&mut self.wsent);
        let skip = std::mem::take(&mut self.wskip);
        if !sent {
            self.large_out = large(self.out.buf.len());
        }
        let pieces = std::mem::take(&mut self.pieces);
        let links = std::mem::take(&mut self.out.links);
        let batch = Gather::new(std::mem::take(&mut self.out.buf), links, pieces, skip);
        let left = batch.left();
        let (res, batch) = self.stream.writev(batch).await;
        let (mut out, mut links, pieces) = batch.into_parts();
        self.pieces = pieces;
        let done = match res {
            Ok(n) if n > 0 && n < left => {
                self.out.buf = out;
                self.out.links = links;
                self.wskip = skip + n;
                self.wsent = true;
                return Ok(false);
            }
            Ok(0) => Err(std::io::ErrorKind::WriteZero.into()),
            Ok(_) => Ok(true),
            Err(error) => Err(error),
        };
        links.clear();
        self.out.links = links;
        out.clear();
        if out.capacity() > KEEP_CAPACITY {
            out = self.let_go(out);
        }
        self.out.buf = out;
        self.recycle_deferred();
        done.map_err(|error| WriteError { error, sent })
    }

    /// Recycles the large requests that links pointed into, now sent or dropped.
    #[cold]
    fn recycle_deferred(&mut self) {
        for unit in std::mem::take(&mut self.recycle_after) {
            self.recycle(unit);
        }
    }

    /// Gives a large write buffer to the spare buffers, if any; an empty one to
    /// write into next.
    #[cold]
    fn let_go(&self, out: BytesMut) -> BytesMut {
        if let Some(spares) = &self.spares {
            spares.give(out);
        }
        BytesMut::new()
    }
}

/// `len` if it is over [`KEEP_CAPACITY`], else 0.
fn large(len: usize) -> usize {
    if len > KEEP_CAPACITY {
        len
    } else {
        0
    }
}

/// Empties a write buffer whose bytes all went out. One sent in parts (`parts`)
/// gets back the front those parts consumed (no copy), so that its capacity is
/// its whole allocation again: one whose last part was small would otherwise look
/// small, and a connection would keep a large reply's memory while idle.
fn emptied(out: &mut BytesMut, parts: bool) {
    out.clear();
    if parts {
        let _ = out.try_reclaim(out.capacity() + 1);
    }
}

/// Runs `f`, giving up after `limit` (`None` when it ran out). The timer is boxed,
/// and only when there is a limit: monoio's is 640 bytes, which inline would make
/// every read's future (and every caller's) that much larger to move around.
async fn with_limit<F: std::future::Future>(limit: Option<Duration>, f: F) -> Option<F::Output> {
    match limit {
        Some(t) => Box::pin(monoio::time::timeout(t, f)).await.ok(),
        None => Some(f.await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::io::{AsyncReadRentExt, AsyncWriteRentExt};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        crate::runtime::build().unwrap().block_on(f)
    }

    async fn pair(framing: Framing) -> (MessageConn, TcpStream) {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (
            MessageConn::new(server, framing, Protocol::Binary, 1 << 20),
            client,
        )
    }

    fn ping(seqid: u8) -> Vec<u8> {
        let mut m = vec![0x80, 1, 0, 1, 0, 0, 0, 4];
        m.extend_from_slice(b"ping");
        m.extend_from_slice(&[0, 0, 0, seqid, 0]);
        m
    }

    #[test]
    fn linked_strings_go_out_in_their_frames_and_leave_with_a_dropped_message() {
        use crate::protocol::Sink;
        use bytes::BufMut;
        block_on(async {
            let (mut conn, mut peer) = pair(Framing::Framed).await;
            let big = |b: u8| Bytes::from(vec![b; LINK_MIN + 5]);
            let first = conn.begin_message();
            let out = conn.out_linked(true);
            out.put_slice(b"head");
            out.put_shared(&big(b'a'));
            out.put_shared(&Bytes::from_static(b"short"));
            out.put_slice(b"tail");
            assert_eq!(conn.finish_message(first), 4 + LINK_MIN + 5 + 5 + 4);
            // Dropped whole (a reply over the size limit), and in part (a failed call).
            let dropped = conn.begin_message();
            conn.out_linked(true).put_shared(&big(b'b'));
            conn.truncate(dropped);
            let redone = conn.begin_message();
            let out = conn.out_linked(true);
            out.put_slice(b"x");
            out.put_shared(&big(b'c'));
            conn.discard_message(redone);
            conn.out_linked(true).put_slice(b"y");
            assert_eq!(conn.finish_message(redone), 1);
            // Not linked when told not to.
            let plain = conn.begin_message();
            conn.out_linked(false).put_shared(&big(b'd'));
            assert_eq!(conn.out.links.len(), 1);
            conn.finish_message(plain);
            conn.flush().await.unwrap();
            assert!(conn.out.links.is_empty() && conn.out.buf.is_empty());
            let mut want = BytesMut::new();
            for body in [
                [&b"head"[..], &big(b'a'), b"short", b"tail"].concat(),
                b"y".to_vec(),
                big(b'd').to_vec(),
            ] {
                want.put_u32(body.len() as u32);
                want.extend_from_slice(&body);
            }
            let (res, got) = peer.read_exact(vec![0u8; want.len()]).await;
            res.unwrap();
            assert!(got == want[..], "the frames as written");
        })
    }

    #[test]
    fn a_trickled_message_must_finish_within_the_message_timeout() {
        block_on(async {
            let (mut conn, mut peer) = pair(Framing::Buffered).await;
            let msg = ping(1);
            let timeouts = ReadTimeouts {
                idle: None,
                message: Some(Duration::from_millis(150)),
            };
            let trickle = monoio::spawn(async move {
                for b in msg {
                    let (r, _) = peer.write_all(vec![b]).await;
                    if r.is_err() {
                        return;
                    }
                    monoio::time::sleep(Duration::from_millis(40)).await;
                }
            });
            // 17 bytes at one every 40 ms: each read is quick, the message is not.
            let got = conn.read_message(Expect::Message, timeouts).await;
            assert!(matches!(got, Err(ReadError::Slow)), "{got:?}");
            drop(conn);
            trickle.await;
        });
    }

    #[test]
    fn large_messages_one_after_another_land_in_one_spare_buffer() {
        block_on(async {
            let (mut conn, mut peer) = pair(Framing::Framed).await;
            let spares = Rc::new(SpareBuffers::new(4 << 20));
            conn.set_spares(spares.clone());
            let mut wire = 200_000u32.to_be_bytes().to_vec();
            wire.extend_from_slice(&[0x80; 200_000]);
            let mut at = Vec::new();
            for _ in 0..3 {
                let (r, _) = peer.write_all(wire.clone()).await;
                r.unwrap();
                let m = conn
                    .read_message(Expect::Message, ReadTimeouts::default())
                    .await;
                let m = m.unwrap();
                assert_eq!(m.len(), 200_000);
                at.push(m.as_ptr());
                conn.recycle(m);
                assert!(spares.held() >= 200_000, "{}", spares.held());
            }
            assert_eq!((at[1], at[2]), (at[0], at[0]), "one buffer");
            // A reply as large as the last request takes it too.
            conn.begin_message();
            assert_eq!(spares.held(), 0);
            assert!(conn.buffer_capacity() >= 200_000);
        });
    }

    #[test]
    fn a_reply_sent_in_parts_leaves_its_whole_buffer_to_let_go() {
        let mut out = BytesMut::with_capacity(1 << 20);
        out.extend_from_slice(&vec![1; 1 << 20]);
        // All but 1,000 bytes went out in the first part.
        bytes::Buf::advance(&mut out, (1 << 20) - 1000);
        assert!(out.capacity() <= KEEP_CAPACITY);
        emptied(&mut out, true);
        assert_eq!((out.len(), out.capacity()), (0, 1 << 20));
    }

    #[test]
    fn pipelined_messages_are_cut_one_by_one_and_buffers_shrink() {
        block_on(async {
            let (mut conn, mut peer) = pair(Framing::Framed).await;
            let mut wire = Vec::new();
            for body in [ping(1), vec![0x80; 200_000]] {
                wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
                wire.extend_from_slice(&body);
            }
            let (r, _) = peer.write_all(wire).await;
            r.unwrap();
            let t = ReadTimeouts::default();
            let a = conn.read_message(Expect::Message, t).await.unwrap();
            let b = conn.read_message(Expect::Message, t).await.unwrap();
            assert_eq!((a.len(), b.len()), (17, 200_000));
            drop((a, b));
            assert!(
                conn.buffer_capacity() <= KEEP_CAPACITY,
                "{}",
                conn.buffer_capacity()
            );
            drop(peer);
            let end = conn.read_message(Expect::Message, t).await;
            assert!(matches!(end, Err(ReadError::Closed)), "{end:?}");
        });
    }
}
