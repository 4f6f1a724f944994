//! A core's open connections: how many, which are idle since when, closing the
//! longest-idle one to make room for a newcomer (as nginx reuses keep-alive
//! connections) instead of refusing it, closing those that wait for a request too
//! long (the idle timeout, the drain's grace), and those whose peer has stopped
//! taking their replies (the write timeout).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::os::fd::{BorrowedFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::end::End;

/// One connection's entry: its idle and writing state and the signals the core
/// sends it.
pub struct Slot {
    /// The connection's socket, open as long as the slot is registered.
    fd: RawFd,
    /// When it started waiting for a request, by the core's tick count.
    idle_since: Cell<Option<u64>>,
    /// When its replies last went out in part or started to, by the core's clock
    /// of write-timeout periods ([`Conns::advance`]); `None` while not writing.
    writing_since: Cell<Option<u32>>,
    /// Closed because its replies made no progress within the write timeout.
    stalled: Cell<bool>,
    /// Closed to make room for a newcomer at the connection limit.
    evicted: Cell<bool>,
    /// Closed for waiting too long for a request: the idle timeout, or the
    /// drain's grace.
    idled: Cell<bool>,
    /// The drain started: look at the connection's state again.
    nudged: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

/// What the core tells a connection whose call is still running (a read waiting
/// for a request is ended by shutting its socket instead: [`Slot::closed_by_core`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Close: the core needs room for a new connection.
    Evicted,
    /// The drain started.
    Drain,
}

impl Slot {
    fn new(fd: RawFd) -> Self {
        Slot {
            fd,
            idle_since: Cell::new(None),
            writing_since: Cell::new(None),
            stalled: Cell::new(false),
            evicted: Cell::new(false),
            idled: Cell::new(false),
            nudged: Cell::new(false),
            waker: Cell::new(None),
        }
    }

    /// Marks the connection idle (waiting for a request) or busy.
    pub fn set_idle(&self, idle: Option<u64>) {
        self.idle_since.set(idle);
    }

    /// Marks the connection's replies as going out now (`Some` of
    /// [`Conns::now`]), again at each part that goes, or all gone (`None`).
    pub fn set_writing(&self, since: Option<u32>) {
        self.writing_since.set(since);
    }

    /// Whether the core closed it for the write timeout.
    pub fn stalled(&self) -> bool {
        self.stalled.get()
    }

    /// Why the core closed the connection while it waited for a request, if it
    /// did: the read that was waiting ends as if the peer had closed.
    pub fn closed_by_core(&self) -> Option<End> {
        if self.evicted.get() {
            Some(End::Evicted)
        } else if self.idled.get() {
            Some(End::Idle)
        } else {
            None
        }
    }

    /// Resets the socket under its pending send, which then fails, ending the
    /// connection; the unsent replies and the socket's buffers are dropped at once.
    fn stall(&self) {
        self.stalled.set(true);
        self.shutdown(std::net::Shutdown::Both, true);
    }

    /// Shuts the socket down (`how`), with the linger of a reset if `reset`.
    fn shutdown(&self, how: std::net::Shutdown, reset: bool) {
        // SAFETY: the socket is open while its slot is registered (the slot is
        // removed, on this thread, right after the connection's stream is dropped).
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let sock = socket2::SockRef::from(&fd);
        if reset {
            let _ = sock.set_linger(Some(std::time::Duration::ZERO));
        }
        let _ = sock.shutdown(how);
    }

    /// Ends the connection's wait for a request by shutting its socket's read
    /// side: the read in flight ends as at the peer's close, so that a read need
    /// not listen for the core besides, while a request already read, or already
    /// in the socket, is still answered (the connection then ends after the reply).
    fn close_waiting(&self, why: &Cell<bool>) {
        why.set(true);
        self.shutdown(std::net::Shutdown::Read, false);
    }

    /// Whether the core has closed the connection (its socket is still open
    /// for a last look or the reset's end): it no longer counts toward the limit.
    fn leaving(&self) -> bool {
        self.stalled.get() || self.closed_by_core().is_some()
    }

    /// Waits for the core's next signal to this connection.
    pub fn signal(&self) -> impl Future<Output = Signal> + '_ {
        std::future::poll_fn(move |task| self.poll_signal(task))
    }

    /// The core's next signal to this connection, if one came; else `task` is
    /// woken when one comes.
    pub fn poll_signal(&self, task: &mut Context<'_>) -> Poll<Signal> {
        if self.evicted.get() {
            Poll::Ready(Signal::Evicted)
        } else if self.nudged.replace(false) {
            Poll::Ready(Signal::Drain)
        } else {
            // Keep the stored waker when it wakes the same task (no clone).
            let waker = match self.waker.take() {
                Some(w) if w.will_wake(task.waker()) => w,
                _ => task.waker().clone(),
            };
            self.waker.set(Some(waker));
            Poll::Pending
        }
    }

    fn evict(&self) {
        // A request that came in as the core chose this connection (read already,
        // its completion not yet seen, or still in the socket) is answered.
        self.close_waiting(&self.evicted);
    }

    fn nudge(&self) {
        self.nudged.set(true);
        self.wake();
    }

    fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// The open connections of one core.
#[derive(Default)]
pub struct Conns {
    slots: RefCell<HashMap<u64, Rc<Slot>>>,
    /// Of those, how many the core has closed but are not yet gone.
    leaving: Cell<usize>,
    next: Cell<u64>,
    /// A counter that orders idle periods without reading the clock.
    ticks: Cell<u64>,
    /// Write-timeout periods since the core started ([`Conns::advance`]).
    now: Cell<u32>,
}

impl Conns {
    /// Open connections now.
    pub fn len(&self) -> usize {
        self.slots.borrow().len()
    }

    /// Open connections that count toward the connection limit: those the core
    /// has closed (evicted, idle too long, stalled) are gone within their last
    /// look, and a newcomer takes such a one's place rather than evict another.
    pub fn staying(&self) -> usize {
        self.len() - self.leaving.get()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.slots.borrow().is_empty()
    }

    /// The next value of the core's idle-ordering counter.
    pub fn tick(&self) -> u64 {
        let t = self.ticks.get() + 1;
        self.ticks.set(t);
        t
    }

    /// The core's clock of write-timeout periods, for [`Slot::set_writing`].
    pub fn now(&self) -> u32 {
        self.now.get()
    }

    /// Moves the clock on one period, and closes every connection whose replies
    /// have made no progress for more than `periods` of them (so for between
    /// `periods` and `periods + 1`). Returns how many it closed.
    pub fn advance(&self, periods: u32) -> usize {
        let now = self.now.get().wrapping_add(1);
        self.now.set(now);
        let mut closed = 0;
        for s in self.slots.borrow().values() {
            let since = s.writing_since.get();
            if since.is_some_and(|t| now.wrapping_sub(t) > periods) && !s.stalled.get() {
                self.closing(s, Slot::stall);
                closed += 1;
            }
        }
        closed
    }

    /// Registers a new connection on socket `fd`; its slot is removed by
    /// [`Conns::remove`] once the socket is closed. It waits for its first request
    /// from now, so one accepted but not yet started can make room as well (nginx
    /// counts a new connection reusable too); a request already in its socket is
    /// still answered.
    pub fn add(&self, fd: RawFd) -> (u64, Rc<Slot>) {
        let id = self.next.get();
        self.next.set(id + 1);
        let slot = Rc::new(Slot::new(fd));
        slot.set_idle(Some(self.tick()));
        self.slots.borrow_mut().insert(id, slot.clone());
        (id, slot)
    }

    /// Forgets a closed connection.
    pub fn remove(&self, id: u64) {
        let gone = self.slots.borrow_mut().remove(&id);
        if gone.is_some_and(|s| s.leaving()) {
            self.leaving.set(self.leaving.get() - 1);
        }
    }

    /// Closes `slot` by `close`, counting it as leaving if it was not already.
    fn closing(&self, slot: &Slot, close: impl FnOnce(&Slot)) {
        let was = slot.leaving();
        close(slot);
        if !was {
            self.leaving.set(self.leaving.get() + 1);
        }
    }

    /// Tells every connection that the drain started.
    pub fn nudge_all(&self) {
        for s in self.slots.borrow().values() {
            s.nudge();
        }
    }

    /// Closes the connections waiting for a request since `tick` (of
    /// [`Conns::tick`]) or before ([`IdleSweep`]). Returns how many it closed.
    fn close_idle_since(&self, tick: u64) -> usize {
        let mut closed = 0;
        for s in self.slots.borrow().values() {
            if s.idle_since.get().is_some_and(|t| t <= tick) && !s.leaving() {
                self.closing(s, |s| s.close_waiting(&s.idled));
                closed += 1;
            }
        }
        closed
    }

    /// Evicts the connection idle for longest; false if none is idle.
    pub fn evict_longest_idle(&self) -> bool {
        let slots = self.slots.borrow();
        let oldest = slots
            .values()
            .filter(|s| !s.leaving())
            .filter_map(|s| s.idle_since.get().map(|t| (s, t)))
            .min_by_key(|(_, t)| *t);
        match oldest {
            Some((slot, _)) => {
                self.closing(slot, Slot::evict);
                true
            }
            None => false,
        }
    }
}

/// Closes the connections that have waited for a request for `after` or longer,
/// by marks of the core's idle-ordering counter taken as time goes by: the idle
/// timeout and the drain's grace. The core ends such a wait by shutting the
/// socket's read side ([`Slot::closed_by_core`]), not by a timer on each read: a
/// read is never dropped in flight (a request the kernel had just read would go
/// with it), and a request that was on its way is still answered.
pub struct IdleSweep {
    after: Duration,
    /// (when, tick) marks, oldest first, at least `after / 16` apart: a wait is
    /// closed at most that much (and a sweep's period) past `after`.
    marks: VecDeque<(Instant, u64)>,
}

impl IdleSweep {
    /// A sweep for waits of `after` or longer.
    pub fn new(after: Duration) -> Self {
        IdleSweep {
            after,
            marks: VecDeque::new(),
        }
    }

    /// Marks `now` (when the last mark is old enough) and closes the connections
    /// waiting since a mark taken `after` or more ago. Returns how many it closed.
    pub fn sweep(&mut self, conns: &Conns, now: Instant) -> usize {
        let gap = self.after / 16;
        let last = self.marks.back();
        if last.is_none_or(|&(at, _)| now.saturating_duration_since(at) >= gap) {
            self.marks.push_back((now, conns.tick()));
        }
        let mut due = None;
        while let Some(&(at, tick)) = self.marks.front() {
            if now.saturating_duration_since(at) < self.after {
                break;
            }
            due = Some(tick);
            self.marks.pop_front();
        }
        due.map_or(0, |tick| conns.close_idle_since(tick))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_is_evicted_and_busy_ones_never() {
        let conns = Conns::default();
        let socks = waiting(&conns, 4);
        let [busy, unstarted, old, young] = [0, 1, 2, 3].map(|i| &socks[i].2);
        busy.set_idle(None);
        old.set_idle(Some(conns.tick()));
        young.set_idle(Some(conns.tick()));
        // One accepted but not yet started waits for its first request since then.
        assert!(conns.evict_longest_idle());
        assert!(unstarted.evicted.get() && !old.evicted.get() && !young.evicted.get());
        assert!(conns.evict_longest_idle());
        assert!(old.evicted.get() && !young.evicted.get() && !busy.evicted.get());
        assert!(conns.evict_longest_idle());
        assert!(young.evicted.get());
        assert!(!conns.evict_longest_idle(), "only busy ones are left");
        assert_eq!(conns.len(), 4);
    }

    type Pair = std::os::unix::net::UnixStream;

    /// `n` connections registered with `conns`: the server's end of each (reads do
    /// not wait), its peer, and its slot.
    fn waiting(conns: &Conns, n: usize) -> Vec<(Pair, Pair, Rc<Slot>)> {
        use std::os::fd::AsRawFd;
        (0..n)
            .map(|_| {
                let (end, peer) = Pair::pair().unwrap();
                end.set_nonblocking(true).unwrap();
                let slot = conns.add(end.as_raw_fd()).1;
                (end, peer, slot)
            })
            .collect()
    }

    /// Whether a read on `end` ends (shut), not waits.
    fn shut(end: &mut Pair) -> bool {
        use std::io::Read;
        matches!(end.read(&mut [0u8; 1]), Ok(0))
    }

    #[test]
    fn an_evicted_or_graced_connection_stops_waiting_and_says_why() {
        let conns = Conns::default();
        let mut socks = waiting(&conns, 4);
        socks[3].2.set_idle(None);
        let [before, at, after] = [0, 1, 2].map(|i| {
            let t = conns.tick();
            socks[i].2.set_idle(Some(t));
            t
        });
        // Waiting since the drain's tick or before: closed; since after, or busy, not.
        assert_eq!(conns.close_idle_since(at), 2);
        assert!(before < at && at < after);
        let shut_now: Vec<bool> = socks.iter_mut().map(|(end, ..)| shut(end)).collect();
        assert_eq!(shut_now, [true, true, false, false]);
        assert!(matches!(socks[0].2.closed_by_core(), Some(End::Idle)));
        assert!(socks[2].2.closed_by_core().is_none());
        assert_eq!(conns.close_idle_since(at), 0, "closed once");
        // Eviction takes the longest-waiting one left, and says so.
        assert!(conns.evict_longest_idle());
        assert!(shut(&mut socks[2].0));
        assert!(matches!(socks[2].2.closed_by_core(), Some(End::Evicted)));
        assert!(!shut(&mut socks[3].0), "a busy one is left alone");
    }

    #[test]
    fn connections_the_core_closed_no_longer_count_toward_the_limit() {
        let conns = Conns::default();
        let socks = waiting(&conns, 4);
        let ids: Vec<u64> = (0..4).collect();
        socks[3].2.set_idle(None);
        assert_eq!(conns.staying(), 4);
        // Idle too long (the first two), then evicted (the third): each counts
        // once, however often the core closes it.
        assert_eq!(
            conns.close_idle_since(socks[1].2.idle_since.get().unwrap()),
            2
        );
        assert_eq!(conns.staying(), 2);
        assert!(conns.evict_longest_idle());
        assert!(!conns.evict_longest_idle(), "only the busy one stays");
        assert_eq!((conns.len(), conns.staying()), (4, 1));
        // One closed for idleness whose last look's reply then stalls.
        socks[0].2.set_writing(Some(conns.now()));
        assert_eq!(conns.advance(0), 1);
        assert_eq!(conns.staying(), 1, "counted once");
        // Gone after their last look; the count of those leaving goes with them.
        for &id in &ids[..3] {
            conns.remove(id);
        }
        assert_eq!((conns.len(), conns.staying()), (1, 1));
        socks[3].2.set_writing(Some(conns.now()));
        conns.advance(0);
        assert_eq!(conns.staying(), 0, "stalled");
        conns.remove(ids[3]);
        assert_eq!((conns.len(), conns.staying()), (0, 0));
    }

    #[test]
    fn a_sweep_closes_the_waits_of_its_time_or_longer_and_keeps_few_marks() {
        let conns = Conns::default();
        let mut socks = waiting(&conns, 3);
        let (t0, after) = (Instant::now(), Duration::from_millis(160));
        let mut sweep = IdleSweep::new(after);
        // Waiting since before the first mark (accepted), busy, and waiting since
        // just after it.
        socks[1].2.set_idle(None);
        assert_eq!(sweep.sweep(&conns, t0), 0);
        socks[2].2.set_idle(Some(conns.tick()));
        let ms = |n| t0 + Duration::from_millis(n);
        // Swept every sixteenth of its time (10 ms), as the core does.
        for n in (10..160).step_by(10) {
            assert_eq!(sweep.sweep(&conns, ms(n)), 0, "not yet at {n} ms");
        }
        assert_eq!(sweep.sweep(&conns, ms(160)), 1);
        assert!(matches!(socks[0].2.closed_by_core(), Some(End::Idle)));
        assert!(shut(&mut socks[0].0));
        // The later one at the first mark taken after its wait began: a sixteenth
        // late.
        assert_eq!(sweep.sweep(&conns, ms(169)), 0);
        assert_eq!(sweep.sweep(&conns, ms(170)), 1);
        assert!(shut(&mut socks[2].0));
        assert!(!shut(&mut socks[1].0), "a busy one is left alone");
        // Marks at least a sixteenth of the time apart, however often it sweeps.
        for n in 171..2000 {
            sweep.sweep(&conns, ms(n));
        }
        assert!(sweep.marks.len() <= 17, "{} marks", sweep.marks.len());
    }

    #[test]
    fn an_evicted_connection_still_answers_the_request_that_came_in_as_it_was_chosen() {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut end, _) = listener.accept().unwrap();
        let conns = Conns::default();
        conns.add(end.as_raw_fd());
        // The request reaches the server's socket before its read is seen.
        peer.write_all(b"request").unwrap();
        end.peek(&mut [0u8; 1]).unwrap();
        assert!(conns.evict_longest_idle());
        let mut request = [0u8; 7];
        end.read_exact(&mut request).unwrap();
        assert_eq!(&request, b"request");
        assert_eq!(end.read(&mut [0u8; 1]).unwrap(), 0, "then the read ends");
        end.write_all(b"reply").expect("the reply can still go");
        drop(end);
        let mut reply = String::new();
        peer.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "reply", "the peer gets it, then the close");
    }

    #[test]
    fn a_connection_whose_replies_make_no_progress_is_closed_after_the_timeout() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let conns = Conns::default();
        let (mut ends, mut peers) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let (end, peer) = std::os::unix::net::UnixStream::pair().unwrap();
            peers.push(peer);
            ends.push(end);
        }
        let [stuck, moving, reading] = [0, 1, 2].map(|i| conns.add(ends[i].as_raw_fd()).1);
        stuck.set_writing(Some(conns.now()));
        moving.set_writing(Some(conns.now()));
        for _ in 0..3 {
            assert_eq!(conns.advance(3), 0, "within the timeout");
            moving.set_writing(Some(conns.now()));
        }
        assert_eq!(conns.advance(3), 1, "more than 3 periods without progress");
        assert!(stuck.stalled() && !moving.stalled() && !reading.stalled());
        let mut b = [0u8; 1];
        assert_eq!(peers[0].read(&mut b).unwrap(), 0, "its socket is shut down");
        assert_eq!(conns.advance(3), 0, "closed once");
        moving.set_writing(None);
        for _ in 0..5 {
            assert_eq!(conns.advance(3), 0, "not writing: never closed");
        }
    }
}
